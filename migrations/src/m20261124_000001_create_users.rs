//! The seed user schema of DESIGN.md: one row per phone number.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(uuid(Users::Id).primary_key())
                    // E.164 is at most 16 bytes; the unique index makes first sign-in race-free.
                    .col(string_len_uniq(Users::PhoneNumber, 20))
                    .col(string_len_null(Users::Username, 64))
                    .col(string_len_null(Users::Email, 254))
                    .col(string_len_null(Users::AbhaId, 32))
                    .col(boolean(Users::IsGuest).default(false))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    PhoneNumber,
    Username,
    Email,
    AbhaId,
    IsGuest,
    CreatedAt,
    UpdatedAt,
}
