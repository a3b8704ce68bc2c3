//! Which hub holds which device, in the JetStream key-value bucket the hubs of a system share
//! (`--cluster-nats`, on the NATS server `scripts/nats-for-tests.sh` starts): the holding hub
//! claims and renews, a dead hub's claims expire, a newer claim elsewhere makes a hub let go;
//! and a command queued for an offline device follows it to the hub it connects to.

use crate::cluster::{
    command_seq, hub, hub_process, listed_once, nats, prefix, shown, two_hubs_with_a_device_on_a,
    OwnNats,
};
use crate::helpers::eventually;
use app::model::{CommandInfo, CommandRequest, CommandStatus, CommandTarget};
use async_nats::jetstream::kv;
use server::cluster::{hex, presence_bucket, Claim, PRESENCE_TTL};
use std::time::Duration;

/// The bucket of system `prefix`, once a hub made it.
async fn bucket(nats: &str, prefix: &str) -> kv::Store {
    let client = async_nats::connect(nats).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    eventually("the presence bucket exists", || async {
        jetstream.get_key_value(presence_bucket(prefix)).await.ok()
    })
    .await
}

/// The claim on `device` now, and its revision.
async fn claim(bucket: &kv::Store, device: &str) -> Option<(Claim, u64)> {
    let entry = bucket.entry(hex(device)).await.unwrap()?;
    if entry.operation != kv::Operation::Put {
        return None;
    }
    Some((
        serde_json::from_slice(&entry.value).unwrap(),
        entry.revision,
    ))
}

async fn write_claim(bucket: &kv::Store, device: &str, hub: &str, since_ms: i64) {
    let claim = serde_json::to_vec(&Claim {
        hub: hub.into(),
        since_ms,
    })
    .unwrap();
    bucket.put(hex(device), claim.into()).await.unwrap();
}

#[tokio::test]
async fn the_bucket_names_each_devices_hub_and_forgets_a_dead_one() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let mut a = hub_process(&nats, &prefix, "hub-a").await;
    let b = hub(&nats, &prefix, "hub-b").await;
    let bucket = bucket(&nats, &prefix).await;
    let mut device = a.device("").await;
    device.send("9,1,1.5").await;
    let (held, first) = eventually("A claims the device", || async {
        claim(&bucket, "9").await.filter(|(c, _)| c.hub == "hub-a")
    })
    .await;
    assert!(held.since_ms > 0);

    // Past the bucket's TTL the claim is still there: A renews it.
    tokio::time::sleep(PRESENCE_TTL + Duration::from_secs(1)).await;
    let (renewed, later) = claim(&bucket, "9").await.expect("renewed");
    assert_eq!(renewed, held);
    assert!(later > first, "revision {later} after {first}");

    // kill -9: nobody renews A's claim, and the bucket forgets it within its TTL.
    a.kill().await;
    let killed = tokio::time::Instant::now();
    eventually("the dead hub's claim expires", || async {
        claim(&bucket, "9").await.is_none().then_some(())
    })
    .await;
    let forgotten = killed.elapsed();
    assert!(
        forgotten <= PRESENCE_TTL + Duration::from_secs(2),
        "{forgotten:?}"
    );

    // The device reconnects to B, which claims it.
    let mut device = b.device("").await;
    device.send("9,2,2.5").await;
    eventually("B claims the device", || async {
        claim(&bucket, "9").await.filter(|(c, _)| c.hub == "hub-b")
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn a_hub_keeps_a_device_against_an_older_claim_and_lets_go_for_a_newer_one() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let a = hub(&nats, &prefix, "hub-a").await;
    let bucket = bucket(&nats, &prefix).await;
    let mut device = a.device("").await;
    device.send("7,1,1.5").await;
    let (held, _) = eventually("A claims the device", || async {
        claim(&bucket, "7").await.filter(|(c, _)| c.hub == "hub-a")
    })
    .await;

    // A hub that says nothing else claims it with a connection older than A's: A keeps the
    // device and claims it back.
    write_claim(&bucket, "7", "hub-z", held.since_ms - 1_000).await;
    eventually("A claims it back", || async {
        claim(&bucket, "7").await.filter(|(c, _)| c.hub == "hub-a")
    })
    .await;
    assert!(device.silent_for(Duration::from_millis(300)).await);

    // With a newer connection: A lets go, closing its own.
    write_claim(&bucket, "7", "hub-z", held.since_ms + 1_000).await;
    assert_eq!(device.closed().await, "connected to hub hub-z");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (now, _) = claim(&bucket, "7").await.expect("hub-z's claim");
    assert_eq!(
        now.hub, "hub-z",
        "A neither claims it back nor deletes the claim"
    );
    a.stop().await;
}

#[tokio::test]
async fn a_command_queued_on_one_hub_follows_its_device_to_another() {
    let Some(nats) = nats() else { return };
    let (a, b, mut device) = two_hubs_with_a_device_on_a(&nats).await;
    device.ws.close(None).await.unwrap();
    shown(&b, "7", |s| !s.online).await;

    // Queued on B while the device is offline everywhere; A lists it too.
    let request = CommandRequest {
        target: CommandTarget::Device("7".into()),
        variable: "LED".into(),
        value: 1.0,
        duration_ms: None,
        queue_ms: Some(60_000),
    };
    let sent: Vec<CommandInfo> = b
        .call_json::<app::api::SendCommand, _>(&serde_json::json!({ "request": request }))
        .await
        .unwrap();
    assert_eq!(sent[0].status, CommandStatus::Queued);
    eventually("A lists B's queued command", || async {
        a.dashboard()
            .await
            .commands
            .into_iter()
            .find(|c| c.variable == "LED" && c.status == CommandStatus::Queued)
    })
    .await;

    // The device connects to A: it gets the command from A, acks it there, and both hubs
    // show it acked, each listing it once.
    let mut device = a.device("").await;
    device.send("7,2,2.5").await;
    let a_seq = command_seq(&mut device, "LED=1").await;
    device.send(&format!("ack={a_seq}")).await;
    a.command_status(a_seq, CommandStatus::Acked).await;
    b.command_status(sent[0].seq, CommandStatus::Acked).await;
    assert!(
        device.silent_for(Duration::from_millis(500)).await,
        "sent once"
    );
    listed_once(&[("A", &a), ("B", &b)], "LED").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_claims_come_back_when_nats_restarts_without_them() {
    if nats().is_none() {
        return;
    }
    let mut nats = OwnNats::start().await;
    let prefix = prefix();
    let a = hub(&nats.url(), &prefix, "hub-a").await;
    let mut device = a.device("").await;
    device.send("5,0,0.5").await;
    let held = |bucket: kv::Store| async move {
        eventually("A claims the device", || async {
            claim(&bucket, "5").await.filter(|(c, _)| c.hub == "hub-a")
        })
        .await
    };
    held(bucket(&nats.url(), &prefix).await).await;
    // The bucket lives in the NATS server's memory: a restart loses it. A makes it again and
    // claims its device anew.
    nats.stop().await;
    nats.restart().await;
    held(bucket(&nats.url(), &prefix).await).await;
    a.stop().await;
}
