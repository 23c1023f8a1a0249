//! Schema migrations for arogya-auth's SQL database (PostgreSQL in production, SQLite for the
//! embedded default). Run at start-up (unless `database.run_migrations = false`) and by
//! `arogya-auth migrate`. One migration per module: sea-orm names a migration after its module.
pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_users;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261124_000001_create_users::Migration)]
    }
}
