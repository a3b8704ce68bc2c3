//! Several hubs as one (`--cluster-nats`) on a real NATS server (`scripts/nats-for-tests.sh`
//! starts Debian's nats-server; `scripts/test.sh` passes its URL in `IOTHUB_TEST_NATS_URL`):
//! a device connected to one hub is live on the others, in order and once; a hub that joins
//! later learns what the others hold; a hub that stops or dies takes its devices offline on
//! the others, and a device that moves to another hub is online there.

use crate::helpers::{eventually, Device, HubProcess, TestApp};
use app::model::{CommandStatus, CommandTarget, DeviceSummary, LiveEvent};
use std::time::Duration;

const NATS_URL_VAR: &str = "IOTHUB_TEST_NATS_URL";

pub(crate) fn nats() -> Option<String> {
    let url = std::env::var(NATS_URL_VAR).ok();
    if url.is_none() {
        eprintln!("{NATS_URL_VAR} is not set: skipping (scripts/test.sh sets it)");
    }
    url
}

/// Subjects of this test's own: tests run side by side on one NATS server.
pub(crate) fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("test{}_{nanos}", std::process::id())
}

pub(crate) async fn hub(nats: &str, prefix: &str, id: &str) -> TestApp {
    TestApp::spawn_with(|args| {
        args.cluster.cluster_nats = Some(nats.to_string());
        args.cluster.cluster_prefix = prefix.to_string();
        args.cluster.cluster_hub_id = Some(id.to_string());
    })
    .await
}

/// Hub `id` in a process of its own, to kill.
pub(crate) async fn hub_process(nats: &str, prefix: &str, id: &str) -> HubProcess {
    hub_process_with(nats, prefix, id, &[]).await
}

/// Hub `id` in a process of its own, with `extra` arguments.
pub(crate) async fn hub_process_with(
    nats: &str,
    prefix: &str,
    id: &str,
    extra: &[&str],
) -> HubProcess {
    let mut args = vec![
        "--allow-tokenless-devices",
        "--cluster-nats",
        nats,
        "--cluster-prefix",
        prefix,
        "--cluster-hub-id",
        id,
    ];
    args.extend_from_slice(extra);
    HubProcess::start(&args).await
}

/// Hubs A and B of a system of their own, and device 7 connected to A, shown online on B.
pub(crate) async fn two_hubs_with_a_device_on_a(nats: &str) -> (TestApp, TestApp, Device) {
    let prefix = prefix();
    let a = hub(nats, &prefix, "hub-a").await;
    let b = hub(nats, &prefix, "hub-b").await;
    let mut device = a.device("").await;
    device.send("7,1,1.5").await;
    shown(&b, "7", |s| s.online).await;
    (a, b, device)
}

/// The number the device's next line gives the command `assignment` (`LED=1`) it carries.
pub(crate) async fn command_seq(device: &mut Device, assignment: &str) -> u64 {
    let line = device.recv_text().await;
    line.strip_prefix(&format!("{assignment},seq="))
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("the device got {line:?}, not {assignment}"))
}

/// Each of `hubs` lists one command to `variable`.
pub(crate) async fn listed_once(hubs: &[(&str, &TestApp)], variable: &str) {
    for (hub, app) in hubs {
        let listed = app.dashboard().await.commands;
        let count = listed.iter().filter(|c| c.variable == variable).count();
        assert_eq!(count, 1, "hub {hub} lists the command once: {listed:?}");
    }
}

/// Device `id` as hub `app`'s pages show it, once it is as `wanted` says.
pub(crate) async fn shown(
    app: &TestApp,
    id: &str,
    wanted: impl Fn(&DeviceSummary) -> bool,
) -> DeviceSummary {
    eventually(&format!("device {id} shown as wanted"), || async {
        app.device_summary(id).await.filter(|s| wanted(s))
    })
    .await
}

/// The second values of readings `n,i,i.5` for `i` in `0..n`.
fn halves(n: u32) -> Vec<f64> {
    (0..n).map(|i| f64::from(i) + 0.5).collect()
}

/// The second values of device `id`'s recent readings, as hub `app`'s device page has them.
async fn recent(app: &TestApp, id: &str) -> Vec<f64> {
    app.dashboard_for(id).await.devices[0]
        .recent
        .iter()
        .map(|r| r.values[1].value)
        .collect()
}

