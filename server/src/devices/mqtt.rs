//! The MQTT bridge (`--mqtt-url mqtt://host:1883`): for people who already run a broker. The
//! hub subscribes to `devices/+/readings`; a message on `devices/7/readings` is device 7
//! speaking (one or more lines in any of the reading formats). Commands for such a device are
//! published to `devices/<id>/commands`, errors about its messages to `devices/<id>/errors`.
//! `--mqtt-topic-prefix` replaces `devices`, so that two hubs can share one broker.
//! `mqtts://` connects over TLS (rustls on ring, like the rest of the hub).
//!
//! Who may publish is the broker's business (its users and ACLs); the hub trusts the topic.
//! A device counts as online while it publishes, and goes offline after
//! `--ping-after-ms` + `--keepalive-timeout-ms` of silence.

use super::conversation::{converse, Ending, Keepalive, Wire};
use super::session::{Admission, DeviceSession, Handled};
use super::DeviceContext;
use crate::auth::{secret, DeviceAccess, DeviceRefusal};
use crate::protocol::DeviceId;
use crate::retry::Backoff;
use bytes::Bytes;
use clap::Args;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages queued for the broker before publishing waits.
const CLIENT_QUEUE: usize = 256;
/// Messages queued for one bridged device before the bridge waits for it.
const DEVICE_QUEUE: usize = 64;

/// The MQTT bridge.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "MQTT bridge")]
pub struct MqttArgs {
    /// Bridge an MQTT broker: `mqtt://[user:password@]host[:port]`, or `mqtts://` for TLS
    /// (port 8883 unless given). Readings published to
    /// `devices/<id>/readings` come in; commands go out to `devices/<id>/commands`.
    #[arg(long, env = "IOTHUB_MQTT_URL", hide_env_values = true, value_parser = parse_broker)]
    pub mqtt_url: Option<Broker>,

    /// CA certificates (PEM) to trust for an `mqtts://` broker whose certificate is not from a
    /// public CA, e.g. one you made for your own Mosquitto.
    #[arg(long, env = "IOTHUB_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// First topic levels of the MQTT bridge, in place of `devices` (e.g. `home/hub-2/devices`):
    /// two hubs on one broker each keep to their own devices.
    #[arg(long, env = "IOTHUB_MQTT_TOPIC_PREFIX", default_value = DEFAULT_TOPIC_PREFIX, value_parser = parse_topic_prefix)]
    pub mqtt_topic_prefix: Topics,

    /// Device ids the bridge takes readings for without a token, comma-separated; `*` matches
    /// any run of characters (`kitchen-*`, or `*` for every id). Ids that have a device token
    /// are never among them. Any other device must start each message with a line
    /// `token=<its device token>`. Unset: tokens only.
    #[arg(long, env = "IOTHUB_MQTT_DEVICES", value_delimiter = ',')]
    pub mqtt_devices: Vec<String>,
}

/// `--mqtt-devices`: the ids the bridge trusts its broker for.
#[derive(Debug, Clone, Default)]
pub struct ListedDevices {
    patterns: Vec<wildmatch::WildMatch>,
}

impl ListedDevices {
    pub fn new(patterns: &[String]) -> Self {
        ListedDevices {
            patterns: patterns
                .iter()
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(wildmatch::WildMatch::new)
                .collect(),
        }
    }

    pub fn contains(&self, id: &DeviceId) -> bool {
        self.patterns.iter().any(|p| p.matches(id.as_str()))
    }
}

/// Where the broker is: `mqtt://[user:password@]host[:port]`, or `mqtts://` for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
    pub tls: bool,
}

