//! One device connection's conversation, whatever carries it (WebSocket, raw TCP): each line is
//! parsed by [`crate::protocol`], recorded in the [`crate::registry`] and queued for
//! [`crate::storage`]. The transports do the I/O around it: they feed lines in, write out what
//! the registry sends ([`Outbound`]) and the errors this returns, and close when told.
//!
//! Readings are handed on in batches: the transport feeds every line of what it read at once
//! (a WebSocket frame, a TCP read) and then calls [`DeviceSession::flush`], which records them
//! in the registry under one lock and queues them for the store in one message. A device that
//! sends ten lines per frame costs one hand-over, not ten. Anything else a line asks for (an
//! acknowledgement, a registration) first flushes what came before it, so order is kept.

use super::DeviceContext;
use crate::limits::{ErrorBudget, RateLimit};
use crate::protocol::{self, DeviceId, DeviceMessage, Dialect, ParseRules};
use crate::registry::{
    mailbox, Attachment, Heard, MailboxReceiver, MailboxSender, NewReading, TooManyDevices,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// More errors than this within [`ERROR_WINDOW`] close the connection.
pub const ERROR_BUDGET: usize = 100;
pub const ERROR_WINDOW: Duration = Duration::from_secs(10);

/// Longest a `sync=<n>` waits for the readings before it to be written (a commit or two;
/// longer means the database is refusing writes).
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What became of a line the device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Accepted,
    /// Accepted, and the device is to be told `line` (already in its dialect).
    Reply(String),
    /// Refused: tell the device `message`; if `give_up`, errors persist and the connection
    /// should close.
    Refused {
        message: String,
        give_up: bool,
    },
}

/// How a connection came to speak for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A device token named it (`token_id`: the stored token's; `None` for the bundled
    /// simulator's in-memory tokens).
    Token {
        device: DeviceId,
        token_id: Option<i64>,
    },
    /// Configured for this connection by whoever runs the hub (a serial port's id).
    Configured(DeviceId),
    /// No token (`--allow-tokenless-devices`, a bridged MQTT topic): known by this id, which
    /// the transport has checked is not one a token holds, or else by the id in its first
    /// line, which the session checks.
    Tokenless(Option<DeviceId>),
}

pub struct DeviceSession {
    context: Arc<DeviceContext>,
    rules: ParseRules,
    transport: String,
    outbound: MailboxSender,
    attachment: Option<Attachment>,
    rate: RateLimit,
    errors: ErrorBudget,
    /// The stored token this connection presented, if any.
    token_id: Option<i64>,
    /// No token names the device: an id from its first line must not be one a token holds.
    tokenless: bool,
    /// The id this connection speaks for, not attached yet because the registry was full.
    waiting: Option<DeviceId>,
    /// Readings are recorded in this dialect instead of the one parsed (framed TCP devices
    /// send key=value inside frames, and want their commands framed).
    dialect_override: Option<Dialect>,
    /// Readings accepted since the last [`DeviceSession::flush`]. Handed over whole, so an idle
    /// device holds no room for them (a batch's allocation costs far less than its readings).
    pending: Vec<NewReading>,
    /// The lines read since then, each ending in a newline: they go to the device's console
    /// with the readings, under one registry lock per batch rather than one per line.
    heard: String,
    /// When the lines since the last flush arrived (monotonic, and wall-clock ms): read once
    /// per batch, as the lines of one frame or read arrived together.
    arrived: Option<(Instant, i64)>,
}

impl DeviceSession {
    /// A new conversation; returns it and the receiver of what the registry sends the device.
    pub fn new(
        context: Arc<DeviceContext>,
        transport: String,
        admission: Admission,
    ) -> (DeviceSession, MailboxReceiver) {
        let (device, token_id, tokenless) = match admission {
            Admission::Token { device, token_id } => (Some(device), token_id, false),
            Admission::Configured(device) => (Some(device), None, false),
            Admission::Tokenless(device) => (device, None, true),
        };
        let (outbound, commands) = mailbox();
        let limits = &context.limits;
        let mut session = DeviceSession {
            rules: ParseRules {
                csv_fields: limits.csv_fields.clone(),
                max_fields: limits.max_fields,
            },
            transport,
            rate: RateLimit::new(limits.max_readings_per_sec, Instant::now()),
            errors: ErrorBudget::new(ERROR_BUDGET, ERROR_WINDOW),
            context,
            outbound,
            attachment: None,
            token_id,
            tokenless,
            waiting: None,
            dialect_override: None,
            pending: Vec::new(),
            heard: String::new(),
            arrived: None,
        };
        if let Some(id) = device {
            if session.attach(id.clone()).is_err() {
                session.waiting = Some(id);
            }
        }
        (session, commands)
    }

