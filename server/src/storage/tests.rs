//! Every test runs on SQLite, and on PostgreSQL when `IOTHUB_TEST_POSTGRES_URL` is set (CI
//! always sets it).

use super::test_support::TestPostgres;
use super::*;
use app::model::{FieldValue, HistoryWindow, Registration};
use futures::StreamExt;

fn reading(seq: u64, ms: i64, fields: &[(&str, f64)]) -> Reading {
    Reading {
        seq,
        device_id: "7".into(),
        received_ms: ms,
        device_ms: Some(ms + 1),
        values: fields
            .iter()
            .map(|(f, v)| FieldValue {
                field: (*f).into(),
                value: *v,
            })
            .collect(),
    }
}

async fn open(database: &Database, flush_interval: Duration) -> Store {
    Store::open(StoreConfig {
        database: database.clone(),
        flush_interval,
        flush_rows: 1_000,
    })
    .await
    .expect("store opens")
}

/// Runs `test` once per back end.
async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Database) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    test(Database::Sqlite(dir.path().join(DATABASE_FILE))).await;
    if let Some(pg) = TestPostgres::create().await {
        test(Database::Postgres(pg.url.clone())).await;
        pg.drop_database().await;
    }
}

#[tokio::test]
async fn close_flushes_everything_queued_and_history_reads_it_back() {
    on_each_backend(|db| async move {
        // A flush interval far longer than the test: only `close` can have written these.
        let store = open(&db, Duration::from_secs(3600)).await;
        for i in 0..50u64 {
            let r = reading(
                i + 1,
                1_000 + i as i64,
                &[("temp", 20.0), ("counter", i as f64)],
            );
            store.append(r).await.unwrap();
        }
        store.close().await;
        assert!(matches!(
            store.append(reading(99, 1, &[("x", 1.0)])).await,
            Err(StorageError::Closed)
        ));

        let store = open(&db, Duration::from_millis(10)).await;
        assert_eq!(store.count_readings().await.unwrap(), 50, "{db}");
        let newest = store.history("7", 0, 3).await.unwrap();
        assert_eq!(
            newest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [48, 49, 50]
        );
        // Values come back ordered by field name.
        assert_eq!(
            newest[2].values,
            reading(50, 0, &[("counter", 49.0), ("temp", 20.0)]).values
        );
        assert_eq!(
            newest[2].device_ms,
            Some(1_050),
            "the device's own timestamp is kept"
        );
        assert_eq!(store.history("7", 1_045, 100).await.unwrap().len(), 5);
        assert!(store.history("nope", 0, 10).await.unwrap().is_empty());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn series_are_downsampled_in_the_database() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        // One reading a second for an hour; temp counts up, hum is constant.
        for i in 0..3600u64 {
            store
                .append(reading(
                    i + 1,
                    i as i64 * 1000,
                    &[("temp", i as f64), ("hum", 40.0)],
                ))
                .await
                .unwrap();
        }
        store.close().await;
        let store = open(&db, Duration::from_millis(10)).await;

        let window = store.series("7", 0, 3_600_000, 60).await.unwrap();
        assert_eq!(window.bucket_ms, 60_000);
        let fields: Vec<&str> = window.series.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(fields, ["hum", "temp"]);
        let temp = &window.series[1].points;
        assert_eq!(temp.len(), 60, "{db}");
        assert_eq!(
            (temp[0].min, temp[0].max, temp[0].avg, temp[0].count),
            (0.0, 59.0, 29.5, 60)
        );
        assert_eq!(
            temp[0].t_ms, 30_000,
            "a point sits in the middle of its bucket"
        );
        assert_eq!((temp[59].min, temp[59].max), (3540.0, 3599.0));

        // A window that asks for more points than there are readings gets every reading.
        let fine = store.series("7", 0, 10_000, 1000).await.unwrap();
        assert_eq!(fine.series[1].points.len(), 10);
        // Windows are half-open and limited to the device.
        assert!(store
            .series("7", 3_600_000, 7_200_000, 100)
            .await
            .unwrap()
            .series
            .is_empty());
        assert!(store
            .series("8", 0, 3_600_000, 100)
            .await
            .unwrap()
            .series
            .is_empty());
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn export_streams_every_reading_in_order() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        for i in 0..2500u64 {
            store
                .append(reading(
                    i + 1,
                    i as i64,
                    &[("a", i as f64), ("b", -(i as f64))],
                ))
                .await
                .unwrap();
        }
        store.close().await;
        let store = open(&db, Duration::from_millis(10)).await;
        let exported: Vec<Reading> = store
            .export("7", 100, 2100)
            .map(|r| r.expect("row"))
            .collect::<Vec<_>>()
            .await;
        assert_eq!(exported.len(), 2000, "{db}");
        assert_eq!(exported[0].received_ms, 100);
        assert_eq!(exported[1999].received_ms, 2099);
        assert!(exported
            .iter()
            .all(|r| r.values.len() == 2 && r.values[0].value == -r.values[1].value));
        assert_eq!(store.fields("7", 0, 10).await.unwrap(), ["a", "b"]);
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_only_old_readings() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        for i in 0..12_000u64 {
            store
                .append(reading(i + 1, i as i64, &[("t", 1.0)]))
                .await
                .unwrap();
        }
        store.close().await;
        let store = open(&db, Duration::from_millis(10)).await;
        // More than one delete chunk's worth goes.
        assert_eq!(
            store.delete_older_than(11_000).await.unwrap(),
            11_000,
            "{db}"
        );
        assert_eq!(store.count_readings().await.unwrap(), 1_000);
        assert_eq!(
            store.history("7", 0, 1).await.unwrap()[0].received_ms,
            11_999
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let config = |database| StoreConfig {
        database,
        flush_interval: Duration::from_secs(1),
        flush_rows: 10,
    };
    let err = Store::open(config(Database::Sqlite(not_a_dir.join(DATABASE_FILE))))
        .await
        .err()
        .expect("fails");
    assert!(
        err.to_string()
            .starts_with("cannot open the database (SQLite "),
        "{err}"
    );

    let unreachable = Database::Postgres("postgres://user:secret@127.0.0.1:1/iothub".into());
    let err = Store::open(config(unreachable)).await.err().expect("fails");
    let message = err.to_string();
    assert!(
        message.starts_with("cannot open the database (PostgreSQL 127.0.0.1:1/iothub)"),
        "{message}"
    );
    assert!(
        !message.contains("secret"),
        "the password must not appear in errors"
    );
}

#[test]
fn database_urls() {
    let dir = std::path::Path::new("/data");
    assert_eq!(
        Database::from_config(None, dir).unwrap(),
        Database::Sqlite(dir.join(DATABASE_FILE))
    );
    assert_eq!(
        Database::from_config(Some("postgres://u:p@h/db"), dir).unwrap(),
        Database::Postgres("postgres://u:p@h/db".into())
    );
    assert_eq!(
        Database::from_config(Some("sqlite:///tmp/x.db"), dir).unwrap(),
        Database::Sqlite("/tmp/x.db".into())
    );
    assert!(Database::from_config(Some("mysql://x"), dir).is_err());
}

#[tokio::test]
async fn devices_keep_their_registration_and_first_and_last_seen() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        let registration = Registration {
            name: Some("Kitchen".into()),
            fields: vec![app::model::FieldSpec {
                name: "temp".into(),
                unit: Some("°C".into()),
            }],
            commands: vec![],
        };
        store
            .save_registration("7", &registration, 500)
            .await
            .unwrap();
        store
            .append(reading(1, 1_000, &[("temp", 1.0)]))
            .await
            .unwrap();
        store
            .append(reading(2, 2_000, &[("temp", 2.0)]))
            .await
            .unwrap();
        store.close().await;
        let store = open(&db, Duration::from_millis(10)).await;
        let device = store.device("7").await.unwrap().expect("stored");
        assert_eq!(device.name.as_deref(), Some("Kitchen"), "{db}");
        assert_eq!(device.registration, Some(registration));
        assert_eq!((device.first_seen_ms, device.last_seen_ms), (500, 2_000));
        assert_eq!(store.device("8").await.unwrap(), None);
        // The listing the registry is filled from at start-up holds the same.
        assert_eq!(store.devices().await.unwrap(), vec![device], "{db}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn alarm_rules_and_alarms_are_kept_acknowledged_cleared_and_listed() {
    use crate::storage::AlarmFilter;
    use app::model::{Condition, NewRule};
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        let rule = store
            .create_rule(
                &NewRule {
                    name: " hot ".into(),
                    devices: "kitchen-*".into(),
                    condition: Condition::Above {
                        field: "temp".into(),
                        threshold: 30.0,
                        clear: Some(28.0),
                        hold_s: 60,
                    },
                    webhook_url: Some("https://hooks.example/x".into()),
                    webhook_secret: Some("s".repeat(16)),
                    ntfy_url: Some("https://ntfy.example/hub".into()),
                    email_to: None,
                    on_raised: Some(app::model::Action {
                        target: app::model::ActionTarget::AlarmDevice,
                        variable: "FAN".into(),
                        value: 1.0,
                        duration_ms: None,
                        queue_ms: None,
                    }),
                    on_cleared: None,
                },
                100,
            )
            .await
            .unwrap();
        assert_eq!(rule.rule.name, "hot");
        assert_eq!(store.rules().await.unwrap(), std::slice::from_ref(&rule));
        let first = store
            .raise_alarm(rule.rule.id, "kitchen-1", 200, Some(31.0))
            .await
            .unwrap();
        let second = store
            .raise_alarm(rule.rule.id, "kitchen-2", 300, None)
            .await
            .unwrap();
        let acked = store.ack_alarm(first, "ada", 250).await.unwrap().unwrap();
        assert_eq!(
            (acked.acked_by.as_deref(), acked.rule_name.as_str()),
            (Some("ada"), "hot")
        );
        assert!(store.ack_alarm(999, "ada", 250).await.unwrap().is_none());
        store.clear_alarm(first, 400, Some(27.0)).await.unwrap();
        store
            .note_delivery(first, crate::storage::Channel::Ntfy, "cleared: delivered")
            .await
            .unwrap();
        let up = AlarmFilter {
            active_only: true,
            limit: 10,
            ..AlarmFilter::default()
        };
        let active = store.alarms(&up).await.unwrap();
        assert_eq!(active.iter().map(|a| a.id).collect::<Vec<_>>(), [second]);
        let all = AlarmFilter {
            limit: 10,
            ..AlarmFilter::default()
        };
        let history = store.alarms(&all).await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].cleared_value, Some(27.0), "newest first");
        assert_eq!(
            history[1].ntfy_delivery.as_deref(),
            Some("cleared: delivered")
        );
        assert_eq!(history[1].webhook_delivery, None);
        let mine = AlarmFilter {
            device: Some("kitchen-1".into()),
            limit: 10,
            ..AlarmFilter::default()
        };
        assert_eq!(store.alarms(&mine).await.unwrap().len(), 1);
        // Deleting the rule clears what it had up; the history stays.
        assert!(store.delete_rule(rule.rule.id, 500).await.unwrap());
        assert!(!store.delete_rule(rule.rule.id, 500).await.unwrap());
        assert!(store.alarms(&up).await.unwrap().is_empty());
        assert_eq!(
            store.alarms(&all).await.unwrap()[0].rule_name,
            format!("rule {}", rule.rule.id)
        );
    })
    .await;
}

