//! The REST API as a program uses it: `Authorization: Bearer` with API tokens made by the
//! command line, real devices, the OpenAPI document checked against the OpenAPI 3.1 schema
//! and every path in it called, the event stream resumed after a disconnect.

use crate::helpers::{anonymous, eventually, Device, TestApp};
use app::model::{
    CommandInfo, CommandStatus, DeviceSummary, DeviceToken, HistoryWindow, NewDeviceToken, Reading,
};
use futures::StreamExt;
use leptos::server_fn::ServerFn;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Valid calls of every documented operation: (method, documented path, URL, JSON body). They
/// expect a device `7` online, and run in this order (the last ones revoke and remove).
pub fn api_calls() -> Vec<(&'static str, &'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/v1/devices", "/api/v1/devices", None),
        ("GET", "/api/v1/devices/{id}", "/api/v1/devices/7", None),
        (
            "GET",
            "/api/v1/devices/{id}/latest",
            "/api/v1/devices/7/latest",
            None,
        ),
        (
            "GET",
            "/api/v1/devices/{id}/readings",
            "/api/v1/devices/7/readings?limit=2",
            None,
        ),
        (
            "GET",
            "/api/v1/devices/{id}/series",
            "/api/v1/devices/7/series?from_ms=0&to_ms=86400000",
            None,
        ),
        (
            "GET",
            "/api/v1/devices/{id}/export",
            "/api/v1/devices/7/export?from=0&to=9999999999999",
            None,
        ),
        (
            "POST",
            "/api/v1/commands",
            "/api/v1/commands",
            Some(
                json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "duration_ms": null}),
            ),
        ),
        ("GET", "/api/v1/commands", "/api/v1/commands?device=7", None),
        ("GET", "/api/v1/commands/{seq}", "/api/v1/commands/1", None),
        (
            "GET",
            "/api/v1/device-tokens",
            "/api/v1/device-tokens",
            None,
        ),
        (
            "POST",
            "/api/v1/device-tokens",
            "/api/v1/device-tokens",
            Some(json!({"device_id": "8", "label": "sweep"})),
        ),
        (
            "DELETE",
            "/api/v1/device-tokens/{id}",
            "/api/v1/device-tokens/1",
            None,
        ),
        ("GET", "/api/v1/events", "/api/v1/events", None),
        ("GET", "/api/v1/alarm-rules", "/api/v1/alarm-rules", None),
        (
            "POST",
            "/api/v1/alarm-rules",
            "/api/v1/alarm-rules",
            Some(
                json!({"name": "hot", "devices": "*", "condition": {"kind": "above", "field": "temp", "threshold": 40.0}}),
            ),
        ),
        ("GET", "/api/v1/alarms", "/api/v1/alarms?active=true", None),
        (
            "POST",
            "/api/v1/alarms/{id}/ack",
            "/api/v1/alarms/1/ack",
            None,
        ),
        (
            "GET",
            "/api/v1/automation-runs",
            "/api/v1/automation-runs",
            None,
        ),
        ("GET", "/api/v1/schedules", "/api/v1/schedules", None),
        (
            "POST",
            "/api/v1/schedules",
            "/api/v1/schedules",
            Some(
                json!({"name": "morning", "cron": "30 7 * * *", "action": {"target": {"device": "7"}, "variable": "LED", "value": 1.0}}),
            ),
        ),
        (
            "DELETE",
            "/api/v1/schedules/{id}",
            "/api/v1/schedules/1",
            None,
        ),
        (
            "PUT",
            "/api/v1/alarm-rules/{id}",
            "/api/v1/alarm-rules/1",
            Some(
                json!({"name": "any value, renamed", "devices": "7", "condition": {"kind": "above", "field": "temp", "threshold": -1000.0}}),
            ),
        ),
        (
            "DELETE",
            "/api/v1/alarm-rules/{id}",
            "/api/v1/alarm-rules/1",
            None,
        ),
        (
            "PATCH",
            "/api/v1/devices/{id}",
            "/api/v1/devices/7",
            Some(json!({"name": "Porch"})),
        ),
        (
            "DELETE",
            "/api/v1/devices/{id}",
            "/api/v1/devices/7?keep_readings=true",
            None,
        ),
    ]
}