    pub fn context(&self) -> &DeviceContext {
        &self.context
    }

    /// The device this connection speaks for, for the log (empty until it is known).
    pub fn label(&self) -> &str {
        match (&self.attachment, &self.waiting) {
            (Some(attachment), _) => attachment.device().as_str(),
            (None, Some(waiting)) => waiting.as_str(),
            (None, None) => "",
        }
    }

    pub fn token_id(&self) -> Option<i64> {
        self.token_id
    }

    pub fn record_as(&mut self, dialect: Dialect) {
        self.dialect_override = Some(dialect);
    }

    /// The transport wrote command `seq` to the device.
    pub fn delivered(&self, seq: u64) {
        self.context.registry.command_delivered(seq);
    }

    fn attach(&mut self, id: DeviceId) -> Result<(), TooManyDevices> {
        tracing::Span::current().record("id", tracing::field::display(&id));
        let attachment =
            self.context
                .registry
                .attach(id, self.transport.clone(), self.outbound.clone())?;
        self.attachment = Some(attachment);
        self.waiting = None;
        Ok(())
    }

    /// Handles one line of text (without its line ending).
    pub async fn line(&mut self, line: &str) -> Handled {
        let (now, _) = *self
            .arrived
            .get_or_insert_with(|| (Instant::now(), crate::now_ms()));
        let parsed = protocol::parse_line(line, &self.rules);
        // A connection whose device the registry had no room for tries again.
        if let Some(id) = self.waiting.clone() {
            if let Err(full) = self.attach(id) {
                return self.refuse(&full.to_string());
            }
        }
        // The first line that names a device identifies the connection.
        if self.attachment.is_none() {
            if let Some(id) = parsed.as_ref().ok().and_then(DeviceMessage::device_id) {
                if self.tokenless {
                    // Boxed, as a rare path: see the registration below.
                    let check = Box::pin(self.context.auth.tokenless_may_use(id));
                    if let Err(refusal) = check.await {
                        return self.refuse(&refusal.to_string());
                    }
                }
                if let Err(full) = self.attach(id.clone()) {
                    return self.refuse(&full.to_string());
                }
            }
        }
        if self.attachment.is_some() {
            self.heard.push_str(line);
            self.heard.push('\n');
        }
        let message = match parsed {
            Ok(message) => message,
            Err(err) => return self.refuse(&err.to_string()),
        };
        let Some(attachment) = &self.attachment else {
            return self.refuse("no device id: start the line with it, or connect with ?id=");
        };
        if let Some(id) = message.device_id() {
            if id != attachment.device() {
                let msg = format!(
                    "device id {:?} does not match this connection's id {:?}",
                    id.as_str(),
                    attachment.device().as_str()
                );
                return self.refuse(&msg);
            }
        }
        // Every message counts, not only readings: acknowledgements and registrations cost
        // the hub work too (a registration is a database write and a broadcast).
        if !self.rate.allow(now) {
            let limit = self.context.limits.max_readings_per_sec;
            let msg = match message {
                DeviceMessage::Reading(_) => {
                    format!("rate limit: at most {limit} readings per second; reading dropped")
                }
                _ => format!("rate limit: at most {limit} messages per second; message dropped"),
            };
            return self.refuse(&msg);
        }
        match message {
            DeviceMessage::Reading(reading) => {
                self.pending.push(NewReading {
                    dialect: self.dialect_override.unwrap_or(reading.dialect),
                    device_ms: reading.device_ms,
                    values: reading.values,
                });
            }
            DeviceMessage::Ack { seq, .. } => {
                self.flush().await;
                let (registry, Some(attachment)) = (&self.context.registry, &self.attachment)
                else {
                    return Handled::Accepted;
                };
                if let Err(err) = registry.acknowledge(attachment, seq) {
                    return self.refuse(&err.to_string());
                }
            }
            DeviceMessage::Sync { n, dialect, .. } => {
                // Answered once a batch with these readings is committed (see Store::stored).
                self.flush().await;
                // Boxed like the registration's write below: rare, and not to be part of every
                // idle connection's task.
                let stored = Box::pin(tokio::time::timeout(SYNC_WAIT, self.context.store.stored()));
                if !matches!(stored.await, Ok(true)) {
                    return self.refuse(&format!(
                        "sync={n}: not everything is stored yet; send it again later"
                    ));
                }
                let dialect = self.dialect_override.unwrap_or(dialect);
                return Handled::Reply(crate::protocol::format_stored(dialect, n));
            }
            DeviceMessage::Register { registration, .. } => {
                self.flush().await;
                let (registry, Some(attachment)) = (&self.context.registry, &self.attachment)
                else {
                    return Handled::Accepted;
                };
                // Registered field names name the values of this device's CSV lines.
                if !registration.fields.is_empty() {
                    self.rules.csv_fields = registration
                        .fields
                        .iter()
                        .map(|f| f.name.as_str().into())
                        .collect();
                }
                // Written and published only when it says something new: a device repeating
                // its registration costs no database write.
                if !registry.register(attachment, &registration) {
                    return Handled::Accepted;
                }
                // Boxed: this rare path's database future would otherwise be part of every
                // idle connection's task (its size is the largest of what it awaits).
                let saving = Box::pin(self.context.store.save_registration(
                    attachment.device().as_str(),
                    &registration,
                    crate::now_ms(),
                ));
                if let Err(err) = saving.await {
                    tracing::warn!(device = attachment.device().as_str(), %err, "registration not stored");
                }
            }
        }
        Handled::Accepted
    }