#[tokio::test]
async fn schedules_and_automation_runs_are_kept() {
    use app::model::{Action, ActionTarget, NewSchedule};
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        let action = Action {
            target: ActionTarget::All,
            variable: "LED".into(),
            value: 1.0,
            duration_ms: Some(500),
            queue_ms: None,
        };
        let made = store
            .create_schedule(
                &NewSchedule {
                    name: " morning ".into(),
                    cron: "30 7 * * *".into(),
                    action: action.clone(),
                },
                100,
            )
            .await
            .unwrap();
        assert_eq!(
            (made.name.as_str(), made.cron.as_str()),
            ("morning", "30 7 * * *")
        );
        assert_eq!(
            store.schedules().await.unwrap(),
            std::slice::from_ref(&made)
        );
        store
            .record_run("schedule 1", 200, &action, &[4, 5], None)
            .await
            .unwrap();
        store
            .record_run("rule 2 raised", 300, &action, &[], Some("nobody online"))
            .await
            .unwrap();
        let runs = store.runs(10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[0].error.as_deref(),
            Some("nobody online"),
            "newest first"
        );
        assert_eq!(
            (runs[1].commands.as_slice(), &runs[1].action),
            ([4, 5].as_slice(), &action)
        );
        assert!(store.delete_schedule(made.id).await.unwrap());
        assert!(!store.delete_schedule(made.id).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_device_keeps_the_name_a_person_gave_it_until_it_is_cleared_or_removed() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        assert!(
            !store.rename_device("7", Some("Porch")).await.unwrap(),
            "unknown"
        );
        store
            .save_registration("7", &Registration::default(), 500)
            .await
            .unwrap();
        assert!(store.rename_device("7", Some("Porch")).await.unwrap());
        let named = store.device("7").await.unwrap().unwrap();
        assert_eq!(named.display_name.as_deref(), Some("Porch"));
        assert!(store.rename_device("7", None).await.unwrap());
        assert_eq!(store.device("7").await.unwrap().unwrap().display_name, None);
        assert!(store.rename_device("7", Some("Porch")).await.unwrap());
        assert!(store.remove_device("7", false, 600).await.unwrap());
        assert!(
            !store.rename_device("7", Some("x")).await.unwrap(),
            "removed"
        );
    })
    .await;
}