impl std::fmt::Display for Broker {
    // Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

pub fn parse_broker(raw: &str) -> Result<Broker, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let (tls, default_port) = match url.scheme() {
        "mqtt" => (false, 1883),
        "mqtts" => (true, 8883),
        other => {
            return Err(format!(
                "{other}: the broker's URL starts with mqtt:// or mqtts:// (TLS)"
            ))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let credentials = crate::url_credentials::url_credentials(&url)
        .map(|(user, password)| (user, password.unwrap_or_default()));
    Ok(Broker {
        host,
        port: url.port().unwrap_or(default_port),
        credentials,
        tls,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum MqttTlsError {
    #[error("--mqtt-ca-file: {0}")]
    CaFile(#[from] crate::listener::TlsError),
    #[error("--mqtt-ca-file {path}: not a usable CA certificate: {message}")]
    BadCa { path: PathBuf, message: String },
    #[error("--mqtt-ca-file is for a TLS broker: give an mqtts:// URL")]
    CaWithoutTls,
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The TLS client side for an `mqtts://` broker: the public web roots (a broker with a
/// Let's Encrypt certificate, say) and, for a broker with a certificate of your own making,
/// the CA certificates in `ca_file`.
pub fn client_tls(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, MqttTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for certificate in crate::listener::read_certificates(path)? {
            roots.add(certificate).map_err(|e| MqttTlsError::BadCa {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The bridge's topics: `<prefix>/<id>/readings` in, `<prefix>/<id>/commands` and
/// `<prefix>/<id>/errors` out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

pub const DEFAULT_TOPIC_PREFIX: &str = "devices";
/// Longest topic prefix: topics stay far below MQTT's 64 KiB limit.
const MAX_TOPIC_PREFIX: usize = 200;

/// A topic prefix such as `devices` or `home/hub-2/devices`: levels separated by `/`, none
/// empty, no wildcards (`+`, `#`).
pub fn parse_topic_prefix(raw: &str) -> Result<Topics, String> {
    if raw.is_empty() || raw.len() > MAX_TOPIC_PREFIX {
        return Err(format!("a topic prefix is 1 to {MAX_TOPIC_PREFIX} bytes"));
    }
    if raw.contains(['+', '#', '\0']) {
        return Err("a topic prefix cannot contain the wildcards + and # (or NUL)".into());
    }
    if raw.split('/').any(str::is_empty) {
        return Err("a topic prefix has no empty levels: no leading, trailing or double /".into());
    }
    Ok(Topics { prefix: raw.into() })
}

impl Topics {
    /// What the bridge subscribes to.
    pub fn readings_filter(&self) -> String {
        format!("{}/+/readings", self.prefix)
    }

    /// The device id in a readings topic, if it is one.
    pub fn device_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')?
            .strip_suffix("/readings")
            .filter(|id| !id.contains('/'))
    }

    pub fn commands(&self, id: &DeviceId) -> String {
        format!("{}/{id}/commands", self.prefix)
    }

    pub fn errors(&self, id: &DeviceId) -> String {
        format!("{}/{id}/errors", self.prefix)
    }
}

/// Runs the bridge until the server stops, reconnecting to the broker when it goes away.
/// `tls` is [`client_tls`]'s configuration for an `mqtts://` broker.
pub async fn run(
    broker: Broker,
    topics: Topics,
    listed: ListedDevices,
    tls: Option<Arc<rustls::ClientConfig>>,
    context: Arc<DeviceContext>,
) {
    let client_id = format!("iothub-{:08x}", fastrand::u32(..));
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(
        context.limits.max_frame_bytes + 1024,
        context.limits.max_frame_bytes + 1024,
    );
    if let Some((user, password)) = &broker.credentials {
        options.set_credentials(user, password);
    }
    if let Some(tls) = tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    let (client, events) = AsyncClient::new(options, CLIENT_QUEUE);
    Bridge {
        topics,
        listed,
        context,
        client,
        broker,
        devices: HashMap::new(),
    }
    .serve(events)
    .await;
}

/// The broker connection: it hands each device's messages to that device's conversation.
struct Bridge {
    context: Arc<DeviceContext>,
    client: AsyncClient,
    broker: Broker,
    topics: Topics,
    listed: ListedDevices,
    /// Each bridged device's conversation; closed once it has ended.
    devices: HashMap<DeviceId, Bridged>,
}

/// Where a bridged device's messages go, and how it was let in.
struct Bridged {
    messages: mpsc::Sender<Bytes>,
    /// The fingerprint of the token that admitted it: every message must carry that token
    /// (compared by fingerprint, as stored tokens are; the secret itself is not kept). `None`:
    /// listed in `--mqtt-devices`.
    token: Option<String>,
}

impl Bridge {
    async fn serve(mut self, mut events: EventLoop) {
        let stopping = self.context.shutdown.clone();
        let mut backoff = Backoff::default();
        let mut reported = false;
        loop {
            tokio::select! {
                _ = stopping.cancelled() => break,
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        reported = false;
                        let readings = self.topics.readings_filter();
                        tracing::info!(broker = %self.broker, topics = %readings, "MQTT bridge connected");
                        if let Err(err) = self.client.subscribe(readings, QoS::AtLeastOnce).await {
                            tracing::warn!(%err, "MQTT subscribe failed");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(message))) => {
                        self.message(&message.topic, message.payload).await;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if !reported {
                            tracing::warn!(broker = %self.broker, %err, "MQTT broker unreachable; retrying");
                            reported = true;
                        }
                        if !backoff.wait(&stopping).await {
                            break;
                        }
                    }
                },
            }
        }
        let _ = self.client.disconnect().await;
    }

    async fn message(&mut self, topic: &str, payload: Bytes) {
        let Some(raw_id) = self.topics.device_of(topic) else {
            return;
        };
        let id = match DeviceId::parse(raw_id) {
            Ok(id) => id,
            Err(err) => {
                tracing::debug!(topic, %err, "MQTT message for an invalid device id ignored");
                return;
            }
        };
        let (token, payload) = split_token(payload);
        let messages = match self.admit(&id, token).await {
            Ok(messages) => messages,
            Err(refusal) => {
                tracing::debug!(topic, %refusal, "MQTT message refused");
                self.publish_error(&id, &refusal);
                return;
            }
        };
        // Waits while the device's queue is full: the broker connection slows down rather than
        // dropping readings. Fails only if the conversation ended meanwhile.
        if messages.send(payload).await.is_err() {
            tracing::debug!(
                topic,
                "MQTT message arrived as its device's conversation ended"
            );
        }
    }

    /// The queue of `id`'s conversation, started if need be, if this message may speak for
    /// it: a listed id that no token holds, or a message with the device's token.
    async fn admit(
        &mut self,
        id: &DeviceId,
        token: Option<String>,
    ) -> Result<mpsc::Sender<Bytes>, String> {
        let fingerprint = token.as_deref().map(secret::fingerprint);
        // A conversation that ended (gone silent, or closed by the registry because the device
        // connected some other way meanwhile) is started again below.
        if let Some(device) = self.devices.get(id).filter(|d| !d.messages.is_closed()) {
            if device.token.is_none() || device.token == fingerprint {
                return Ok(device.messages.clone());
            }
        }
        let admission = match &token {
            Some(secret) => match self.context.auth.admit_device(Some(secret)).await {
                Ok(DeviceAccess::Device {
                    device_id,
                    token_id,
                }) if device_id == *id => Admission::Token {
                    device: device_id,
                    token_id,
                },
                Ok(DeviceAccess::Device { device_id, .. }) => {
                    return Err(DeviceRefusal::OtherDevice(device_id.to_string()).to_string())
                }
                Ok(DeviceAccess::Tokenless) => return Err(DeviceRefusal::NoToken.to_string()),
                Err(refusal) => return Err(refusal.to_string()),
            },
            None if self.listed.contains(id) => {
                self.context
                    .auth
                    .tokenless_may_use(id)
                    .await
                    .map_err(|refusal| refusal.to_string())?;
                Admission::Tokenless(Some(id.clone()))
            }
            None => {
                return Err(format!(
                    "device {:?} is not bridged: start the message with a line token=<its \
                     device token>, or list it in --mqtt-devices",
                    id.as_str()
                ))
            }
        };
        let messages = self.bridge(id.clone(), admission);
        // Starting a conversation is rare: the time to forget those that ended.
        self.devices.retain(|_, d| !d.messages.is_closed());
        self.devices.insert(
            id.clone(),
            Bridged {
                messages: messages.clone(),
                token: fingerprint,
            },
        );
        Ok(messages)
    }

    /// Tells the device's `…/errors` topic why a message was refused (best effort).
    fn publish_error(&self, id: &DeviceId, message: &str) {
        let payload = format!("error: {message}");
        if let Err(err) =
            self.client
                .try_publish(self.topics.errors(id), QoS::AtMostOnce, false, payload)
        {
            tracing::debug!(%err, "MQTT error message not published");
        }
    }

    /// A registry device for `id`: its own conversation, fed the messages on its topic, with
    /// commands and console lines published to it.
    fn bridge(&self, id: DeviceId, admission: Admission) -> mpsc::Sender<Bytes> {
        let (messages, queue) = mpsc::channel(DEVICE_QUEUE);
        let wire = BridgedDevice {
            messages: queue,
            client: self.client.clone(),
            commands: self.topics.commands(&id),
            errors: self.topics.errors(&id),
        };
        let transport = format!("mqtt {}:{}", self.broker.host, self.broker.port);
        let context = self.context.clone();
        // Publishing devices cannot be pinged: one silent for as long as a WebSocket device
        // may be goes offline.
        let keepalive = Keepalive::Drop {
            after: context.limits.ping_after + context.limits.keepalive_timeout,
        };
        self.context.tasks.spawn(async move {
            let stopping = context.shutdown.clone();
            let (mut session, outbound) = DeviceSession::new(context, transport, admission);
            let mut wire = wire;
            let ending = converse(&mut wire, &mut session, outbound, keepalive, &stopping).await;
            tracing::debug!(reason = %ending.reason(), "MQTT device gone");
        });
        messages
    }
}

/// A message's first line `token=…`, if it has one, and the rest of the message.
fn split_token(payload: Bytes) -> (Option<String>, Bytes) {
    let first_line_end = payload
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(payload.len());
    let first = std::str::from_utf8(&payload[..first_line_end]).ok();
    let token = first
        .and_then(|line| line.trim().split_once('='))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("token"))
        .map(|(_, value)| value.trim().to_string());
    match token {
        Some(token) => {
            let rest = payload.slice((first_line_end + 1).min(payload.len())..);
            (Some(token), rest)
        }
        None => (None, payload),
    }
}

/// One device heard through the broker, as the conversation's [`Wire`].
struct BridgedDevice {
    /// The payloads of its messages, in the order the broker delivered them.
    messages: mpsc::Receiver<Bytes>,
    client: AsyncClient,
    /// Its `…/commands` and `…/errors` topics.
    commands: String,
    errors: String,
}

impl Wire for BridgedDevice {
    type Input = Option<Bytes>;

    async fn read(&mut self) -> Self::Input {
        self.messages.recv().await
    }

    /// Every line of the message, then one flush. Refusals are published to the errors
    /// topic, answers to the commands topic; there is no connection to close, so persistent errors end nothing.
    async fn handle(
        &mut self,
        payload: Self::Input,
        session: &mut DeviceSession,
    ) -> Option<Ending> {
        let Some(payload) = payload else {
            return Some(Ending::Ended("the MQTT bridge stopped".into()));
        };
        let mut answers = Vec::new();
        match std::str::from_utf8(&payload) {
            Err(_) => answers.push(session.refuse("payload is not UTF-8 text")),
            Ok(text) => {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    answers.push(session.line(line).await);
                }
                session.flush().await;
            }
        }
        for answer in answers {
            // Answers (`stored=<n>`) go where commands go: the topic the device listens on.
            let (topic, payload) = match answer {
                Handled::Accepted => continue,
                Handled::Reply(line) => (&self.commands, line),
                Handled::Refused { message, .. } => (&self.errors, format!("error: {message}")),
            };
            if let Err(err) = self
                .client
                .try_publish(topic, QoS::AtMostOnce, false, payload)
            {
                tracing::debug!(%err, "MQTT answer not published");
            }
        }
        None
    }

    /// Fails only when the bridge's broker connection is gone for good (the server stops).
    async fn send(&mut self, line: &str) -> bool {
        self.client
            .publish(&self.commands, QoS::AtLeastOnce, false, line)
            .await
            .is_ok()
    }

    /// Never asked: a publishing device is dropped when silent, not probed.
    async fn probe(&mut self) -> bool {
        true
    }

    /// Nothing to say: the device is not connected to the hub, only publishing.
    async fn farewell(&mut self, _ending: &Ending) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_and_topics() {
        assert_eq!(
            parse_broker("mqtt://broker.lan"),
            Ok(Broker {
                host: "broker.lan".into(),
                port: 1883,
                credentials: None,
                tls: false,
            })
        );
        let b = parse_broker("mqtt://hub:p%40ss@10.0.0.2:1884").unwrap();
        assert_eq!(b.credentials, Some(("hub".into(), "p@ss".into())));
        assert_eq!(b.port, 1884);
        assert_eq!(b.to_string(), "mqtt://10.0.0.2:1884", "no password");
        let plus = parse_broker("mqtt://hub:a+b%2Bc@broker").unwrap();
        assert_eq!(plus.credentials, Some(("hub".into(), "a+b+c".into())));
        let secure = parse_broker("mqtts://broker.example.org").unwrap();
        assert!(secure.tls);
        assert_eq!(secure.port, 8883);
        assert_eq!(secure.to_string(), "mqtts://broker.example.org:8883");
        assert!(parse_broker("http://broker").is_err());
        assert!(parse_broker("broker:1883").is_err());
        let topics = parse_topic_prefix(DEFAULT_TOPIC_PREFIX).unwrap();
        assert_eq!(topics.readings_filter(), "devices/+/readings");
        assert_eq!(topics.device_of("devices/7/readings"), Some("7"));
        assert_eq!(topics.device_of("devices/a/b/readings"), None);
        assert_eq!(topics.device_of("devices/7/commands"), None);
        assert_eq!(topics.device_of("devicesX/7/readings"), None);
    }

    #[test]
    fn topic_prefixes() {
        let topics = parse_topic_prefix("home/hub-2/devices").unwrap();
        assert_eq!(topics.readings_filter(), "home/hub-2/devices/+/readings");
        assert_eq!(topics.device_of("home/hub-2/devices/7/readings"), Some("7"));
        assert_eq!(topics.device_of("devices/7/readings"), None);
        let seven = DeviceId::parse("7").unwrap();
        assert_eq!(topics.commands(&seven), "home/hub-2/devices/7/commands");
        assert_eq!(topics.errors(&seven), "home/hub-2/devices/7/errors");
        for bad in ["", "/devices", "devices/", "a//b", "a/+/b", "#", "a\0b"] {
            assert!(parse_topic_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(parse_topic_prefix(&"a".repeat(MAX_TOPIC_PREFIX + 1)).is_err());
    }
}