/// What [`api_calls`] expects: device `7` online with readings, and alarm 1 (of rule 1) up.
pub async fn api_fixture(app: &TestApp) -> Device {
    let mut device = device_with_readings(app).await;
    let made = app
        .http
        .post(app.url("/api/v1/alarm-rules"))
        .json(&json!({"name": "any value", "devices": "7", "condition": {"kind": "above", "field": "temp", "threshold": -1000.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    device.send("7,4,24.5").await;
    eventually("alarm 1 up", || async {
        let alarms: Vec<app::model::Alarm> = app.get_json("/api/v1/alarms?active=true").await?;
        alarms.iter().any(|a| a.id == 1).then_some(())
    })
    .await;
    device
}

/// An API token for `admin` with `scope`, made with the command line.
fn api_token(app: &TestApp, scope: &str) -> reqwest::Client {
    let (ok, token, err) = app.cli(
        &["api-token", "create", "--user", "admin", "--scope", scope],
        "",
    );
    assert!(ok, "{err}");
    TestApp::bearer_client(&token)
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A device `7` online with three readings stored.
pub async fn device_with_readings(app: &TestApp) -> Device {
    let mut device = app.device("?id=7").await;
    for i in 1..=3 {
        device.send(&format!("7,{i},2{i}.5")).await;
    }
    eventually("three readings stored", || async {
        (app.history("7", 10).await.len() == 3).then_some(())
    })
    .await;
    device
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_every_path_in_it_answers() {
    let app = TestApp::spawn().await;
    // Public: it describes, it holds no data.
    let res = anonymous()
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let document: Value = res.json().await.unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../data/openapi-3.1-schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    assert!(
        !validator.is_valid(&json!({"openapi": "3.1.0", "paths": {}})),
        "the schema catches a document without info"
    );
    // Every schema a path refers to is in the document.
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{name} is missing"
        );
    }

    // Every documented operation, called with valid arguments by an admin token: a path
    // without a call here fails, as one that does not answer does.
    let admin = api_token(&app, "admin");
    let mut device = api_fixture(&app).await;
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let calls = api_calls();
    let called: BTreeSet<(String, String)> = calls
        .iter()
        .map(|(method, path, _, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        called, documented,
        "every documented operation has a call here, and only those"
    );
    for (method, path, url, body) in calls {
        let mut request = admin.request(method.parse().unwrap(), app.url(url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let res = request.send().await.unwrap();
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
    }
    let _ = device.recv_text().await;
    app.stop().await;
}

#[tokio::test]
async fn a_program_reads_devices_and_history_and_commands_a_device() {
    let app = TestApp::spawn().await;
    let mut device = device_with_readings(&app).await;
    let program = api_token(&app, "operator");
    let get = |path: &str| program.get(app.url(path)).send();

    let devices: Vec<DeviceSummary> = get("/api/v1/devices").await.unwrap().json().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].online);
    let (status, latest) = json_of(get("/api/v1/devices/7/latest").await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(latest["values"][1], json!({"field": "temp", "value": 23.5}));
    let readings: Vec<Reading> = get("/api/v1/devices/7/readings?limit=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(readings.len(), 2, "the newest two");
    assert_eq!(readings[1].values[1].value, 23.5);
    let now = chrono::Utc::now().timestamp_millis();
    let window: HistoryWindow = get(&format!(
        "/api/v1/devices/7/series?from_ms={}&to_ms={}&max_points=10",
        now - 60_000,
        now + 1_000
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let temp = window.series.iter().find(|s| s.field == "temp").unwrap();
    assert_eq!(temp.points.iter().map(|p| p.count).sum::<u64>(), 3);
    let csv = get("/api/v1/devices/7/export?from=0&to=9999999999999")
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text().await.unwrap().lines().count(),
        4,
        "a header and three rows"
    );

    // Errors say what went wrong, with the status to match.
    let (status, error) = json_of(get("/api/v1/devices/nobody").await.unwrap()).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, error) = json_of(
        get("/api/v1/devices/7/series?from_ms=-1&to_ms=9223372036854775807")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    // A command: the device gets it, acks it, and the program sees the status change.
    let sent: Vec<CommandInfo> = program
        .post(app.url("/api/v1/commands"))
        .json(&json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "duration_ms": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seq = sent[0].seq;
    assert_eq!(device.recv_text().await, format!("LED=1,seq={seq}"));
    device.send(&format!("ack={seq}")).await;
    eventually("the command acked", || async {
        let info: CommandInfo = get(&format!("/api/v1/commands/{seq}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (info.status == CommandStatus::Acked).then_some(())
    })
    .await;
    let recent: Vec<CommandInfo> = get("/api/v1/commands?device=7")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(recent.iter().any(|c| c.seq == seq));

    // An operator token may not manage tokens or remove devices.
    assert_eq!(get("/api/v1/device-tokens").await.unwrap().status(), 403);
    let removal = program
        .delete(app.url("/api/v1/devices/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(removal.status(), 403);
    // A viewer token may not send commands; no token at all gets 401.
    let viewer = api_token(&app, "viewer");
    let refused = viewer
        .post(app.url("/api/v1/commands"))
        .json(&json!({"target": "all", "variable": "LED", "value": 0.0, "duration_ms": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        anonymous()
            .get(app.url("/api/v1/devices"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}

/// Posts a command for one device and returns its record.
async fn send_command(app: &TestApp, program: &reqwest::Client, body: Value) -> CommandInfo {
    let response = program
        .post(app.url("/api/v1/commands"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value::<Vec<CommandInfo>>(body).unwrap()[0].clone()
}

async fn command_status(app: &TestApp, program: &reqwest::Client, seq: u64) -> CommandStatus {
    let info: CommandInfo = program
        .get(app.url(&format!("/api/v1/commands/{seq}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info.status
}

#[tokio::test]
async fn a_sleeping_device_gets_its_queued_commands_when_it_wakes_and_late_ones_expire() {
    let app = TestApp::spawn().await;
    let device = device_with_readings(&app).await;
    drop(device);
    app.offline("7").await;
    let program = api_token(&app, "operator");
    let send = |body: Value| send_command(&app, &program, body);
    let status_of = |seq: u64| command_status(&app, &program, seq);
    let waits = send(
        json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "queue_ms": 60_000}),
    )
    .await;
    let late =
        send(json!({"target": {"device": "7"}, "variable": "LED", "value": 0.0, "queue_ms": 300}))
            .await;
    let also = send(
        json!({"target": {"device": "7"}, "variable": "FAN", "value": 2.0, "queue_ms": 60_000}),
    )
    .await;
    assert_eq!(waits.status, CommandStatus::Queued);
    eventually("the short one expired", || async {
        (status_of(late.seq).await == CommandStatus::Expired).then_some(())
    })
    .await;
    assert_eq!(status_of(waits.seq).await, CommandStatus::Queued);

    // The device wakes: the two still waiting arrive in the order they were sent, and acks count.
    let mut device = app.device("?id=7").await;
    assert_eq!(device.recv_text().await, format!("LED=1,seq={}", waits.seq));
    assert_eq!(device.recv_text().await, format!("FAN=2,seq={}", also.seq));
    assert!(
        device.silent_for(Duration::from_millis(300)).await,
        "nothing else, not the expired one"
    );
    device.send(&format!("ack={}", waits.seq)).await;
    eventually("acked", || async {
        (status_of(waits.seq).await == CommandStatus::Acked).then_some(())
    })
    .await;

    // Waiting is for one device only, and for at most a week.
    for bad in [
        json!({"target": "all", "variable": "LED", "value": 1.0, "queue_ms": 1000}),
        json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "queue_ms": 0}),
        json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "queue_ms": 700_000_000u64}),
    ] {
        let (status, error) = json_of(
            program
                .post(app.url("/api/v1/commands"))
                .json(&bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_renamed_device_keeps_its_name_across_a_restart_until_it_is_cleared() {
    let app = TestApp::spawn().await;
    let admin = api_token(&app, "admin");
    let mut device = device_with_readings(&app).await;
    device
        .send(r#"{"register":{"name":"Kitchen sensor"}}"#)
        .await;
    let rename = |name: serde_json::Value| {
        admin
            .patch(app.url("/api/v1/devices/7"))
            .json(&json!({ "name": name }))
            .send()
    };
    let renamed: DeviceSummary = rename(json!("  Porch  "))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(renamed.display_name.as_deref(), Some("Porch"));
    let (status, error) = json_of(rename(json!("x".repeat(65))).await.unwrap()).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let missing = admin
        .patch(app.url("/api/v1/devices/nobody"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The overview card shows the given name rather than the registered one.
    let page = crate::helpers::body_text(app.http.get(app.url("/"))).await;
    assert!(page.contains("Porch"), "the card shows the new name");
    drop(device);

    let data = app.stop().await;
    let app = TestApp::spawn_in(data, |_| {}).await;
    let admin = api_token(&app, "admin");
    let after: DeviceSummary = admin
        .get(app.url("/api/v1/devices/7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after.display_name.as_deref(),
        Some("Porch"),
        "kept in the store"
    );
    let cleared: DeviceSummary = admin
        .patch(app.url("/api/v1/devices/7"))
        .json(&json!({ "name": null }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared.display_name, None);
    app.stop().await;
}

#[tokio::test]
async fn an_admin_program_manages_device_tokens_and_removes_devices() {
    let app = TestApp::spawn().await;
    let admin = api_token(&app, "admin");
    let made: NewDeviceToken = admin
        .post(app.url("/api/v1/device-tokens"))
        .json(&json!({"device_id": "porch", "label": "ESP32"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(made.secret.starts_with("iot_"));
    let listed: Vec<DeviceToken> = admin
        .get(app.url("/api/v1/device-tokens"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0].label, "ESP32");
    let revoked: DeviceToken = admin
        .delete(app.url(&format!("/api/v1/device-tokens/{}", made.token.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(revoked.revoked_ms.is_some());

    let _device = device_with_readings(&app).await;
    let res = admin
        .delete(app.url("/api/v1/devices/7?keep_readings=false"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = admin
        .get(app.url("/api/v1/devices/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.stop().await;
}

/// One Server-Sent Event: (id, event, data).
type Sse = (String, String, String);

/// Reads events from an open `GET /api/v1/events` response.
struct EventReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventReader {
    async fn open(client: &reqwest::Client, url: String, last_id: Option<&str>) -> EventReader {
        let mut request = client.get(url);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        EventReader {
            body: res.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return (id, event, data);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next reading event: (id, the reading's counter value).
    async fn next_reading(&mut self) -> (String, f64) {
        loop {
            let (id, event, data) = self.next().await;
            if event == "reading" {
                let reading: Reading = serde_json::from_str(&data).unwrap();
                return (id, reading.values[0].value);
            }
        }
    }
}

#[tokio::test]
async fn the_event_stream_resumes_after_a_disconnect_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let program = api_token(&app, "viewer");
    let url = app.url("/api/v1/events?device=7");
    let mut device = app.device("?id=7").await;
    device.send("7,0,20").await;
    eventually("the first reading", || async {
        (app.history("7", 10).await.len() == 1).then_some(())
    })
    .await;

    let mut events = EventReader::open(&program, url.clone(), None).await;
    let (_, first, snapshot) = events.next().await;
    assert_eq!(
        first, "snapshot",
        "a new stream starts with the whole picture"
    );
    assert!(snapshot.contains("\"focus\":\"7\""));
    for i in 1..=3 {
        device.send(&format!("7,{i},20")).await;
    }
    let mut last_id = String::new();
    for i in 1..=3 {
        let (id, counter) = events.next_reading().await;
        assert_eq!(counter, f64::from(i));
        last_id = id;
    }
    drop(events);

    // Away for a while: readings 4 to 6 arrive meanwhile.
    for i in 4..=6 {
        device.send(&format!("7,{i},20")).await;
    }
    eventually("readings 4-6 stored", || async {
        (app.history("7", 10).await.len() == 7).then_some(())
    })
    .await;
    let mut events = EventReader::open(&program, url.clone(), Some(&last_id)).await;
    let mut counters = Vec::new();
    while counters.len() < 3 {
        let (id, event, data) = events.next().await;
        assert_ne!(event, "snapshot", "no snapshot when nothing was lost");
        if event == "reading" {
            let reading: Reading = serde_json::from_str(&data).unwrap();
            counters.push(reading.values[0].value);
            last_id = id;
        }
    }
    assert_eq!(
        counters,
        [4.0, 5.0, 6.0],
        "in order, none missed, none twice"
    );
    device.send("7,7,20").await;
    assert_eq!(events.next_reading().await.1, 7.0);
    drop(events);

    // An id from another run of the hub (or garbage) starts over with a snapshot.
    let mut events = EventReader::open(&program, url, Some("0-5")).await;
    assert_eq!(events.next().await.1, "snapshot");
    assert_ne!(last_id, "");

    // The stream ends when its token is revoked.
    let (ok, list, _) = app.cli(&["api-token", "list"], "");
    assert!(ok);
    let id = list
        .lines()
        .nth(1)
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let (ok, _, err) = app.cli(&["api-token", "revoke", &id], "");
    assert!(ok, "{err}");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while events.body.next().await.is_some_and(|chunk| chunk.is_ok()) {}
    })
    .await;
    assert!(ended.is_ok(), "the stream of a revoked token ends");
    app.stop().await;
}

#[tokio::test]
async fn the_reference_page_lists_every_operation() {
    let app = TestApp::spawn().await;
    let page = anonymous()
        .get(app.url("/api/v1/docs"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    for operation in [
        "GET /api/v1/devices",
        "POST /api/v1/commands",
        "GET /api/v1/events",
    ] {
        assert!(page.contains(operation), "{operation}");
    }
    assert!(!page.contains("<script"), "no script on the reference page");
    app.stop().await;
}

#[tokio::test]
async fn pages_on_allowed_origins_may_call_the_api_with_a_token_and_others_may_not() {
    let app = TestApp::spawn_with(|args| {
        args.http.api_cors_origins = vec!["https://ha.example".into()];
    })
    .await;
    let program = api_token(&app, "operator");
    let preflight = |origin: &'static str| {
        anonymous()
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/commands"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://ha.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://ha.example"
    );
    assert!(allowed
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    // The call itself, from that page: a cross-origin POST with a bearer token is let through
    // (it cannot be forged: the other site has no token), and answered for that origin.
    let _device = device_with_readings(&app).await;
    let res = program
        .post(app.url("/api/v1/commands"))
        .header("origin", "https://ha.example")
        .json(&json!({"target": {"device": "7"}, "variable": "LED", "value": 1.0, "duration_ms": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://ha.example"
    );
    // A cross-origin POST riding on the dashboard's cookie is still refused.
    let forged = app
        .http
        .post(app.url(app::api::SendCommand::PATH))
        .header("origin", "https://evil.example")
        .header("content-type", "application/json")
        .body(r#"{"request":{"target":"all","variable":"LED","value":1.0,"duration_ms":null}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn without_allowed_origins_no_page_elsewhere_may_call_the_api() {
    let app = TestApp::spawn().await;
    let res = anonymous()
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/devices"))
        .header("origin", "https://ha.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}