#[tokio::test]
async fn api_tokens_carry_their_user_role_and_scope_until_they_expire_or_are_revoked() {
    use crate::storage::NewApiTokenRow;
    use app::model::Role;
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        assert!(store
            .create_user("ada", "hash", "operator", 100)
            .await
            .unwrap());
        let new = |hash: &'static str, expires_ms| NewApiTokenRow {
            user: "ada",
            label: "script",
            scope: Role::Admin,
            token_hash: hash,
            now_ms: 100,
            expires_ms,
        };
        let forever = store.create_api_token(new("t1", None)).await.unwrap();
        let brief = store
            .create_api_token(new("t2", Some(1_000)))
            .await
            .unwrap();
        assert_eq!((forever.user.as_str(), forever.scope), ("ada", Role::Admin));
        let used = store.api_token_use("t1", 5_000).await.unwrap().unwrap();
        assert_eq!(
            (used.user_role.as_str(), used.scope.as_str()),
            ("operator", "admin")
        );
        assert!(store.api_token_use("t2", 999).await.unwrap().is_some());
        assert!(
            store.api_token_use("t2", 1_000).await.unwrap().is_none(),
            "expired"
        );
        assert!(store.api_token_active(forever.id, 5_000).await.unwrap());
        assert!(!store.api_token_active(brief.id, 5_000).await.unwrap());
        store.touch_api_token(forever.id, 4_000).await.unwrap();
        let listed = store.api_tokens(Some("ada")).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].last_used_ms, Some(4_000), "newest first");
        assert!(store.api_tokens(Some("bob")).await.unwrap().is_empty());
        assert_eq!(store.api_tokens(None).await.unwrap().len(), 2);
        assert!(store
            .revoke_api_token(forever.id, 6_000)
            .await
            .unwrap()
            .is_some());
        assert!(store
            .revoke_api_token(forever.id, 6_000)
            .await
            .unwrap()
            .is_none());
        assert!(
            store.api_token_use("t1", 6_001).await.unwrap().is_none(),
            "revoked"
        );
        // A role change is seen at the next use; a removed user's tokens go with them.
        assert!(store.set_role("ada", "viewer").await.unwrap());
        let third = store.create_api_token(new("t3", None)).await.unwrap();
        let used = store.api_token_use("t3", 7_000).await.unwrap().unwrap();
        assert_eq!(used.user_role, "viewer");
        assert!(store.remove_user("ada").await.unwrap());
        assert!(store.api_token_use("t3", 7_000).await.unwrap().is_none());
        assert!(!store.api_token_active(third.id, 7_000).await.unwrap());
        assert!(store.api_tokens(None).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn users_sessions_and_device_tokens() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        assert_eq!(store.user_count().await.unwrap(), 0);
        assert!(store
            .create_user("ada", "hash-1", "admin", 100)
            .await
            .unwrap());
        assert!(
            !store
                .create_user("ada", "hash-2", "viewer", 101)
                .await
                .unwrap(),
            "name taken"
        );
        assert_eq!(
            store.password_hash("ada").await.unwrap().as_deref(),
            Some("hash-1")
        );
        assert_eq!(store.password_hash("bob").await.unwrap(), None);

        store.create_session("s1", "ada", 100, 1_000).await.unwrap();
        assert_eq!(
            store.session_user("s1", 999).await.unwrap(),
            Some(SessionRow {
                user: "ada".to_string(),
                role: "admin".to_string(),
                expires_ms: 1_000
            })
        );
        assert_eq!(
            store.session_user("s1", 1_000).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(store.session_user("s2", 500).await.unwrap(), None);
        // A new password ends every session of that user.
        assert!(store.set_password("ada", "hash-3").await.unwrap());
        assert_eq!(store.session_user("s1", 500).await.unwrap(), None);
        store.create_session("s3", "ada", 100, 1_000).await.unwrap();
        store.delete_session("s3").await.unwrap();
        assert_eq!(store.session_user("s3", 500).await.unwrap(), None);
        store.create_session("s4", "ada", 100, 1_000).await.unwrap();
        assert_eq!(store.delete_expired_sessions(2_000).await.unwrap(), 1);
        store.create_session("s5", "ada", 100, 1_000).await.unwrap();
        assert!(store.remove_user("ada").await.unwrap());
        assert_eq!(store.session_user("s5", 500).await.unwrap(), None);
        assert_eq!(store.user_count().await.unwrap(), 0);

        let first = store
            .create_device_token("7", "kitchen", "h7", 10)
            .await
            .unwrap();
        let second = store.create_device_token("8", "", "h8", 20).await.unwrap();
        assert_ne!(first.id, second.id);
        assert_eq!(first.device_id, "7");
        assert_eq!(first.label, "kitchen");
        assert_eq!(
            store.device_token_by_hash("h7").await.unwrap(),
            Some(first.clone())
        );
        store.touch_device_token(first.id, 30).await.unwrap();
        let revoked = store
            .revoke_device_token(first.id, 40)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (revoked.last_used_ms, revoked.revoked_ms),
            (Some(30), Some(40))
        );
        assert_eq!(
            store.revoke_device_token(first.id, 50).await.unwrap(),
            None,
            "once"
        );
        let listed = store.device_tokens().await.unwrap();
        assert_eq!(
            listed.iter().map(|t| t.id).collect::<Vec<_>>(),
            [second.id, first.id],
            "newest first"
        );
        store.close().await;
    })
    .await;
}

