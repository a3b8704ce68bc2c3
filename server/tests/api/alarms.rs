//! Alarms from the outside: a rule made over the REST API, a real device crossing its
//! threshold, a real webhook receiver on 127.0.0.1 checking the signature, acknowledging as an
//! operator, clearing, a restart that does not raise the same alarm twice, and an offline
//! rule.

use crate::helpers::{eventually, TestApp};
use app::model::Alarm;
use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SECRET: &str = "a webhook secret of some length";

/// A webhook receiver: every request's event header, whether its signature is right, and its
/// body, as they arrive.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, bool, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let expected = server::alerts::notify::signature(SECRET, &body);
                let signed = header("x-iothub-signature") == expected;
                let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send((header("x-iothub-event"), signed, json));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// An ntfy-compatible receiver: each push's title, priority and message.
async fn ntfy() -> (String, mpsc::UnboundedReceiver<(String, String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hub-alarms",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let _ = tx.send((header("title"), header("priority"), body));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hub-alarms"), rx)
}

/// An SMTP server that accepts every message and hands over (recipient, the message as sent).
async fn smtp_sink() -> (u16, mpsc::UnboundedReceiver<(String, String)>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                let mut recipient = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        recipient = line[8..].trim().trim_matches(['<', '>']).to_string();
                        b"250 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go on\r\n").await;
                        let mut message = String::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if line == "." {
                                break;
                            }
                            message.push_str(&line);
                            message.push('\n');
                        }
                        let _ = tx.send((recipient.clone(), message));
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, rx)
}

