//! The MQTT bridge against a real Mosquitto (`scripts/mosquitto-for-tests.sh` starts one and
//! `scripts/test.sh` passes its URL in `IOTHUB_TEST_MQTT_URL`).

use crate::helpers::{eventually, TestApp};
use app::model::{CommandStatus, CommandTarget, LiveEvent};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const MQTT_URL_VAR: &str = "IOTHUB_TEST_MQTT_URL";

/// A device on the broker: publishes, and receives what is published to the topics it
/// subscribed to.
struct MqttDevice {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, String)>,
}

impl MqttDevice {
    async fn connect(broker: &server::devices::mqtt::Broker, topics: &[String]) -> MqttDevice {
        let mut options = MqttOptions::new(
            format!("test-device-{:08x}", fastrand::u32(..)),
            broker.host.clone(),
            broker.port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(options, 64);
        let (tx, received) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let to_subscribe = topics.len();
        tokio::spawn(async move {
            let mut acks = 0;
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::Publish(p)) => {
                        let text = String::from_utf8_lossy(&p.payload).into_owned();
                        let _ = tx.send((p.topic.clone(), text));
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        acks += 1;
                        if acks == to_subscribe {
                            let _ = subscribed_tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        for topic in topics {
            client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        }
        if !topics.is_empty() {
            tokio::time::timeout(Duration::from_secs(10), subscribed.recv())
                .await
                .expect("subscribed in time");
        }
        MqttDevice { client, received }
    }

    async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
    }

    async fn next(&mut self) -> (String, String) {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a message in time")
            .expect("still connected")
    }
}

/// A hub bridging `broker` under a topic prefix of its own, and that prefix: hubs of tests
/// running at the same time (or of other runs on the same broker) each hear only their own
/// devices.
async fn bridging(
    broker: server::devices::mqtt::Broker,
    configure: impl FnOnce(&mut server::config::ServeArgs),
) -> (TestApp, String) {
    let prefix = format!("test-{:08x}/devices", fastrand::u32(..));
    let app = TestApp::spawn_with(|args| {
        args.mqtt.mqtt_url = Some(broker);
        args.mqtt.mqtt_topic_prefix = server::devices::mqtt::parse_topic_prefix(&prefix).unwrap();
        // The tests' devices publish without tokens; the bridge must be told to take them.
        args.mqtt.mqtt_devices = vec!["*".into()];
        configure(args);
    })
    .await;
    (app, prefix)
}

fn broker() -> Option<server::devices::mqtt::Broker> {
    let Ok(url) = std::env::var(MQTT_URL_VAR) else {
        eprintln!("{MQTT_URL_VAR} is not set: skipping the MQTT bridge test");
        return None;
    };
    Some(
        server::devices::mqtt::parse_broker(&url).unwrap_or_else(|e| panic!("{MQTT_URL_VAR}: {e}")),
    )
}

#[tokio::test]
async fn readings_come_in_and_commands_go_out_through_the_broker() {
    let Some(broker) = broker() else {
        return;
    };
    let (app, prefix) = bridging(broker.clone(), |_| {}).await;
    let id = "7".to_string();
    let mut device = MqttDevice::connect(
        &broker,
        &[
            format!("{prefix}/{id}/commands"),
            format!("{prefix}/{id}/errors"),
        ],
    )
    .await;
    let mut live = app.live_for(Some(&id)).await;

    // The bridge subscribes once it is connected: until then a reading may go nowhere.
    let readings = format!("{prefix}/{id}/readings");
    let mut counter = 0;
    eventually("a reading through the broker is stored", || {
        counter += 1;
        let payload = format!("{id},{counter},23.5\n{{\"id\":\"{id}\",\"hum\":40}}");
        let (device, app, topic, id) = (&device, &app, &readings, &id);
        async move {
            device.publish(topic, &payload).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (app.history(id, 10).await.len() >= 2).then_some(())
        }
    })
    .await;
    let streamed = live
        .find(|e| match e {
            LiveEvent::Reading(r) if *r.device_id == *id => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(&*streamed.values[0].field, "counter");
    let summary = app.device_summary(&id).await.unwrap();
    assert!(summary.online);
    assert_eq!(
        summary.transport,
        format!("mqtt {}:{}", broker.host, broker.port)
    );

    let sent = app
        .command(CommandTarget::Device(id.clone()), "LED", 1.0, None)
        .await
        .unwrap();
    let seq = sent[0].seq;
    // The device's last reading was JSON, so the command is too.
    assert_eq!(
        device.next().await,
        (
            format!("{prefix}/{id}/commands"),
            format!(r#"{{"cmd":"LED","value":1,"seq":{seq}}}"#)
        )
    );
    device
        .publish(&readings, &format!("{{\"ack\":{seq}}}"))
        .await;
    app.command_status(seq, CommandStatus::Acked).await;

    // Bad input: the error is published back to the device.
    device.publish(&readings, "not a reading").await;
    let (topic, error) = device.next().await;
    assert_eq!(topic, format!("{prefix}/{id}/errors"));
    assert!(error.starts_with("error: "), "{error}");
    // Another device's id inside this device's topic is refused.
    device.publish(&readings, "someone-else,1,2").await;
    let (_, refused) = device.next().await;
    assert!(refused.contains("does not match"), "{refused}");

    // Readings under another prefix (another hub's devices) are not this hub's business. The
    // error answered to the bad line after it shows the bridge has taken both in order.
    device.publish("devices/8/readings", "8,1,20").await;
    device.publish(&readings, "still not a reading").await;
    let (topic, _) = device.next().await;
    assert_eq!(topic, format!("{prefix}/{id}/errors"));
    assert!(app.device_summary("8").await.is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_device_that_stops_publishing_goes_offline() {
    let Some(broker) = broker() else {
        return;
    };
    let (app, prefix) = bridging(broker.clone(), |args| {
        args.devices.ping_after_ms = 300;
        args.devices.keepalive_timeout_ms = 300;
    })
    .await;
    let id = "7".to_string();
    let device = MqttDevice::connect(&broker, &[]).await;
    let topic = format!("{prefix}/{id}/readings");
    eventually("the device is online", || {
        let (device, app, topic, id) = (&device, &app, &topic, &id);
        async move {
            device.publish(topic, &format!("{id},1,1")).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            app.device_summary(id)
                .await
                .filter(|s| s.online)
                .map(|_| ())
        }
    })
    .await;
    // Silent for 600 ms: offline.
    app.offline(&id).await;
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_broker_does_not_stop_the_hub() {
    let app = TestApp::spawn_with(|args| {
        // Nothing listens on port 1 of this machine.
        args.mqtt.mqtt_url =
            Some(server::devices::mqtt::parse_broker("mqtt://127.0.0.1:1").unwrap());
    })
    .await;
    assert!(app.dashboard().await.devices.is_empty());
    app.stop().await;
}

/// A TLS front for the test broker, as a broker's own TLS listener would be: it accepts TLS
/// with a certificate made here for `localhost` and passes the bytes on to the plain broker.
/// Returns its port and the certificate's PEM file, which the hub is told to trust.
async fn tls_front(broker: &server::devices::mqtt::Broker) -> (u16, tempfile::TempDir) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), made.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let upstream = (broker.host.clone(), broker.port);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, dir)
}

#[tokio::test]
async fn a_tls_broker_is_bridged_over_mqtts() {
    let Some(broker) = broker() else {
        return;
    };
    let (port, ca_dir) = tls_front(&broker).await;
    let tls_broker =
        server::devices::mqtt::parse_broker(&format!("mqtts://localhost:{port}")).unwrap();
    let (app, prefix) = bridging(tls_broker, |args| {
        args.mqtt.mqtt_ca_file = Some(ca_dir.path().join("ca.pem"));
    })
    .await;
    // The device itself talks to the plain broker: only the hub's side is TLS here.
    let device = MqttDevice::connect(&broker, &[]).await;
    let topic = format!("{prefix}/7/readings");
    let mut counter = 0;
    eventually("a reading through the TLS broker is stored", || {
        counter += 1;
        let (device, app, topic) = (&device, &app, &topic);
        let payload = format!("7,{counter},21.5");
        async move {
            device.publish(topic, &payload).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (!app.history("7", 1).await.is_empty()).then_some(())
        }
    })
    .await;
    let summary = app.device_summary("7").await.unwrap();
    assert_eq!(summary.transport, format!("mqtt localhost:{port}"));
    app.stop().await;
}

#[tokio::test]
async fn mqtt_tls_settings_are_checked_at_start() {
    let build = |url: &str, ca: Option<std::path::PathBuf>| {
        let mut args = server::config::ServeArgs::defaults();
        let dir = tempfile::tempdir().unwrap();
        args.store.data_dir = dir.path().to_path_buf();
        args.http.bind = "127.0.0.1:0".parse().unwrap();
        args.mqtt.mqtt_url = Some(server::devices::mqtt::parse_broker(url).unwrap());
        args.mqtt.mqtt_ca_file = ca;
        async move {
            let _dir = dir;
            server::startup::Application::build(args)
                .await
                .err()
                .map(|e| e.to_string())
        }
    };
    let none = build("mqtt://localhost", Some("/nonexistent/ca.pem".into())).await;
    assert!(none.unwrap().contains("mqtts://"));
    let missing = build("mqtts://localhost", Some("/nonexistent/ca.pem".into())).await;
    assert!(missing.unwrap().contains("/nonexistent/ca.pem"));
    let empty = tempfile::NamedTempFile::new().unwrap();
    let no_certificate = build("mqtts://localhost", Some(empty.path().into())).await;
    assert!(no_certificate.unwrap().contains("holds no certificate"));
}

#[tokio::test]
async fn an_id_with_a_token_cannot_be_taken_over_through_the_broker() {
    let Some(broker) = broker() else {
        return;
    };
    let (app, prefix) = bridging(broker.clone(), |args| {
        args.devices.allow_tokenless_devices = false;
        args.mqtt.mqtt_devices = vec!["plain-*".into(), "kitchen".into()];
    })
    .await;
    // `kitchen` is connected over WebSocket with its own token.
    let token = app.create_token("kitchen", "ws").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/ws/device?token={}",
        app.addr, token.secret
    ))
    .await
    .unwrap();
    use futures::SinkExt;
    ws.send("temp=20".into()).await.unwrap();
    eventually("kitchen online", || async {
        app.device_summary("kitchen").await.filter(|s| s.online)
    })
    .await;
    let mut attacker = MqttDevice::connect(
        &broker,
        &[
            format!("{prefix}/kitchen/errors"),
            format!("{prefix}/stranger/errors"),
        ],
    )
    .await;
    // An anonymous publish for it is refused, though `kitchen` is listed: its token holds it.
    // (Published until the bridge, which subscribes once connected, answers.)
    let (topic, error) = loop {
        attacker
            .publish(&format!("{prefix}/kitchen/readings"), "temp=99")
            .await;
        if let Ok(Some(answer)) =
            tokio::time::timeout(Duration::from_millis(300), attacker.received.recv()).await
        {
            break answer;
        }
    };
    assert_eq!(topic, format!("{prefix}/kitchen/errors"));
    assert!(error.contains("has a device token"), "{error}");
    let summary = app.device_summary("kitchen").await.unwrap();
    assert!(
        summary.online && summary.transport.starts_with("websocket"),
        "{summary:?}"
    );
    assert!(
        tokio::time::timeout(
            Duration::from_millis(500),
            futures::StreamExt::next(&mut ws)
        )
        .await
        .is_err(),
        "the WebSocket device is not closed"
    );
    // An id that is not listed needs a token in the message.
    attacker
        .publish(&format!("{prefix}/stranger/readings"), "temp=1")
        .await;
    let (topic, error) = attacker.next().await;
    assert_eq!(topic, format!("{prefix}/stranger/errors"));
    assert!(error.contains("not bridged"), "{error}");
    // A message that starts with the device's token is its own.
    let stranger = app.create_token("stranger", "mqtt").await;
    eventually("the token's message is taken", || {
        let (attacker, topic, app) = (&attacker, format!("{prefix}/stranger/readings"), &app);
        let payload = format!("token={}\ntemp=2", stranger.secret);
        async move {
            attacker.publish(&topic, &payload).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            (!app.history("stranger", 10).await.is_empty()).then_some(())
        }
    })
    .await;
    app.stop().await;
}