    /// Records the lines and readings accepted since the last call and queues the readings for
    /// the store.
    pub async fn flush(&mut self) {
        let heard_ms = self.arrived.take().map_or_else(crate::now_ms, |(_, ms)| ms);
        let Some(attachment) = &self.attachment else {
            return;
        };
        if self.pending.is_empty() {
            self.console_lines(heard_ms);
            return;
        }
        metrics::counter!(crate::metrics::READINGS).increment(self.pending.len() as u64);
        let heard = Heard {
            lines: &self.heard,
            ms: heard_ms,
        };
        let readings = self.context.registry.record_batch(
            attachment,
            heard,
            std::mem::take(&mut self.pending),
        );
        forget(&mut self.heard);
        if let Err(err) = self.context.store.append_batch(readings).await {
            tracing::warn!(device = attachment.device().as_str(), %err, "readings not stored");
        }
    }

    /// Counts input the transport could not even turn into a line (a binary frame, say) as an
    /// error, and shows it in the device's console.
    pub fn refuse(&mut self, message: &str) -> Handled {
        metrics::counter!(crate::metrics::DEVICE_ERRORS).increment(1);
        self.note_error(message);
        tracing::debug!(message, "bad input from device");
        Handled::Refused {
            message: message.to_string(),
            give_up: self.errors.exhausted_after_error(Instant::now()),
        }
    }

    /// Shows an error in the device's console without counting it (the connection is ending),
    /// after the lines that came before it.
    pub fn note_error(&mut self, message: &str) {
        self.console_lines(self.arrived.map_or_else(crate::now_ms, |(_, ms)| ms));
        if let Some(attachment) = &self.attachment {
            self.context.registry.error_out(attachment, message);
        }
    }

    /// Hands the lines heard since the last batch to the device's console, without readings.
    fn console_lines(&mut self, ms: i64) {
        let Some(attachment) = &self.attachment else {
            return;
        };
        if !self.heard.is_empty() {
            let heard = Heard {
                lines: &self.heard,
                ms,
            };
            self.context.registry.lines_in(attachment, heard);
            forget(&mut self.heard);
        }
    }
}

/// Most bytes of lines a session keeps room for between batches: a device that once sent a
/// large frame does not hold the buffer for the rest of its life.
const KEEP_HEARD_BYTES: usize = 4096;

/// Empties `heard`, giving its memory back if it grew large.
fn forget(heard: &mut String) {
    if heard.capacity() > KEEP_HEARD_BYTES {
        *heard = String::new();
    } else {
        heard.clear();
    }
}
