//! The one conversation loop every connected device runs, whatever carries it: it waits for
//! input, for what the registry sends the device ([`Outbound`]), for silence to last too long
//! and for shutdown, and hands each to the transport's `Wire`. The WebSocket, raw TCP, serial
//! and MQTT transports differ only in their `Wire`: how they read, how they answer, how they
//! probe a silent device and how they say goodbye. (An MQTT device's input is the messages the
//! bridge hands it from its topic.)

use super::session::DeviceSession;
use crate::registry::{MailboxReceiver, Outbound};
use std::future::Future;
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
///
/// Every connected device's task is as large as the largest future it can be waiting in, so
/// this is laid out for an idle device, which waits only in the `select!`:
/// - Everything but that wait is boxed (`Box::pin`). Handling what came needs the most room
///   (parsing, recording, writing answers with a timeout); boxed, it costs one short-lived
///   allocation per frame instead of a kilobyte or more held by every idle device.
/// - One `async move` block that uses its captures in place: an `async fn` keeps its
///   arguments in its state and copies them into locals, and one nested inside another does
///   it again.
///
/// (Measured in a release build, the WebSocket connection's future: 2,296 bytes with the
/// handling unboxed, 1,288 boxed, 1,072 as one block and without `serve`'s copies.)
// Deliberately not an `async fn` (see above), whatever clippy says.
#[allow(clippy::manual_async_fn)]
pub(crate) fn converse<'a, W: Wire>(
    wire: &'a mut W,
    session: &'a mut DeviceSession,
    outbound: MailboxReceiver,
    keepalive: Keepalive,
    stopping: &'a CancellationToken,
) -> impl Future<Output = Ending> + 'a {
    async move {
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
        // (A new timer and a new cancellation waiter per frame cost more than reading the
        // frame.)
        let quiet = tokio::time::sleep_until(quiet_until(heard, probed));
        let stopped = stopping.cancelled();
        tokio::pin!(quiet, stopped);
        let ending = loop {
            tokio::select! {
                _ = &mut stopped => break Ending::ShuttingDown,
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
                                break Ending::Ended("ping failed".into());
                            }
                        }
                        Keepalive::None => {
                            heard = Instant::now();
                            quiet.as_mut().reset(quiet_until(heard, probed));
                        }
                        _ => break Ending::Silent,
                    }
                }
                out = outbound.recv() => match out {
                    Outbound::Line(line) => {
                        if !Box::pin(wire.send(&line)).await {
                            break Ending::Ended("send failed".into());
                        }
                    }
                    Outbound::Command { seq, line } => {
                        if !Box::pin(wire.send(&line)).await {
                            break Ending::Ended("send failed".into());
                        }
                        session.delivered(seq);
                    }
                    Outbound::Close(reason) => break Ending::Replaced(reason),
                    Outbound::TokenRevoked(id) => {
                        if session.token_id() == Some(id) {
                            break Ending::TokenRevoked;
                        }
                    }
                },
                input = wire.read() => {
                    heard = Instant::now();
                    probed = false;
                    if let Some(ending) = Box::pin(wire.handle(input, session)).await {
                        break ending;
                    }
                }
            }
        };
        Box::pin(wire.farewell(&ending)).await;
        ending
    }
}
