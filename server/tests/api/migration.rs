//! A store written by the release before the ingest layout (one row per value, text ids) is
//! converted when the hub opens it: every reading is still there, and the CSV export is the
//! same to the byte. The fixture (`tests/fixtures/store-v1.db`, with each device's export as
//! that release served it) was written by that release's binary: simulated devices, a JSON
//! device with its own timestamps and a registration, a key=value device whose fields change.

use crate::helpers::TestApp;
use server::storage::test_support::TestPostgres;
use sqlx::{Connection, Row};
use std::path::PathBuf;

const DEVICES: [&str; 4] = ["1", "2", "json-dev", "kv-dev"];
/// Every stored reading, whatever its time.
const ALL_TIME: &str = "from=0&to=4102444800000";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Data rows of each device's export, as the old release served it.
fn expected_readings() -> u64 {
    DEVICES
        .iter()
        .map(|d| {
            let csv = std::fs::read_to_string(fixture(&format!("store-v1-{d}.csv"))).unwrap();
            csv.lines().count() as u64 - 1
        })
        .sum()
}

async fn exports_match_the_old_release(app: &TestApp) {
    for device in DEVICES {
        let expected = std::fs::read(fixture(&format!("store-v1-{device}.csv"))).unwrap();
        let response = app
            .http
            .get(app.url(&format!("/export/{device}.csv?{ALL_TIME}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&expected),
            "export of {device}"
        );
    }
}

#[tokio::test]
async fn a_sqlite_store_of_the_old_layout_is_converted_with_every_reading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("store-v1.db"), dir.path().join("iothub.db")).unwrap();
    let app = TestApp::spawn_in(dir, |_| {}).await;
    exports_match_the_old_release(&app).await;
    let db = app.data_dir.path().join("iothub.db");
    let dir = app.stop().await;

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT CAST(SUM(readings) AS BIGINT) FROM blocks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(expected_readings() > 50, "the fixture holds a fair sample");
    assert_eq!(stored as u64, expected_readings());
    let old: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'readings_v1'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(old, 0, "the old table is gone once converted");
    conn.close().await.unwrap();

    // Opening it again converts nothing and loses nothing.
    let app = TestApp::spawn_in(dir, |_| {}).await;
    exports_match_the_old_release(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_postgres_store_of_the_old_layout_is_converted_with_every_reading() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    // The old schema (migrations 1 and 2), filled with the fixture's rows.
    let mut old = sqlx::migrate!("./migrations/postgres");
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < 3)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut target = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    old.run(&mut target).await.unwrap();
    let mut source =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", fixture("store-v1.db").display()))
            .await
            .unwrap();
    for table in ["users", "devices", "readings"] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&mut source)
            .await
            .unwrap();
        for row in rows {
            copy_row(&mut target, table, &row).await;
        }
    }
    target.close().await.unwrap();
    source.close().await.unwrap();

    let url = pg.url.clone();
    let app = TestApp::spawn_with(move |args| args.store.database_url = Some(url)).await;
    exports_match_the_old_release(&app).await;
    app.stop().await;
    let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT CAST(SUM(readings) AS BIGINT) FROM blocks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored as u64, expected_readings());
    conn.close().await.unwrap();
    pg.drop_database().await;
}

/// Copies one row of the old SQLite tables into the same table on PostgreSQL.
async fn copy_row(target: &mut sqlx::PgConnection, table: &str, row: &sqlx::sqlite::SqliteRow) {
    match table {
        "users" => sqlx::query("INSERT INTO users VALUES ($1, $2, $3)")
            .bind(row.get::<String, _>(0))
            .bind(row.get::<String, _>(1))
            .bind(row.get::<i64, _>(2)),
        "devices" => sqlx::query("INSERT INTO devices VALUES ($1, $2, $3, $4, $5)")
            .bind(row.get::<String, _>(0))
            .bind(row.get::<i64, _>(1))
            .bind(row.get::<i64, _>(2))
            .bind(row.get::<Option<String>, _>(3))
            .bind(row.get::<Option<String>, _>(4)),
        _ => sqlx::query("INSERT INTO readings VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(row.get::<String, _>(0))
            .bind(row.get::<i64, _>(1))
            .bind(row.get::<i64, _>(2))
            .bind(row.get::<Option<i64>, _>(3))
            .bind(row.get::<String, _>(4))
            .bind(row.get::<f64, _>(5)),
    }
    .execute(&mut *target)
    .await
    .unwrap();
}
