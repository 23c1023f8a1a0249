//! Users in SQL through SeaORM: PostgreSQL in production, a SQLite file for the embedded
//! default. Only the sign-in path (VerifyOtp) touches SQL; ValidateSession never does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait, QueryFilter, Set,
    TryInsertResult,
};
use uuid::Uuid;

use crate::phone::PhoneNumber;

pub mod user;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("user database unavailable: {0}")]
    Unavailable(String),
}

impl From<sea_orm::DbErr> for DbError {
    fn from(e: sea_orm::DbErr) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// The SQL URL for the configuration: `DATABASE_URL`, or the SQLite file (created if missing).
pub fn database_url(database_url: Option<&str>, sqlite_path: &std::path::Path) -> String {
    match database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}?mode=rwc", sqlite_path.display()),
    }
}

/// Connects eagerly (for `migrate` and tests).
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbError> {
    Ok(Database::connect(options(url, Duration::from_secs(5), false)).await?)
}

/// A pool that connects on first use, so the service starts while the database is down; each
/// connection attempt and each wait for a pooled connection gives up after `timeout`.
pub async fn connect_lazy(url: &str, timeout: Duration) -> Result<DatabaseConnection, DbError> {
    Ok(Database::connect(options(url, timeout, true)).await?)
}

fn options(url: &str, timeout: Duration, lazy: bool) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    // A small pool; sqlx runs SQLite on its own threads, off the async runtime.
    opts.max_connections(if url.starts_with("sqlite:") { 4 } else { 16 })
        .min_connections(if lazy { 0 } else { 1 })
        .connect_timeout(timeout)
        .acquire_timeout(timeout)
        .connect_lazy(lazy)
        .sqlx_logging(false);
    opts
}

/// Applies every pending migration. On PostgreSQL it runs in one transaction holding an
/// advisory lock, so replicas starting together migrate one at a time (the others wait, then
/// find nothing pending) and a failed migration leaves nothing half-applied.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbError> {
    use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Migrator::up(db, None).await?);
    }
    let txn = db.begin().await?;
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7254190321)")
        .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await?;
    Ok(())
}

/// Where users are found and created.
#[derive(Clone, Debug)]
pub struct UserRepo {
    db: DatabaseConnection,
}

impl UserRepo {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The user with this number, created on first sign-in. Race-free: the insert is
    /// `ON CONFLICT (phone_number) DO NOTHING`, so two sign-ins of a new number at once make
    /// one row, and both read it back. Returns `(user, created)`.
    pub async fn find_or_create(
        &self,
        phone: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<(user::Model, bool), DbError> {
        if let Some(found) = self.find_by_phone(phone).await? {
            return Ok((found, false));
        }
        let row = user::ActiveModel {
            id: Set(Uuid::new_v4()),
            phone_number: Set(phone.as_e164().to_owned()),
            username: Set(None),
            email: Set(None),
            abha_id: Set(None),
            is_guest: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // Not `exec_with_returning`: on a conflict RETURNING yields no row, which sea-orm 2.0.4
        // reports as RecordNotFound rather than as a conflict. Count rows, then read back.
        let inserted = user::Entity::insert(row)
            .on_conflict_do_nothing_on([user::Column::PhoneNumber])
            .exec_without_returning(&self.db)
            .await?;
        let created = matches!(inserted, TryInsertResult::Inserted(n) if n > 0);
        let found = self.find_by_phone(phone).await?;
        found
            .map(|m| (m, created))
            .ok_or_else(|| DbError::Unavailable("user missing right after its insert".into()))
    }

    pub async fn find_by_phone(&self, phone: &PhoneNumber) -> Result<Option<user::Model>, DbError> {
        Ok(user::Entity::find()
            .filter(user::Column::PhoneNumber.eq(phone.as_e164()))
            .one(&self.db)
            .await?)
    }

    pub async fn count(&self) -> Result<u64, DbError> {
        use sea_orm::PaginatorTrait;
        Ok(user::Entity::find().count(&self.db).await?)
    }
}
