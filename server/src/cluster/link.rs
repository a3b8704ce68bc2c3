//! The hub's link to the others: one NATS connection; what this hub tells (its registry's
//! local events, readings batched per device) and what it hears (applied to its registry).

use super::presence::{self, Change, Presence};
use super::{Ask, ClusterArgs, ClusterError, Envelope, Subjects, Told, ALIVE_EVERY, LOST_AFTER};
use crate::registry::{DeviceState, Registry, RemoteCommand, Selection};
use crate::url_credentials::url_credentials;
use app::model::{CommandInfo, CommandRequest, CommandTarget, LiveEvent, Scope};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events taken from the registry at once before they are published: the readings of one
/// device among them go out as one message.
const BATCH: usize = 256;

/// A hub's connection to NATS, made at start-up (see [`connect`]) and run by [`run`].
pub struct Link {
    client: async_nats::Client,
    subjects: Subjects,
    hub: String,
    /// The connection's state changes: on each (re)connection the hub says hello again.
    connection: mpsc::Receiver<async_nats::Event>,
}

impl Link {
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// A handle that says whether the link is up, for as long as the hub runs.
    pub fn status(&self) -> LinkStatus {
        LinkStatus {
            client: self.client.clone(),
            hub: self.hub.clone().into(),
        }
    }
}

/// Whether a hub is linked to the others (its NATS connection is up), as `/healthz` says.
#[derive(Clone)]
pub struct LinkStatus {
    client: async_nats::Client,
    hub: std::sync::Arc<str>,
}

impl LinkStatus {
    pub fn linked(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// One line for `/healthz`. Either way the hub serves its own devices.
    pub fn line(&self) -> String {
        if self.linked() {
            format!("cluster: linked as hub {}\n", self.hub)
        } else {
            format!(
                "cluster: cut off from NATS as hub {}: its own devices only, the others as last told\n",
                self.hub
            )
        }
    }
}

/// Connects to the NATS server of `args` as hub `hub`. A server that is not up yet is retried
/// in the background (the hub serves its own devices meanwhile); a credentials file that
/// cannot be read, or a bad address, stops the start.
pub async fn connect(args: &ClusterArgs, url: &str, hub: String) -> Result<Link, ClusterError> {
    let (events, connection) = mpsc::channel(16);
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("iothub {hub}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        // The hubs of a system sit near their NATS server: try again soon (the client's own
        // backoff grows to several seconds, which the live views would wait out).
        .reconnect_delay_callback(|attempts| Duration::from_millis(250 * attempts.min(8) as u64))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                // Only the latest state matters; a full queue already holds a reconnection.
                let _ = events.try_send(event);
            }
        });
    // async-nats does not sign in with what a URL carries: `nats://user:password@host` (or
    // `nats://token@host`) is taken apart here.
    let credentials = url::Url::parse(url).ok().as_ref().and_then(url_credentials);
    match credentials {
        None => {}
        Some((user, Some(password))) => options = options.user_and_password(user, password),
        Some((token, None)) => options = options.token(token),
    }
    if let Some(path) = &args.cluster_nats_creds {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| ClusterError::Credentials {
                    path: path.clone(),
                    source,
                })?;
    }
    if let Some(path) = &args.cluster_nats_ca_file {
        options = options
            .add_root_certificates(path.clone())
            .require_tls(true);
    }
    let client = options.connect(url).await?;
    Ok(Link {
        client,
        subjects: Subjects::new(&args.cluster_prefix),
        hub,
        connection,
    })
}