#[tokio::test]
async fn a_device_on_one_hub_is_live_on_the_other_in_order_and_once() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let a = hub(&nats, &prefix, "hub-a").await;
    let b = hub(&nats, &prefix, "hub-b").await;
    let mut on_b = b.live_for(Some("7")).await;

    let mut device = a.device("").await;
    for i in 0..50 {
        device.send(&format!("7,{i},{i}.5")).await;
    }
    // B's live stream: the device online, then its 50 readings in order, none twice.
    let online = on_b
        .find(|e| match e {
            LiveEvent::Device(d) if d.id == "7" && d.online => Some(d),
            _ => None,
        })
        .await;
    assert!(
        online.transport.starts_with("websocket ") && online.transport.ends_with(" via hub-a"),
        "{}",
        online.transport
    );
    let mut values = Vec::new();
    let mut last_seq = 0;
    while values.len() < 50 {
        if let LiveEvent::Reading(r) = on_b.next_event().await {
            assert_eq!(&*r.device_id, "7");
            assert!(r.seq > last_seq, "B numbers them in order");
            last_seq = r.seq;
            values.push(r.values[1].value);
        }
    }
    assert_eq!(values, halves(50));
    let twice = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let LiveEvent::Reading(r) = on_b.next_event().await {
                return r;
            }
        }
    })
    .await;
    assert!(twice.is_err(), "a reading came twice: {twice:?}");

    // B's device page has its recent readings and its console.
    let page = b.dashboard_for("7").await;
    let seven = &page.devices[0];
    assert!(seven.summary.online);
    assert_eq!(seven.recent.len(), 50);
    assert!(seven.console.iter().any(|l| l.text == "7,49,49.5"));

    // B stored none of them: A did (each hub stores its own devices' readings).
    assert!(b.history("7", 100).await.is_empty());
    eventually("A stored them", || async {
        Some(a.history("7", 100).await.len()).filter(|&n| n == 50)
    })
    .await;

    // A hub that joins later is told what the others hold.
    let c = hub(&nats, &prefix, "hub-c").await;
    let on_c = shown(&c, "7", |s| s.online).await;
    assert_eq!(on_c.readings, 50);
    assert_eq!(c.dashboard_for("7").await.devices[0].recent.len(), 50);

    // The device leaves A: offline everywhere.
    drop(device);
    shown(&b, "7", |s| !s.online).await;
    shown(&c, "7", |s| !s.online).await;

    // Back on A, then A stops: its devices are offline on the others at once (it says so),
    // not after its silence.
    let mut device = a.device("").await;
    device.send("7,50,50.5").await;
    shown(&b, "7", |s| s.online).await;
    let stopped = tokio::time::Instant::now();
    let _kept = a.stop().await;
    shown(&b, "7", |s| !s.online).await;
    assert!(stopped.elapsed() < Duration::from_secs(3));
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn a_hub_killed_loses_its_devices_and_they_come_back_on_another_hub() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let mut a = hub_process(&nats, &prefix, "hub-a").await;
    let b = hub(&nats, &prefix, "hub-b").await;
    let mut device = a.device("").await;
    for i in 0..10 {
        device.send(&format!("9,{i},{i}.5")).await;
    }
    shown(&b, "9", |s| s.online && s.readings == 10).await;

    // kill -9: A says nothing; B notices its silence.
    a.kill().await;
    let killed = tokio::time::Instant::now();
    shown(&b, "9", |s| !s.online).await;
    let noticed = killed.elapsed();
    assert!(
        noticed <= server::cluster::LOST_AFTER + Duration::from_secs(2),
        "{noticed:?}"
    );

    // The device reconnects, to B: online there, its readings go on from where they were.
    let mut on_b = b.live_for(Some("9")).await;
    let mut device = b.device("").await;
    for i in 10..15 {
        device.send(&format!("9,{i},{i}.5")).await;
    }
    let mut values = Vec::new();
    while values.len() < 5 {
        if let LiveEvent::Reading(r) = on_b.next_event().await {
            values.push(r.values[1].value);
        }
    }
    assert_eq!(values, [10.5, 11.5, 12.5, 13.5, 14.5]);
    let summary = shown(&b, "9", |s| s.online).await;
    assert_eq!(summary.readings, 15, "10 told by A, 5 of its own");
    assert_eq!(
        recent(&b, "9").await,
        halves(15),
        "none twice, none missing"
    );
    b.stop().await;
}