/// What the raw readings give per (field, bucket of `span_ms`): min, max, sum, count.
fn expected_buckets(
    readings: &[Reading],
    span_ms: i64,
) -> std::collections::BTreeMap<(String, i64), (f64, f64, f64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for r in readings {
        for v in &r.values {
            let e = out
                .entry((v.field.to_string(), r.received_ms.div_euclid(span_ms)))
                .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0, 0));
            e.0 = e.0.min(v.value);
            e.1 = e.1.max(v.value);
            e.2 += v.value;
            e.3 += 1;
        }
    }
    out
}

/// A window's points as (field, bucket) → (min, max, avg, count).
fn window_buckets(
    window: &HistoryWindow,
) -> std::collections::BTreeMap<(String, i64), (f64, f64, f64, u64)> {
    window
        .series
        .iter()
        .flat_map(|s| {
            s.points.iter().map(|p| {
                (
                    (
                        s.field.clone(),
                        (p.t_ms - window.from_ms) / window.bucket_ms,
                    ),
                    (p.min, p.max, p.avg, p.count),
                )
            })
        })
        .collect()
}

fn assert_same_buckets(window: &HistoryWindow, readings: &[Reading], what: &str) {
    let expected = expected_buckets(readings, window.bucket_ms);
    let got = window_buckets(window);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{what}: buckets"
    );
    for (key, (min, max, sum, count)) in &expected {
        let (gmin, gmax, gavg, gcount) = got[key];
        assert_eq!(
            (gmin, gmax, gcount),
            (*min, *max, *count),
            "{what}: {key:?}"
        );
        let avg = sum / *count as f64;
        assert!(
            (gavg - avg).abs() <= 1e-9 * avg.abs().max(1.0),
            "{what}: {key:?} avg {gavg} vs {avg}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(12))]

    /// Per-minute and per-hour rollups hold what the raw readings give for the same buckets,
    /// whatever the batches and however a restart splits a minute; they stay when retention
    /// has deleted every raw reading.
    #[test]
    fn rollups_equal_the_raw_readings_and_outlive_them(
        steps in proptest::collection::vec((0i64..30_000, 0usize..3, -1e6f64..1e6), 1..300),
        restart_at in 0usize..300,
    ) {
        let mut t = 0;
        let readings: Vec<Reading> = steps
            .iter()
            .enumerate()
            .map(|(i, (dt, fields, v))| {
                t += dt;
                let names = [("temp", *v), ("hum", v / 3.0), ("co2", -v)];
                reading(i as u64 + 1, t, &names[..=*fields])
            })
            .collect();
        let restart_at = restart_at.min(readings.len());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(on_each_backend(|db| {
                let readings = readings.clone();
                async move {
                    let store = open(&db, Duration::from_millis(5)).await;
                    for r in &readings[..restart_at] {
                        store.append(r.clone()).await.unwrap();
                    }
                    store.close().await;
                    let store = open(&db, Duration::from_millis(5)).await;
                    store
                        .append_batch(readings[restart_at..].iter().cloned().map(Arc::new).collect())
                        .await
                        .unwrap();
                    store.close().await;

                    let store = open(&db, Duration::from_millis(5)).await;
                    let end = 10 * 3_600_000;
                    let minutes = store.series("7", 0, end, 600).await.unwrap();
                    assert_eq!((minutes.bucket_ms, minutes.level_ms), (60_000, 60_000));
                    assert_same_buckets(&minutes, &readings, &format!("minutes on {db}"));
                    let hours = store.series("7", 0, end, 10).await.unwrap();
                    assert_eq!(hours.level_ms, 3_600_000);
                    assert_same_buckets(&hours, &readings, &format!("hours on {db}"));

                    store.delete_older_than(i64::MAX).await.unwrap();
                    assert_eq!(store.count_readings().await.unwrap(), 0);
                    let after = store.series("7", 0, end, 600).await.unwrap();
                    assert_eq!(window_buckets(&after), window_buckets(&minutes), "{db}");
                    store.close().await;
                }
            }));
    }
}

#[tokio::test]
async fn windows_with_ragged_ends_read_raw_readings_there_and_rollups_between() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        // One reading every 10 s for two hours: value = its second.
        let readings: Vec<Reading> = (0..720u64)
            .map(|i| reading(i + 1, i as i64 * 10_000, &[("temp", (i * 10) as f64)]))
            .collect();
        store
            .append_batch(readings.iter().cloned().map(Arc::new).collect())
            .await
            .unwrap();
        store.close().await;
        let store = open(&db, Duration::from_millis(10)).await;
        // From 00:00:25 to 01:30:35: neither end on a minute.
        let (from, to) = (25_000, 5_435_000);
        let window = store.series("7", from, to, 90).await.unwrap();
        assert_eq!(window.level_ms, 60_000);
        let inside: Vec<Reading> = readings
            .iter()
            .filter(|r| r.received_ms >= from && r.received_ms < to)
            .cloned()
            .collect();
        let counted: u64 = window.series[0].points.iter().map(|p| p.count).sum();
        assert_eq!(
            counted,
            inside.len() as u64,
            "{db}: exactly the window's readings"
        );
        let first = &window.series[0].points[0];
        assert_eq!(
            first.min, 30.0,
            "{db}: the first reading inside, not the one before"
        );
        let last = window.series[0].points.last().unwrap();
        assert_eq!(last.max, 5_430.0, "{db}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_removed_device_leaves_the_listing_until_it_sends_again() {
    on_each_backend(|db| async move {
        let store = open(&db, Duration::from_millis(10)).await;
        for i in 0..3u64 {
            store
                .append(reading(i + 1, 1_000 + i as i64, &[("t", 1.0)]))
                .await
                .unwrap();
        }
        store.flush().await;
        assert!(
            store.remove_device("7", false, 2_000).await.unwrap(),
            "{db}"
        );
        assert!(
            !store.remove_device("7", false, 2_001).await.unwrap(),
            "removed already"
        );
        assert!(
            !store.remove_device("8", true, 2_000).await.unwrap(),
            "unknown"
        );
        assert!(store.devices().await.unwrap().is_empty(), "{db}");
        assert_eq!(store.devices_removed_since(1_500).await.unwrap(), ["7"]);
        assert!(
            store.history("7", 0, 10).await.unwrap().is_empty(),
            "deleted"
        );
        // A reading received before the removal (in flight) does not bring it back; a later
        // one does.
        store
            .append(reading(10, 1_999, &[("t", 2.0)]))
            .await
            .unwrap();
        store.flush().await;
        assert!(store.devices().await.unwrap().is_empty(), "{db}");
        store
            .append(reading(11, 2_500, &[("t", 3.0)]))
            .await
            .unwrap();
        store.flush().await;
        let listed: Vec<String> = store
            .devices()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(listed, ["7"], "{db}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn batches_written_while_the_next_ones_gather_keep_every_reading_in_order() {
    on_each_backend(|db| async move {
        // Two values start a write: nearly every batch finds the previous one still being
        // written, and gathers behind it.
        let store = Store::open(StoreConfig {
            database: db.clone(),
            flush_interval: Duration::from_secs(3600),
            flush_rows: 2,
        })
        .await
        .expect("store opens");
        let mut seq = 0;
        for _ in 0..200 {
            let batch = (0..10)
                .map(|_| {
                    seq += 1;
                    Arc::new(reading(seq, seq as i64, &[("temp", seq as f64)]))
                })
                .collect();
            store.append_batch(batch).await.unwrap();
        }
        // `flush` answers once everything queued before it is written, in flight or not.
        store.flush().await;
        assert_eq!(store.count_readings().await.unwrap(), 2_000, "{db}");
        let stored = store.history("7", 0, 2_000).await.unwrap();
        let seqs: Vec<u64> = stored.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=2_000).collect::<Vec<u64>>(), "{db}");
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn stored_answers_once_a_batch_with_the_readings_is_written_without_waiting_for_the_tick() {
    on_each_backend(|db| async move {
        // No batch would be written by the clock within the test.
        let store = open(&db, Duration::from_secs(3600)).await;
        assert!(store.stored().await, "nothing queued: stored at once");
        store
            .append_batch(vec![
                Arc::new(reading(1, 1, &[("temp", 1.0)])),
                Arc::new(reading(2, 2, &[("temp", 2.0)])),
            ])
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), store.stored()).await;
        assert_eq!(answer, Ok(true), "{db}");
        assert_eq!(
            store.count_readings().await.unwrap(),
            2,
            "stored means stored: {db}"
        );
        // Many asking at once all get their answer (sharing commits).
        let mut asking = Vec::new();
        for i in 3..=22u64 {
            store
                .append(reading(i, i as i64, &[("temp", i as f64)]))
                .await
                .unwrap();
            let store = store.clone();
            asking.push(tokio::spawn(async move { store.stored().await }));
        }
        for asked in asking {
            assert!(asked.await.unwrap(), "{db}");
        }
        assert_eq!(store.count_readings().await.unwrap(), 22);
        store.close().await;
    })
    .await;
}