/// Runs the link until `stop`: tells the other hubs of this hub's devices and applies what
/// they tell to `registry`.
pub async fn run(link: Link, registry: Registry, stop: CancellationToken) {
    let Link {
        client,
        subjects,
        hub,
        mut connection,
    } = link;
    let subscribed = async {
        Ok::<_, ClusterError>((
            client.subscribe(subjects.devices()).await?,
            client.subscribe(subjects.hubs()).await?,
            client.subscribe(subjects.commands(&hub)).await?,
        ))
    };
    let (mut devices, mut hubs, mut commands) = match subscribed.await {
        Ok(subscriptions) => subscriptions,
        Err(err) => {
            tracing::error!(%err, "the cluster link cannot start");
            return;
        }
    };
    // Which hub holds which device, in a JetStream bucket: its own task (its requests wait
    // for JetStream's answers), told of this hub's devices as they come and go.
    let (changes, changed) = mpsc::channel(CHANGES);
    let presence = Arc::new(OnceLock::new());
    tokio::spawn(presence::run(
        client.clone(),
        subjects.prefix().to_string(),
        hub.clone(),
        registry.clone(),
        changed,
        presence.clone(),
        stop.child_token(),
    ));
    let teller = Teller {
        client: &client,
        subjects: &subjects,
        hub: &hub,
    };
    // The page scope with no devices: the snapshot is not needed, the receiver is.
    let (_, mut local) = registry.subscribe_local(Selection::Page(&Scope::Fleet));
    let mut routed = registry.route_remote_commands();
    registry.linked(client.connection_state() == async_nats::connection::State::Connected);
    teller.tell(Told::Hello).await;
    teller.tell_state(&registry).await;
    let mut heard: HashMap<String, Instant> = HashMap::new();
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    // When this hub last asked the others to tell all again after its NATS client dropped
    // messages.
    let mut caught_up: Option<Instant> = None;
    tracing::info!(hub = %hub, "joined the other hubs on NATS");
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                // Bounded: a hub cut off from NATS (or never let in) would wait for ever.
                let goodbye = async {
                    teller.tell(Told::Gone).await;
                    let _ = client.flush().await;
                };
                let _ = tokio::time::timeout(GOODBYE_WITHIN, goodbye).await;
                return;
            }
            event = local.recv() => {
                let mut batch = match event {
                    Ok(event) => vec![event],
                    Err(RecvError::Lagged(_)) => {
                        teller.tell_state(&registry).await;
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let mut lagged = false;
                while batch.len() < BATCH {
                    match local.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(TryRecvError::Lagged(_)) => {
                            lagged = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                for change in changes_of(&batch) {
                    // A full queue: the next renewal claims what this one would have.
                    let _ = changes.try_send(change);
                }
                for told in told_of(batch) {
                    teller.tell(told).await;
                }
                // Events were dropped: what this hub holds, whole, puts the others right.
                if lagged {
                    teller.tell_state(&registry).await;
                }
            }
            Some(message) = devices.next() => {
                hear(&teller, &registry, &mut heard, &message.payload).await;
            }
            Some(message) = hubs.next() => {
                hear(&teller, &registry, &mut heard, &message.payload).await;
            }
            Some(message) = commands.next() => {
                let answer = send_here(&registry, &message.payload);
                if let (Some(reply), Ok(answer)) = (message.reply, serde_json::to_vec(&answer)) {
                    if let Err(err) = client.publish(reply, answer.into()).await {
                        tracing::debug!(%err, "a command's answer was not published");
                    }
                }
            }
            // Awaited here, before anything else this hub hears: the holding hub's news of
            // the command then finds it known.
            Some(command) = routed.recv() => {
                let answer = ask(&client, &subjects, &hub, presence.get(), &command).await;
                registry.remote_command_sent(command.seq, &command.hub, answer);
            }
            _ = alive.tick() => {
                teller.tell(Told::Alive).await;
                let now = Instant::now();
                heard.retain(|other, last| {
                    let silent = now.duration_since(*last) > LOST_AFTER;
                    if silent {
                        tracing::warn!(hub = %other, "a hub went silent: its devices are offline");
                        registry.hub_lost(other);
                    }
                    !silent
                });
                // The devices of hubs that died are watched for alarms by one hub: the one
                // with the least id among those alive.
                registry.keep_orphans(heard.keys().all(|other| hub.as_str() < other.as_str()));
            }
            Some(event) = connection.recv() => {
                tracing::info!(%event, "NATS");
                match event {
                    async_nats::Event::Connected => {
                        registry.linked(true);
                        // Back after a cut: the others may have given this hub up, and missed
                        // what it told meanwhile (and it what they told).
                        teller.tell(Told::Hello).await;
                        teller.tell_state(&registry).await;
                    }
                    async_nats::Event::Disconnected => registry.linked(false),
                    // The client dropped messages this hub did not take in time: ask the
                    // others for all they hold (what was applied already is not applied
                    // twice), at most once per `LOST_AFTER` so that an overloaded hub does
                    // not make every other hub resend everything again and again.
                    async_nats::Event::SlowConsumer(_)
                        if caught_up.is_none_or(|at| at.elapsed() > LOST_AFTER) =>
                    {
                        caught_up = Some(Instant::now());
                        teller.tell(Told::Hello).await;
                    }
                    _ => {}
                }
            }
        }
    }
}

struct Teller<'a> {
    client: &'a async_nats::Client,
    subjects: &'a Subjects,
    hub: &'a str,
}