async fn alarms(app: &TestApp, query: &str) -> Vec<Alarm> {
    app.http
        .get(app.url(&format!("/api/v1/alarms{query}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Creates an alarm rule over the REST API (as the admin) and returns it.
async fn make_rule(app: &TestApp, rule: Value) -> Value {
    let made = app
        .http
        .post(app.url("/api/v1/alarm-rules"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200, "{rule}");
    made.json().await.unwrap()
}

async fn next_hook(
    rx: &mut mpsc::UnboundedReceiver<(String, bool, Value)>,
) -> (String, bool, Value) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a webhook within 10 s")
        .unwrap()
}

#[tokio::test]
async fn a_threshold_alarm_is_sent_signed_acknowledged_cleared_and_not_raised_twice() {
    let app = TestApp::spawn().await;
    let (hook, mut hooks) = receiver().await;
    let rule = make_rule(
        &app,
        json!({
            "name": "kitchen too hot",
            "devices": "kitchen-*",
            "condition": {"kind": "above", "field": "temp", "threshold": 30.0, "clear": 28.0},
            "webhook_url": hook,
            "webhook_secret": SECRET,
        }),
    )
    .await;
    assert_eq!(rule["name"], "kitchen too hot");
    assert!(
        rule.get("webhook_secret").is_none(),
        "the secret is never shown"
    );

    let mut device = app.device("?id=kitchen-1").await;
    let mut other = app.device("?id=garage").await;
    other.send("garage,1,45").await; // not covered by the rule
    device.send("kitchen-1,1,25").await;
    let crossed = Instant::now();
    device.send("kitchen-1,2,31.5").await;
    let (event, signed, body) = next_hook(&mut hooks).await;
    let took = crossed.elapsed();
    assert_eq!(event, "raised");
    assert!(signed, "the signature checks out with the rule's secret");
    assert!(
        took < Duration::from_secs(2),
        "the webhook arrived {took:?} after the reading"
    );
    assert_eq!(body["alarm"]["device_id"], "kitchen-1");
    assert_eq!(body["alarm"]["raised_value"], 31.5);
    assert_eq!(body["rule"]["name"], "kitchen too hot");
    let up = alarms(&app, "?active=true").await;
    assert_eq!(up.len(), 1, "garage is not covered: {up:?}");
    let id = up[0].id;

    // Hysteresis: 29 is under the threshold but above the clear level; it stays up.
    device.send("kitchen-1,3,29").await;
    // An operator acknowledges it.
    let operator = app.user_client("otto", "operator").await;
    let acked: Alarm = operator
        .post(app.url(&format!("/api/v1/alarms/{id}/ack")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acked.acked_by.as_deref(), Some("otto"));
    assert!(acked.cleared_ms.is_none());
    // …and a viewer may not.
    let viewer = app.user_client("vera", "viewer").await;
    let refused = viewer
        .post(app.url(&format!("/api/v1/alarms/{id}/ack")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    device.send("kitchen-1,4,27.5").await;
    let (event, signed, body) = next_hook(&mut hooks).await;
    assert_eq!((event.as_str(), signed), ("cleared", true));
    assert_eq!(body["alarm"]["cleared_value"], 27.5);
    assert!(alarms(&app, "?active=true").await.is_empty());
    let history = alarms(&app, "?device=kitchen-1").await;
    assert_eq!(history.len(), 1);
    eventually("the delivery noted", || async {
        let history = alarms(&app, "?device=kitchen-1").await;
        (history[0].webhook_delivery.as_deref() == Some("cleared: delivered")).then_some(())
    })
    .await;

    // Up again, then a restart with the condition still true: no second alarm.
    device.send("kitchen-1,5,35").await;
    assert_eq!(next_hook(&mut hooks).await.0, "raised");
    drop(device);
    drop(other);
    let data = app.stop().await;
    let app = TestApp::spawn_in(data, |_| {}).await;
    let mut device = app.device("?id=kitchen-1").await;
    device.send("kitchen-1,6,36").await;
    device.send("kitchen-1,7,37").await;
    eventually("the readings stored", || async {
        (app.history("kitchen-1", 10).await.len() >= 7).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        hooks.try_recv().is_err(),
        "no second raise after the restart"
    );
    assert_eq!(alarms(&app, "?active=true").await.len(), 1);
    assert_eq!(
        app.dashboard().await.alarms.len(),
        1,
        "the dashboard shows the alarm kept up across the restart"
    );
    device.send("kitchen-1,8,20").await;
    assert_eq!(next_hook(&mut hooks).await.0, "cleared");
    eventually("the dashboard shows it cleared", || async {
        app.dashboard().await.alarms.is_empty().then_some(())
    })
    .await;

    // Edited without a secret: the threshold moves, the webhook keeps signing with the old one.
    let id = rule["id"].as_i64().unwrap();
    let edited = app
        .http
        .put(app.url(&format!("/api/v1/alarm-rules/{id}")))
        .json(&json!({
            "name": "kitchen much too hot",
            "devices": "kitchen-*",
            "condition": {"kind": "above", "field": "temp", "threshold": 40.0},
            "webhook_url": hook,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(
        (edited["id"].as_i64(), edited["name"].as_str()),
        (Some(id), Some("kitchen much too hot"))
    );
    device.send("kitchen-1,9,35").await;
    device.send("kitchen-1,10,41").await;
    let (event, signed, body) = next_hook(&mut hooks).await;
    assert_eq!((event.as_str(), signed), ("raised", true));
    assert_eq!(
        body["alarm"]["raised_value"],
        json!(41.0),
        "35 is below the new threshold"
    );
    let missing = app
        .http
        .put(app.url("/api/v1/alarm-rules/999"))
        .json(&edited_body_without_id(&edited))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

/// A stored rule as a body to PUT (what the hub answered, less what it adds).
fn edited_body_without_id(rule: &Value) -> Value {
    json!({"name": rule["name"], "devices": rule["devices"], "condition": rule["condition"]})
}

#[tokio::test]
async fn an_alarm_is_pushed_to_ntfy_and_emailed_within_two_seconds() {
    let (port, mut mails) = smtp_sink().await;
    let app = TestApp::spawn_with(|args| {
        args.smtp.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        args.smtp.smtp_from = "IoT hub <hub@example.org>".into();
        args.http.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (topic, mut pushes) = ntfy().await;
    make_rule(
        &app,
        json!({
            "name": "freezer warm",
            "devices": "freezer",
            "condition": {"kind": "above", "field": "temp", "threshold": -10.0},
            "ntfy_url": topic,
            "email_to": "owner@example.org",
        }),
    )
    .await;
    let mut device = app.device("?id=freezer").await;
    device.send("freezer,1,-18").await;
    let crossed = Instant::now();
    device.send("freezer,2,-4.5").await;

    let (title, priority, message) = tokio::time::timeout(Duration::from_secs(10), pushes.recv())
        .await
        .expect("a push within 10 s")
        .unwrap();
    assert!(
        crossed.elapsed() < Duration::from_secs(2),
        "pushed {:?} after",
        crossed.elapsed()
    );
    assert_eq!(title, "raised: freezer warm on freezer");
    assert_eq!(priority, "high");
    assert!(message.contains("temp = -4.5"), "{message}");

    let (to, mail) = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .expect("an email within 10 s")
        .unwrap();
    assert!(
        crossed.elapsed() < Duration::from_secs(2),
        "emailed {:?} after",
        crossed.elapsed()
    );
    assert_eq!(to, "owner@example.org");
    assert!(
        mail.contains("Subject: [IoT hub] raised: freezer warm on freezer"),
        "{mail}"
    );
    assert!(
        mail.contains("From: \"IoT hub\" <hub@example.org>")
            || mail.contains("From: IoT hub <hub@example.org>"),
        "{mail}"
    );
    eventually("both deliveries noted", || async {
        let alarm = alarms(&app, "?device=freezer").await.into_iter().next()?;
        (alarm.ntfy_delivery.as_deref() == Some("raised: delivered")
            && alarm.email_delivery.as_deref() == Some("raised: delivered"))
        .then_some(())
    })
    .await;

    // Counted for monitoring: the alarm up by rule, what was sent by channel.
    let metrics = app.metrics_text().await;
    let has = |line: &str| metrics.lines().any(|l| l == line);
    assert!(
        has(r#"iothub_alarms_active{rule="freezer warm"} 1"#),
        "{metrics}"
    );
    assert!(
        has(r#"iothub_notifications_total{channel="ntfy",result="sent"} 1"#),
        "{metrics}"
    );
    assert!(
        has(r#"iothub_notifications_total{channel="email",result="sent"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_device_offline_too_long_raises_an_alarm_that_clears_when_it_is_back() {
    let app = TestApp::spawn().await;
    make_rule(
        &app,
        json!({"name": "gone", "devices": "*", "condition": {"kind": "offline", "after_s": 1}}),
    )
    .await;
    let mut device = app.device("?id=porch").await;
    device.send("porch,1,20").await;
    eventually("porch online", || async {
        app.device_summary("porch").await.filter(|s| s.online)
    })
    .await;
    drop(device);
    let raised = eventually_long("the offline alarm", || async {
        alarms(&app, "?active=true").await.into_iter().next()
    })
    .await;
    assert_eq!(raised.device_id, "porch");
    assert_eq!(raised.rule_name, "gone");
    let mut device = app.device("?id=porch").await;
    device.send("porch,2,20").await;
    eventually_long("the offline alarm cleared", || async {
        alarms(&app, "?active=true").await.is_empty().then_some(())
    })
    .await;

    // Bad rules get clear errors.
    for bad in [
        json!({"name": "", "devices": "*", "condition": {"kind": "offline", "after_s": 1}}),
        json!({"name": "x", "devices": "*", "condition": {"kind": "offline", "after_s": 0}}),
        json!({"name": "x", "devices": "*", "condition": {"kind": "above", "field": "t", "threshold": 30, "clear": 31}}),
        json!({"name": "x", "devices": "*", "condition": {"kind": "above", "field": "t", "threshold": 30}, "webhook_url": "ftp://x"}),
        json!({"name": "x", "devices": "*", "condition": {"kind": "sideways"}}),
    ] {
        let res = app
            .http
            .post(app.url("/api/v1/alarm-rules"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{bad}: {}", res.status());
    }
    app.stop().await;
}

/// Like `eventually`, with time for the engine's one-second tick.
async fn eventually_long<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_alarm_switches_a_device_on_and_off_and_each_run_is_logged_with_its_ack() {
    let app = TestApp::spawn().await;
    make_rule(
        &app,
        json!({
            "name": "too hot: fan",
            "devices": "kitchen",
            "condition": {"kind": "above", "field": "temp", "threshold": 30.0},
            "on_raised": {"target": "alarm_device", "variable": "FAN", "value": 1.0},
            "on_cleared": {"target": {"device": "kitchen"}, "variable": "FAN", "value": 0.0},
        }),
    )
    .await;
    let mut device = app.device("?id=kitchen").await;
    device.send("kitchen,1,25").await;
    device.send("kitchen,2,33").await;
    let on = device.recv_text().await;
    let seq: u64 = on
        .strip_prefix("FAN=1,seq=")
        .unwrap_or_else(|| panic!("the fan command: {on}"))
        .parse()
        .unwrap();
    device.send(&format!("ack={seq}")).await;
    let runs: Vec<app::model::AutomationRun> = eventually("the run with its ack", || async {
        let runs: Vec<app::model::AutomationRun> = app.get_json("/api/v1/automation-runs").await?;
        runs.first()
            .is_some_and(|r| {
                r.commands
                    .first()
                    .is_some_and(|c| c.status == app::model::CommandStatus::Acked)
            })
            .then_some(runs)
    })
    .await;
    assert_eq!(runs[0].source, "rule 1 raised");
    assert_eq!(runs[0].commands[0].seq, seq);

    device.send("kitchen,3,20").await;
    assert!(device.recv_text().await.starts_with("FAN=0,seq="));

    // A command that cannot go out is logged with the reason (here, in its status).
    drop(device);
    app.offline("kitchen").await;
    make_rule(
        &app,
        json!({
            "name": "porch cold: heat kitchen",
            "devices": "porch",
            "condition": {"kind": "below", "field": "temp", "threshold": 0.0},
            "on_raised": {"target": {"device": "kitchen"}, "variable": "HEAT", "value": 1.0},
        }),
    )
    .await;
    let mut porch = app.device("?id=porch").await;
    porch.send("porch,1,-3").await;
    let run = eventually("the failed run", || async {
        let runs: Vec<app::model::AutomationRun> = app.get_json("/api/v1/automation-runs").await?;
        runs.into_iter().find(|r| r.action.variable == "HEAT")
    })
    .await;
    let failed = matches!(
        run.commands.first().map(|c| &c.status),
        Some(app::model::CommandStatus::Failed(why)) if why.contains("offline")
    );
    assert!(failed || run.error.is_some(), "{run:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_sends_its_command_at_its_times_until_it_is_deleted() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=lamp").await;
    device.send("lamp,1,20").await;
    eventually("the lamp online", || async {
        app.device_summary("lamp").await.filter(|s| s.online)
    })
    .await;
    let bad = app
        .http
        .post(app.url("/api/v1/schedules"))
        .json(&json!({"name": "x", "cron": "every morning", "action": {"target": "all", "variable": "LED", "value": 1.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // Every second (the seconds field first), so the test need not wait for 07:30.
    let schedule: app::model::Schedule = app
        .http
        .post(app.url("/api/v1/schedules"))
        .json(&json!({"name": "blink", "cron": "* * * * * *", "action": {"target": {"device": "lamp"}, "variable": "LED", "value": 1.0}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(5), device.recv_text())
        .await
        .expect("the scheduled command within 5 s");
    assert!(line.starts_with("LED=1,seq="), "{line}");
    // Logged just after the command went out.
    eventually("the schedule's run logged", || async {
        let runs: Vec<app::model::AutomationRun> = app.get_json("/api/v1/automation-runs").await?;
        runs.iter()
            .any(|r| r.source == format!("schedule {}", schedule.id))
            .then_some(())
    })
    .await;

    let deleted = app
        .http
        .delete(app.url(&format!("/api/v1/schedules/{}", schedule.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // What was already on its way may still arrive; then nothing more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while !device.silent_for(Duration::from_millis(10)).await {}
    assert!(
        device.silent_for(Duration::from_millis(2500)).await,
        "nothing after deleting it"
    );
    app.stop().await;
}

/// What the dashboard does with alarms, through its server functions and live stream: an admin
/// makes a rule (the page gets it for threshold lines), a device crosses it, the alarm arrives
/// live, an operator acknowledges it, a viewer may not, and deleting the rule clears it.
#[tokio::test]
async fn the_dashboard_makes_rules_and_sees_alarms_live_and_acknowledges_them() {
    use app::api::{
        AcknowledgeAlarm, CreateAlarmRule, DeleteAlarmRule, ListAlarmRules, ListAlarms,
    };
    use app::model::{AlarmRule, LiveEvent};
    use leptos::server_fn::ServerFn;
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=kitchen-1").await;
    device.send("kitchen-1,1,20").await;
    let mut live = app.live().await;
    let rule: AlarmRule = app
        .call_json::<CreateAlarmRule, _>(&json!({"rule": {
            "name": "<b>too hot</b>",
            "devices": "kitchen-*",
            "condition": {"kind": "above", "field": "temp", "threshold": 30.0}
        }}))
        .await
        .unwrap();
    let rules: Vec<AlarmRule> = app.call::<ListAlarmRules, _>(&[]).await.unwrap();
    assert_eq!(rules, std::slice::from_ref(&rule));
    let refused = app
        .call_json::<CreateAlarmRule, AlarmRule>(&json!({"rule": {
            "name": "bad", "devices": "*",
            "condition": {"kind": "above", "field": "temp", "threshold": 30.0, "clear": 35.0}
        }}))
        .await;
    assert!(
        matches!(&refused, Err((400, why)) if why.contains("clears at or below")),
        "{refused:?}"
    );

    device.send("kitchen-1,2,31").await;
    let raised = live
        .find(|e| match e {
            LiveEvent::Alarm(a) => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(
        (raised.device_id.as_str(), raised.raised_value),
        ("kitchen-1", Some(31.0))
    );
    assert_eq!(app.dashboard().await.alarms, std::slice::from_ref(&raised));

    let id = raised.id.to_string();
    let viewer = app.user_client("vic", "viewer").await;
    let as_viewer = viewer
        .post(app.url(AcknowledgeAlarm::PATH))
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(as_viewer.status(), 403);
    let as_viewer = viewer
        .post(app.url(ListAlarms::PATH))
        .form(&[("active_only", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(as_viewer.status(), 200, "viewers see the alarms");
    let acked: Alarm = app
        .call::<AcknowledgeAlarm, _>(&[("id", &id)])
        .await
        .unwrap();
    assert_eq!(acked.acked_by.as_deref(), Some("admin"));
    let seen = live
        .find(|e| match e {
            LiveEvent::Alarm(a) if a.acked_by.is_some() => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(seen.id, raised.id);
    let history: Vec<Alarm> = app
        .call::<ListAlarms, _>(&[("active_only", "false"), ("device", "kitchen-1")])
        .await
        .unwrap();
    assert_eq!(history.len(), 1);

    // Deleting the rule clears its alarm, live too.
    let () = app
        .call::<DeleteAlarmRule, _>(&[("id", &rule.id.to_string())])
        .await
        .unwrap();
    let cleared = live
        .find(|e| match e {
            LiveEvent::Alarm(a) if a.cleared_ms.is_some() => Some(a),
            _ => None,
        })
        .await;
    assert_eq!(cleared.id, raised.id);
    assert!(app.dashboard().await.alarms.is_empty());
    let rules: Vec<AlarmRule> = app.call::<ListAlarmRules, _>(&[]).await.unwrap();
    assert!(rules.is_empty());
    app.stop().await;
}

/// The config file's rules at start: created once, brought up to date on a later start with
/// the same name (same id, no second rule), and rules made in the dashboard left alone.
#[tokio::test]
async fn config_file_rules_are_created_then_kept_up_to_date_by_name() {
    use app::model::{AlarmRule, Condition, NewRule};
    let rule = |threshold: f64| NewRule {
        name: "from the file".into(),
        devices: "*".into(),
        condition: Condition::Above {
            field: "temp".into(),
            threshold,
            clear: None,
            hold_s: 0,
        },
        webhook_url: None,
        webhook_secret: None,
        ntfy_url: None,
        email_to: None,
        on_raised: None,
        on_cleared: None,
    };
    let list = |app: &TestApp| {
        let http = app.http.clone();
        let url = app.url("/api/v1/alarm-rules");
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Vec<AlarmRule>>()
                .await
                .unwrap()
        }
    };
    let first = rule(30.0);
    let app = TestApp::spawn_with(|args| args.alarm_rules = vec![first]).await;
    make_rule(&app, json!({"name": "from the dashboard", "devices": "*", "condition": {"kind": "offline", "after_s": 60}})).await;
    let before = list(&app).await;
    assert_eq!(before.len(), 2);
    let data = app.stop().await;

    let app = TestApp::spawn_in(data, |args| args.alarm_rules = vec![rule(35.0)]).await;
    let after = list(&app).await;
    assert_eq!(after.len(), 2, "updated, not added: {after:?}");
    let from_file = after.iter().find(|r| r.name == "from the file").unwrap();
    assert_eq!(from_file.id, before[0].id);
    assert!(matches!(from_file.condition, Condition::Above { threshold, .. } if threshold == 35.0));
    assert!(after.iter().any(|r| r.name == "from the dashboard"));
    app.stop().await;
}

/// A device page is sent the rules that watch its device, for their threshold lines, and no
/// other (the browser does not match device patterns itself); the Alarms page gets them all,
/// the overview none.
#[tokio::test]
async fn a_device_page_carries_the_rules_that_cover_its_device() {
    let app = TestApp::spawn().await;
    for (name, devices) in [("kitchen", "kitchen-*"), ("garage", "garage")] {
        make_rule(
            &app,
            json!({
                "name": name,
                "devices": devices,
                "condition": {"kind": "above", "field": "temp", "threshold": 30.0},
            }),
        )
        .await;
    }
    let rules_on = |path: &str| {
        let (request, path) = (app.http.get(app.url(path)), path.to_string());
        async move {
            let page = request.send().await.unwrap().text().await.unwrap();
            let data = page
                .split(r#"<script type="application/json" id="page-data">"#)
                .nth(1)
                .and_then(|rest| rest.split("</script>").next())
                .unwrap_or_else(|| panic!("{path} carries its data: {page}"));
            let data: Value = serde_json::from_str(data).unwrap();
            let mut names: Vec<String> = data["rules"]
                .as_array()
                .unwrap_or(&Vec::new())
                .iter()
                .map(|rule| rule["name"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        }
    };
    assert_eq!(rules_on("/devices/kitchen-1").await, ["kitchen"]);
    assert_eq!(rules_on("/devices/garage").await, ["garage"]);
    assert!(rules_on("/devices/hall").await.is_empty());
    assert_eq!(rules_on("/alarms").await, ["garage", "kitchen"]);
    assert!(rules_on("/").await.is_empty());
    app.stop().await;
}
