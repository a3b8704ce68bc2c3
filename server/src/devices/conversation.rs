//! The one conversation loop every connected device runs, whatever carries it: it waits for
//! input, for what the registry sends the device ([`Outbound`]), for silence to last too long
//! and for shutdown, and hands each to the transport's `Wire`. The WebSocket, raw TCP, serial
//! and MQTT transports differ only in their `Wire`: how they read, how they answer, how they
//! probe a silent device and how they say goodbye. (An MQTT device's input is the messages the
//! bridge hands it from its topic.)

use super::session::DeviceSession;
use crate::registry::{MailboxReceiver, Outbound};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest a write to a device may take before the device counts as gone.
pub const WRITE_LIMIT: Duration = Duration::from_secs(5);

/// Why a conversation ended; the transport says goodbye accordingly (`Wire::farewell`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The server is stopping.
    ShuttingDown,
    /// The registry closed the device: another connection took it over.
    Replaced(String),
    /// The token this connection presented was revoked.
    TokenRevoked,
    /// Silent past the keepalive.
    Silent,
    /// Over, with nothing more to send: the connection went, a write failed, or the transport
    /// has already told the device why.
    Ended(String),
}

impl Ending {
    /// For the log.
    pub fn reason(&self) -> &str {
        match self {
            Ending::ShuttingDown => "server shutting down",
            Ending::Replaced(reason) | Ending::Ended(reason) => reason,
            Ending::TokenRevoked => "device token revoked",
            Ending::Silent => "keepalive timeout",
        }
    }
}

/// What to do about a silent device.
#[derive(Debug, Clone, Copy)]
pub enum Keepalive {
    /// Probe it (`Wire::probe`) after this much silence; drop it after as much again.
    Probe {
        after: Duration,
        give_up_after: Duration,
    },
    /// Drop the device after this much silence.
    Drop { after: Duration },
    /// Never mind (a serial line is there as long as the port is).
    None,
}

/// A transport's side of the conversation.
pub(crate) trait Wire {
    /// What one read brings: a WebSocket frame, some bytes.
    type Input;

    /// Waits for input. Cancel-safe: it is one branch of a `select!`.
    async fn read(&mut self) -> Self::Input;

    /// Hands what arrived to the session (every line, then one flush) and answers refusals;
    /// `Some` ends the conversation.
    async fn handle(&mut self, input: Self::Input, session: &mut DeviceSession) -> Option<Ending>;

    /// Sends a line (a command, a console line) to the device; false if it cannot be sent.
    async fn send(&mut self, line: &str) -> bool;

    /// Asks a silent device to say something; false if it cannot be sent.
    async fn probe(&mut self) -> bool;

    /// Tells the device why the conversation ends, if there is anything to say and a way left
    /// to say it.
    async fn farewell(&mut self, ending: &Ending);
}

/// Runs the conversation until the device goes, the server stops or the registry closes the
/// device; says goodbye and returns why it ended.
pub(crate) async fn converse<W: Wire>(
    wire: &mut W,
    session: &mut DeviceSession,
    outbound: MailboxReceiver,
    keepalive: Keepalive,
    stopping: &CancellationToken,
) -> Ending {
    let ending = talk(wire, session, &outbound, keepalive, stopping).await;
    Box::pin(wire.farewell(&ending)).await;
    ending
}

/// Everything but the wait itself is boxed (`Box::pin`): the task of every connected device
/// is as large as the largest future it can be waiting in, and an idle device waits only in
/// the `select!`. Handling what came, which needs the most room (parsing, recording, writing
/// answers with a timeout), costs one short-lived allocation per frame instead of a kilobyte
/// or two held by every idle device (measured in a release build: the WebSocket connection's future 2,296 → 1,288 bytes).
async fn talk<W: Wire>(
    wire: &mut W,
    session: &mut DeviceSession,
    outbound: &MailboxReceiver,
    keepalive: Keepalive,
    stopping: &CancellationToken,
) -> Ending {
    let mut heard = Instant::now();
    let mut probed = false;
    // A day stands in for "never": far beyond any real keepalive.
    let quiet_until = |heard: Instant, probed: bool| match keepalive {
        Keepalive::Probe { after, .. } if !probed => heard + after,
        Keepalive::Probe {
            after,
            give_up_after,
        } => heard + after + give_up_after,
        Keepalive::Drop { after } => heard + after,
        Keepalive::None => heard + Duration::from_secs(86_400),
    };
    // One timer per connection, moved only when it fires: input just notes when it came.
    // (A new timer and a new cancellation waiter per frame cost more than reading the frame.)
    let quiet = tokio::time::sleep_until(quiet_until(heard, probed));
    let stopped = stopping.cancelled();
    tokio::pin!(quiet, stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return Ending::ShuttingDown,
            _ = &mut quiet => {
                let due = quiet_until(heard, probed);
                if Instant::now() < due {
                    // Heard from meanwhile.
                    quiet.as_mut().reset(due);
                    continue;
                }
                match keepalive {
                    Keepalive::Probe { .. } if !probed => {
                        probed = true;
                        quiet.as_mut().reset(quiet_until(heard, probed));
                        if !Box::pin(wire.probe()).await {
                            return Ending::Ended("ping failed".into());
                        }
                    }
                    Keepalive::None => {
                        heard = Instant::now();
                        quiet.as_mut().reset(quiet_until(heard, probed));
                    }
                    _ => return Ending::Silent,
                }
            }
            out = outbound.recv() => match out {
                Outbound::Line(line) => {
                    if !Box::pin(wire.send(&line)).await {
                        return Ending::Ended("send failed".into());
                    }
                }
                Outbound::Command { seq, line } => {
                    if !Box::pin(wire.send(&line)).await {
                        return Ending::Ended("send failed".into());
                    }
                    session.delivered(seq);
                }
                Outbound::Close(reason) => return Ending::Replaced(reason),
                Outbound::TokenRevoked(id) => {
                    if session.token_id() == Some(id) {
                        return Ending::TokenRevoked;
                    }
                }
            },
            input = wire.read() => {
                heard = Instant::now();
                probed = false;
                if let Some(ending) = Box::pin(wire.handle(input, session)).await {
                    return ending;
                }
            }
        }
    }
}