impl Teller<'_> {
    async fn tell(&self, told: Told) {
        let subject = self.subjects.of(self.hub, &told);
        let envelope = Envelope {
            hub: self.hub.to_string(),
            told,
        };
        let payload = match serde_json::to_vec(&envelope) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(%err, "a cluster message did not serialise");
                return;
            }
        };
        // Fails once the client is closed (the hub is stopping), or for a message over the
        // server's limit (which `state_chunks` keeps the biggest ones under).
        if let Err(err) = self.client.publish(subject, payload.into()).await {
            tracing::warn!(%err, "a cluster message was not published");
        }
    }

    /// Tells all this hub holds: its devices in messages of at most [`STATE_BYTES`] (NATS
    /// refuses a message over its `max_payload`, 1 MiB by default), then the list of them.
    async fn tell_state(&self, registry: &Registry) {
        let devices = registry.local_devices();
        let ids = devices.iter().map(|d| d.summary.id.clone()).collect();
        for chunk in state_chunks(devices, STATE_BYTES) {
            self.tell(Told::State { devices: chunk }).await;
        }
        self.tell(Told::Holding { devices: ids }).await;
    }
}

/// The most a `State` message carries (serialised devices), well under NATS's default
/// `max_payload` of 1 MiB.
const STATE_BYTES: usize = 256 * 1024;

/// `devices` in groups of at most `limit` bytes as JSON; a device bigger than that alone (its
/// recent readings with many fields) keeps only its newest readings that fit.
fn state_chunks(devices: Vec<DeviceState>, limit: usize) -> Vec<Vec<DeviceState>> {
    let size = |d: &DeviceState| serde_json::to_vec(d).map_or(usize::MAX, |v| v.len());
    let mut chunks: Vec<Vec<DeviceState>> = Vec::new();
    let mut bytes = 0;
    for mut device in devices {
        let mut own = size(&device);
        while own > limit && !device.recent.is_empty() {
            let half = device.recent.len() / 2;
            device.recent.drain(..half.max(1));
            own = size(&device);
        }
        match chunks.last_mut() {
            Some(chunk) if bytes + own <= limit => chunk.push(device),
            _ => {
                chunks.push(vec![device]);
                bytes = 0;
            }
        }
        bytes += own;
    }
    chunks
}

/// How long a stopping hub tries to tell the others it is gone.
const GOODBYE_WITHIN: Duration = Duration::from_secs(1);

