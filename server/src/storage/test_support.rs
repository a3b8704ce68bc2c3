//! Helpers for tests that need a real database (this crate's and the integration tests).

use sqlx::{Connection, Executor, PgConnection};

/// The PostgreSQL server tests use, if any: a URL whose user may create databases.
pub const POSTGRES_URL_VAR: &str = "IOTHUB_TEST_POSTGRES_URL";

/// A fresh, empty PostgreSQL database for one test. `None` when no server is configured.
pub struct TestPostgres {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestPostgres {
    pub async fn create() -> Option<TestPostgres> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("{POSTGRES_URL_VAR} is not set: skipping the PostgreSQL part of this test");
            return None;
        };
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR}={admin_url:?} is not a URL: {e}"));
        let name = format!("iothub_test_{:016x}", fastrand::u64(..));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unreachable: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
        url.set_path(&name);
        Some(TestPostgres {
            url: url.to_string(),
            admin_url,
            name,
        })
    }

    /// Drops the database (best effort; names are random, so a leftover harms nothing).
    pub async fn drop_database(self) {
        // An autovacuum worker on a fresh table can hold the database for a moment, and a
        // non-superuser may not end it: try a few times.
        for _ in 0..20 {
            let Ok(mut admin) = PgConnection::connect(&self.admin_url).await else {
                return;
            };
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if admin.execute(drop.as_str()).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}