/// Waits until a server listens on 127.0.0.1:`port`.
pub(crate) async fn listening(port: u16) {
    eventually("the server listens", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// A nats-server (with JetStream) of this test's own (the others share one), which it stops
/// and starts.
pub(crate) struct OwnNats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl OwnNats {
    pub(crate) async fn start() -> OwnNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = OwnNats {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.restart().await;
        nats
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn restart(&mut self) {
        let child = tokio::process::Command::new("/usr/sbin/nats-server")
            .args(["--addr", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--jetstream")
            .arg("--store_dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server (apt install nats-server)");
        self.child = Some(child);
        let port = self.port;
        listening(port).await;
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

#[tokio::test]
async fn with_nats_down_each_hub_keeps_ingesting_and_the_live_views_recover() {
    if nats().is_none() {
        return;
    }
    let mut nats = OwnNats::start().await;
    let prefix = prefix();
    let a = hub(&nats.url(), &prefix, "hub-a").await;
    let b = hub(&nats.url(), &prefix, "hub-b").await;
    let mut device = a.device("").await;
    device.send("5,0,0.5").await;
    shown(&b, "5", |s| s.online && s.readings == 1).await;

    let mut b_overview = b.live().await;
    nats.stop().await;
    // B's pages are told at once that they are cut off.
    b_overview
        .find(|e| matches!(e, LiveEvent::Fleet(f) if f.cut_off).then_some(()))
        .await;
    // A goes on taking and storing its device's readings.
    for i in 1..10 {
        device.send(&format!("5,{i},{i}.5")).await;
    }
    eventually("A stores through the outage", || async {
        Some(a.history("5", 100).await.len()).filter(|&n| n == 10)
    })
    .await;
    // B cannot tell whether A is still there: after A's silence it shows A's device offline
    // rather than a stale "online".
    shown(&b, "5", |s| !s.online).await;
    // Each says so on /healthz, still 200: it serves its own devices.
    let health = |app: &TestApp| {
        let url = app.url("/healthz");
        async move {
            let response = reqwest::get(url).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    // The pages say so too: the counts carry it, and the top bar shows a banner.
    assert!(b.dashboard().await.fleet.cut_off);
    let page = b
        .http
        .get(b.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"data-testid="cut-off""#),
        "the banner on B's overview"
    );
    let (status, text) = health(&a).await;
    assert_eq!(status, 200);
    assert!(
        text.starts_with("ok\ncluster: cut off from NATS as hub hub-a"),
        "{text}"
    );

    // NATS back: B shows the device online again, with what it missed, once each.
    nats.restart().await;
    shown(&b, "5", |s| s.online && s.readings == 10).await;
    let (_, text) = health(&b).await;
    assert_eq!(text, "ok\ncluster: linked as hub hub-b\n");
    assert!(!b.dashboard().await.fleet.cut_off);
    assert_eq!(recent(&b, "5").await, halves(10));
    // And the live stream goes on.
    let mut on_b = b.live_for(Some("5")).await;
    device.send("5,10,10.5").await;
    let next = on_b
        .find(|e| match e {
            LiveEvent::Reading(r) if &*r.device_id == "5" => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(next.values[1].value, 10.5);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_command_sent_on_one_hub_reaches_a_device_on_another_and_its_outcome_comes_back() {
    let Some(nats) = nats() else { return };
    let (a, b, mut device) = two_hubs_with_a_device_on_a(&nats).await;

    // From B to the device on A: A sends it (numbered by A), the device acks it to A, and B
    // shows it acked under its own number.
    let sent = b
        .command(CommandTarget::Device("7".into()), "LED", 1.0, None)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let a_seq = command_seq(&mut device, "LED=1").await;
    b.command_status(sent[0].seq, CommandStatus::Delivered)
        .await;
    device.send(&format!("ack={a_seq}")).await;
    b.command_status(sent[0].seq, CommandStatus::Acked).await;
    a.command_status(a_seq, CommandStatus::Acked).await;
    listed_once(&[("A", &a), ("B", &b)], "LED").await;

    // A command sent on A shows on B too; and "all devices" on B reaches A's device.
    let on_a = a
        .command(CommandTarget::Device("7".into()), "FAN", 0.0, None)
        .await
        .unwrap();
    assert_eq!(on_a.len(), 1);
    eventually("B lists A's command", || async {
        b.dashboard()
            .await
            .commands
            .into_iter()
            .find(|c| c.variable == "FAN" && c.device_id == "7")
    })
    .await;
    assert!(device.recv_text().await.starts_with("FAN=0,seq="));
    let to_all = b
        .command(CommandTarget::All, "BUZZ", 1.0, None)
        .await
        .unwrap();
    assert_eq!(to_all.len(), 1);
    assert!(device.recv_text().await.starts_with("BUZZ=1,seq="));

    // Its hub gone, the device is offline, and a command to it says so.
    a.stop().await;
    shown(&b, "7", |s| !s.online).await;
    let failed = b
        .command(CommandTarget::Device("7".into()), "LED", 0.0, None)
        .await
        .unwrap();
    let failed = eventually("the command fails", || async {
        b.dashboard()
            .await
            .commands
            .into_iter()
            .find(|c| c.seq == failed[0].seq && c.status.is_final())
    })
    .await;
    match failed.status {
        CommandStatus::Failed(why) => assert!(why.contains("offline"), "{why}"),
        other => panic!("{other:?}"),
    }
    b.stop().await;
}

#[tokio::test]
async fn a_device_that_connects_to_another_hub_moves_there_and_the_first_lets_go() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let a = hub(&nats, &prefix, "hub-a").await;
    let b = hub(&nats, &prefix, "hub-b").await;
    let mut first = a.device("").await;
    first.send("7,1,1.5").await;
    shown(&b, "7", |s| s.online).await;
    // The device comes back on B while A still has its old connection open (a dead network
    // path A has not noticed yet): B holds it now, A closes its connection and shows it on B.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = b.device("").await;
    second.send("7,2,2.5").await;
    assert_eq!(first.closed().await, "connected to hub hub-b");
    // Its summary comes before its reading: wait for both.
    shown(&a, "7", |s| {
        s.online
            && s.transport.ends_with(" via hub-b")
            && s.latest.get(1).map(|v| v.value) == Some(2.5)
    })
    .await;
    let on_b = shown(&b, "7", |s| s.online).await;
    assert!(!on_b.transport.contains(" via "), "{}", on_b.transport);
    // A's late goodbye for its old connection changes nothing on B.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.device_summary("7").await.unwrap().online);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_hub_that_joins_is_told_of_more_than_fits_one_nats_message() {
    let Some(nats) = nats() else { return };
    let prefix = prefix();
    let spawn = |id: &'static str| {
        let (nats, prefix) = (nats.clone(), prefix.clone());
        TestApp::spawn_with(move |args| {
            args.cluster.cluster_nats = Some(nats);
            args.cluster.cluster_prefix = prefix;
            args.cluster.cluster_hub_id = Some(id.to_string());
            args.devices.max_readings_per_sec = 1_000_000.0;
        })
    };
    let a = spawn("hub-a").await;
    // 30 devices × 400 readings: well over NATS's 1 MiB message limit as JSON.
    let mut devices = Vec::new();
    for d in 0..30 {
        let mut device = a.device("").await;
        for frame in 0..40 {
            let lines: Vec<String> = (0..10)
                .map(|i| format!("big-{d},{},{}.5", frame * 10 + i, frame * 10 + i))
                .collect();
            device.send(&lines.join("\n")).await;
        }
        devices.push(device);
    }
    eventually("A has every reading", || async {
        let snapshot = a.dashboard().await;
        let total: u64 = snapshot.devices.iter().map(|d| d.summary.readings).sum();
        (total == 12_000).then_some(())
    })
    .await;
    let c = spawn("hub-c").await;
    eventually("C is told of all of them", || async {
        let snapshot = c.dashboard().await;
        let told = snapshot
            .devices
            .iter()
            .filter(|d| d.summary.online && d.summary.readings == 400)
            .count();
        (told == 30).then_some(())
    })
    .await;
    assert_eq!(recent(&c, "big-29").await.len(), 400);
    a.stop().await;
    c.stop().await;
}