/// How long a hub waits for another to answer a command for one of its devices.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Asks the hub that holds the command's device to send it: the hub the presence bucket
/// names (if it is open), else the one that last told of the device.
async fn ask(
    client: &async_nats::Client,
    subjects: &Subjects,
    own: &str,
    presence: Option<&Presence>,
    command: &RemoteCommand,
) -> Result<CommandInfo, String> {
    let device = device_of(&command.request);
    // No claim (not written yet: the device connected a moment ago, or NATS came back and
    // the claims are being made again) or no answer: what the hubs told stands, and that hub
    // says whether it holds the device.
    let holder = match presence {
        Some(presence) => match presence.holder(device).await {
            Ok(Some(claim)) => claim.hub,
            Ok(None) | Err(_) => command.hub.to_string(),
        },
        None => command.hub.to_string(),
    };
    let ask = Ask {
        from: own.to_string(),
        request: command.request.clone(),
        queued: command.queued.then_some(command.seq),
    };
    let payload = serde_json::to_vec(&ask).map_err(|e| e.to_string())?;
    let asked = client.request(subjects.commands(&holder), payload.into());
    let answer = match tokio::time::timeout(ANSWER_WITHIN, asked).await {
        Err(_) => return Err(format!("hub {holder} did not answer in time")),
        Ok(Err(err)) if err.kind() == async_nats::RequestErrorKind::NoResponders => {
            return Err(format!(
                "device {device:?} is offline (its hub {holder} is gone)"
            ))
        }
        Ok(Err(err)) => return Err(format!("hub {holder} was not reached: {err}")),
        Ok(Ok(answer)) => answer,
    };
    serde_json::from_slice(&answer.payload)
        .map_err(|e| format!("hub {holder} answered what this hub cannot read: {e}"))?
}

fn device_of(request: &CommandRequest) -> &str {
    match &request.target {
        CommandTarget::Device(id) => id,
        CommandTarget::All => "all",
    }
}

/// Sends a command another hub asked this one to send to one of its devices.
fn send_here(registry: &Registry, payload: &[u8]) -> Result<CommandInfo, String> {
    let ask: Ask = serde_json::from_slice(payload)
        .map_err(|e| format!("a command that did not parse: {e}"))?;
    if !matches!(ask.request.target, CommandTarget::Device(_)) {
        return Err("a command for another hub names its device".into());
    }
    if let Some(adopted) = ask
        .queued
        .and_then(|seq| registry.adopt_queued(&ask.from, seq))
    {
        return Ok(adopted);
    }
    let mut sent = registry
        .send_command(&ask.request)
        .map_err(|e| e.to_string())?;
    sent.pop().ok_or_else(|| "no command was sent".into())
}

/// Applies what another hub told to `registry`.
async fn hear(
    teller: &Teller<'_>,
    registry: &Registry,
    heard: &mut HashMap<String, Instant>,
    payload: &[u8],
) {
    let Envelope { hub, told } = match serde_json::from_slice(payload) {
        Ok(envelope) => envelope,
        Err(err) => {
            tracing::warn!(%err, "ignoring a cluster message that did not parse");
            return;
        }
    };
    if hub == teller.hub {
        return;
    }
    let new = heard.insert(hub.clone(), Instant::now()).is_none();
    if new
        && !matches!(
            told,
            Told::Hello | Told::State { .. } | Told::Holding { .. } | Told::Gone
        )
    {
        // A hub this one had not heard of (or had given up): ask it for all it holds.
        teller.tell(Told::Hello).await;
    }
    match told {
        Told::Device { summary } => registry.remote_summary(&hub, summary),
        Told::Readings { device, readings } => registry.remote_readings(&hub, &device, readings),
        Told::Console { device, line } => registry.remote_console(&hub, &device, line),
        Told::Removed { device } => registry.remote_removed(&hub, &device),
        Told::Command { info } => registry.remote_command(&hub, info),
        Told::Alarm { alarm } => registry.remote_alarm(alarm),
        Told::Hello => teller.tell_state(registry).await,
        Told::State { devices } => registry.remote_state(&hub, devices),
        Told::Holding { devices } => registry.remote_holding(&hub, &devices),
        Told::Alive => {}
        Told::Gone => {
            heard.remove(&hub);
            registry.hub_lost(&hub);
        }
    }
}

/// Events from this hub's registry taken at once for the presence task (a device's
/// connection or departure each).
const CHANGES: usize = 4096;

/// What a batch of this hub's events changes in the presence bucket: devices that connected
/// here are claimed, those that left are released.
fn changes_of(events: &[LiveEvent]) -> impl Iterator<Item = Change> + '_ {
    events.iter().filter_map(|event| match event {
        LiveEvent::Device(summary) => Some(match summary.connected_since_ms {
            Some(since_ms) if summary.online => Change::Held {
                device: summary.id.clone(),
                since_ms,
            },
            _ => Change::Released {
                device: summary.id.clone(),
            },
        }),
        _ => None,
    })
}

