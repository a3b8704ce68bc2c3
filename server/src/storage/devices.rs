//! The `devices` table: one row per device ever seen, with its first and last reading and what
//! it said about itself. The writer keeps first/last seen up to date; registrations are
//! written here at once (they are rare). One SQL text serves both back ends.

use super::{Backend, StorageError, Store};
use app::model::Registration;

/// A row of the `devices` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDevice {
    pub id: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub name: Option<String>,
    pub registration: Option<Registration>,
    /// The name a person gave it, shown instead of the registered one.
    pub display_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    name: Option<String>,
    registration: Option<String>,
    display_name: Option<String>,
}

impl From<DeviceRow> for StoredDevice {
    fn from(row: DeviceRow) -> StoredDevice {
        StoredDevice {
            id: row.id,
            first_seen_ms: row.first_seen_ms,
            last_seen_ms: row.last_seen_ms,
            name: row.name,
            // Written by `save_registration` from the same type; an unreadable one (a
            // registration format from a future version) is treated as none.
            registration: row
                .registration
                .and_then(|json| serde_json::from_str(&json).ok()),
            display_name: row.display_name,
        }
    }
}

const COLUMNS: &str = "id, first_seen_ms, last_seen_ms, name, registration, display_name";

impl Store {
    /// Remembers what a device said about itself (name and registration), creating its row if
    /// it has sent no reading yet.
    pub async fn save_registration(
        &self,
        device_id: &str,
        registration: &Registration,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        // Serialising a plain struct of strings and numbers cannot fail.
        let json = serde_json::to_string(registration).unwrap_or_default();
        let sql = "INSERT INTO devices (id, first_seen_ms, last_seen_ms, name, registration)
                   VALUES ($1, $2, $2, $3, $4)
                   ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     registration = excluded.registration, removed_ms = NULL";
        on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(device_id)
                .bind(now_ms)
                .bind(registration.name.as_deref())
                .bind(&json)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A device as stored: first and last seen, name and registration.
    pub async fn device(&self, device_id: &str) -> Result<Option<StoredDevice>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE id = $1");
        let row: Option<DeviceRow> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(device_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(StoredDevice::from))
    }

    /// Removes a device from the listing: its tokens are revoked, and it is no longer among
    /// [`Store::devices`] until it sends a reading received after `now_ms`. With
    /// `keep_readings` its history stays (for export); else its readings, aggregates and
    /// registration are deleted. Returns whether there was such a device.
    ///
    /// Its row and keys stay either way: the writer may have them cached.
    /// Gives a listed device a name of a person's choosing (`None`: back to its registered
    /// name); false if no such device is listed.
    pub async fn rename_device(
        &self,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<bool, StorageError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE devices SET display_name = $2 WHERE id = $1 AND removed_ms IS NULL")
                .bind(device_id)
                .bind(display_name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn remove_device(
        &self,
        device_id: &str,
        keep_readings: bool,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let key: Option<i64> =
                sqlx::query_scalar("SELECT key FROM devices WHERE id = $1 AND removed_ms IS NULL")
                    .bind(device_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(key) = key else {
                return Ok(false);
            };
            if !keep_readings {
                sqlx::query(
                    "DELETE FROM rollups WHERE series IN (SELECT key FROM series WHERE device = $1)",
                )
                .bind(key)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM blocks WHERE device = $1")
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE devices SET name = NULL, registration = NULL, display_name = NULL
                     WHERE key = $1",
                )
                .bind(key)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE devices SET removed_ms = $2 WHERE key = $1")
                .bind(key)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE device_tokens SET revoked_ms = $2 WHERE device_id = $1 AND revoked_ms IS NULL",
            )
            .bind(device_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Devices removed at or after `since_ms` by any process using this store (the command
    /// line's `iothub device remove` too).
    pub async fn devices_removed_since(&self, since_ms: i64) -> Result<Vec<String>, StorageError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM devices WHERE removed_ms >= $1")
                .bind(since_ms)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Every stored device, in id order (one query: it runs at start-up for every device).
    pub async fn devices(&self) -> Result<Vec<StoredDevice>, StorageError> {
        let sql = format!("SELECT {COLUMNS} FROM devices WHERE removed_ms IS NULL ORDER BY id");
        let rows: Vec<DeviceRow> =
            on_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(StoredDevice::from).collect())
    }
}
