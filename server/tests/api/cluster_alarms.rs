//! Alarms with several hubs on one PostgreSQL store and one NATS server (`--cluster-nats`):
//! each device is watched by one hub's alarm engine, the one that holds it; the devices of a
//! hub that died by one of those alive, until they connect again.

use crate::cluster::{hub_process_with, nats, prefix, shown};
use crate::helpers::{eventually, TestApp};
use app::model::{Alarm, AlarmRule};
use std::time::Duration;

/// Hub `id` of system `prefix`, on the PostgreSQL database `url`.
async fn stored_hub(nats: &str, prefix: &str, url: &str, id: &str) -> TestApp {
    let (nats, prefix, url, id) = (
        nats.to_string(),
        prefix.to_string(),
        url.to_string(),
        id.to_string(),
    );
    TestApp::spawn_with(move |args| {
        args.cluster.cluster_nats = Some(nats);
        args.cluster.cluster_prefix = prefix;
        args.cluster.cluster_hub_id = Some(id);
        args.store.database_url = Some(url);
    })
    .await
}

/// A rule for every device: offline for a second.
async fn offline_rule(app: &TestApp) -> AlarmRule {
    app.call_json::<app::api::CreateAlarmRule, _>(&serde_json::json!({"rule": {
        "name": "gone",
        "devices": "*",
        "condition": {"kind": "offline", "after_s": 1}
    }}))
    .await
    .unwrap()
}

/// The alarms of `rule` in the store, as hub `app` lists them.
async fn alarms_of(app: &TestApp, rule: &AlarmRule) -> Vec<Alarm> {
    let all: Vec<Alarm> = app.get_json("/api/v1/alarms").await.unwrap();
    all.into_iter()
        .filter(|alarm| alarm.rule_id == rule.id)
        .collect()
}

#[tokio::test]
async fn hubs_on_one_store_watch_only_their_own_devices_for_alarms() {
    let Some(nats) = nats() else { return };
    let Some(pg) = server::storage::test_support::TestPostgres::create().await else {
        return;
    };
    let prefix = prefix();
    let spawn = |id| stored_hub(&nats, &prefix, &pg.url, id);
    let a = spawn("hub-a").await;
    let mut device = a.device("").await;
    device.send("7,1,1.5").await;
    eventually("A stored the reading", || async {
        Some(a.history("7", 10).await.len()).filter(|&n| n == 1)
    })
    .await;
    let rule = offline_rule(&a).await;
    // B starts with device 7 in the store, listed offline until A tells it holds it: B's
    // engine must not take that for an outage.
    let b = spawn("hub-b").await;
    shown(&b, "7", |s| s.online).await;
    let alarms = || async { alarms_of(&a, &rule).await.len() };
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alarms().await,
        0,
        "no hub raised it for a device online on A"
    );

    // The device leaves: A's engine raises it, once; B's does not raise a second.
    drop(device);
    eventually("A raises the offline alarm", || async {
        (alarms().await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        alarms().await,
        1,
        "raised once, by the hub that held the device"
    );
    a.stop().await;
    b.stop().await;
    pg.drop_database().await;
}

#[tokio::test]
async fn the_devices_of_a_hub_that_died_are_watched_by_one_of_the_others() {
    let Some(nats) = nats() else { return };
    let Some(pg) = server::storage::test_support::TestPostgres::create().await else {
        return;
    };
    let prefix = prefix();
    let b = stored_hub(&nats, &prefix, &pg.url, "hub-b").await;
    let c = stored_hub(&nats, &prefix, &pg.url, "hub-c").await;
    let rule = offline_rule(&b).await;
    // A starts after the rule exists, in a process of its own, to be killed.
    let mut a = hub_process_with(&nats, &prefix, "hub-a", &["--database-url", &pg.url]).await;
    let mut device = a.device("").await;
    device.send("7,1,1.5").await;
    shown(&b, "7", |s| s.online).await;
    shown(&c, "7", |s| s.online).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alarms_of(&b, &rule).await.is_empty(), "online on A");

    // A dies with the device connected: nobody holds it. B (the least id alive) raises the
    // alarm once it has been offline for the rule's second; C does not raise a second.
    a.kill().await;
    let raised = eventually("an offline alarm for the orphan", || async {
        alarms_of(&b, &rule).await.into_iter().next()
    })
    .await;
    assert_eq!(raised.device_id, "7");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alarms_of(&b, &rule).await.len(), 1, "raised once");

    // It comes back, on C: the alarm clears.
    let mut device = c.device("").await;
    device.send("7,2,2.5").await;
    eventually("the alarm clears", || async {
        alarms_of(&c, &rule)
            .await
            .into_iter()
            .find(|alarm| alarm.id == raised.id && alarm.cleared_ms.is_some())
    })
    .await;
    b.stop().await;
    c.stop().await;
    pg.drop_database().await;
}