/// What a batch of this hub's events tells the others, in order for each device; a device's
/// readings not separated by another of its events go as one message.
fn told_of(events: Vec<LiveEvent>) -> Vec<Told> {
    let mut told: Vec<Told> = Vec::new();
    // The device's `Readings` message still open for more, by device.
    let mut open: HashMap<String, usize> = HashMap::new();
    for event in events {
        let (device, next) = match event {
            LiveEvent::Reading(reading) => {
                let device = reading.device_id.to_string();
                if let Some(Told::Readings { readings, .. }) =
                    open.get(&device).and_then(|&at| told.get_mut(at))
                {
                    readings.push(reading);
                    continue;
                }
                open.insert(device.clone(), told.len());
                told.push(Told::Readings {
                    device,
                    readings: vec![reading],
                });
                continue;
            }
            LiveEvent::Device(summary) => (summary.id.clone(), Told::Device { summary }),
            LiveEvent::Console { device_id, line } => (
                device_id.clone(),
                Told::Console {
                    device: device_id,
                    line,
                },
            ),
            LiveEvent::Removed { device_id } => {
                (device_id.clone(), Told::Removed { device: device_id })
            }
            LiveEvent::Command(info) => (info.device_id.clone(), Told::Command { info }),
            LiveEvent::Alarm(alarm) => (alarm.device_id.clone(), Told::Alarm { alarm }),
            _ => continue,
        };
        open.remove(&device);
        told.push(next);
    }
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::{FieldValue, Reading};

    fn reading(device: &str, seq: u64) -> LiveEvent {
        LiveEvent::Reading(Reading {
            seq,
            device_id: device.into(),
            received_ms: 1,
            device_ms: None,
            values: vec![FieldValue {
                field: "t".into(),
                value: seq as f64,
            }],
        })
    }

    #[test]
    fn the_state_goes_in_messages_of_bounded_size() {
        let device = |id: &str, readings: u64| DeviceState {
            summary: serde_json::from_value(serde_json::json!({
                "id": id, "online": true, "transport": "t", "connected_since_ms": 1,
                "last_seen_ms": 1, "readings": 0, "errors": 0, "bytes_in": 0, "latest": [],
                "registration": null, "display_name": null
            }))
            .unwrap(),
            recent: (1..=readings)
                .map(|seq| match reading(id, seq) {
                    LiveEvent::Reading(r) => r,
                    _ => unreachable!(),
                })
                .collect(),
        };
        let devices: Vec<DeviceState> = (0..50).map(|i| device(&format!("d{i}"), 100)).collect();
        let limit = 20_000;
        let chunks = state_chunks(devices.clone(), limit);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(serde_json::to_vec(chunk).unwrap().len() <= limit + 2 * chunk.len());
        }
        assert_eq!(chunks.concat(), devices, "every device, whole, in order");
        // One device too big alone keeps its newest readings.
        let big = state_chunks(vec![device("big", 2_000)], limit);
        let kept = &big[0][0].recent;
        assert!(!kept.is_empty() && kept.len() < 2_000);
        assert_eq!(kept.last().unwrap().seq, 2_000);
    }

    #[test]
    fn a_devices_readings_go_together_until_another_of_its_events() {
        let removed = LiveEvent::Removed {
            device_id: "a".into(),
        };
        let told = told_of(vec![
            reading("a", 1),
            reading("b", 2),
            reading("a", 3),
            removed,
            reading("a", 4),
            reading("b", 5),
            LiveEvent::Heartbeat,
        ]);
        let shape: Vec<(String, Vec<u64>)> = told
            .iter()
            .map(|t| match t {
                Told::Readings { device, readings } => {
                    (device.clone(), readings.iter().map(|r| r.seq).collect())
                }
                Told::Removed { device } => (format!("removed {device}"), Vec::new()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a".to_string(), vec![1, 3]),
                ("b".to_string(), vec![2, 5]),
                ("removed a".to_string(), vec![]),
                ("a".to_string(), vec![4]),
            ]
        );
    }
}
