//! Commands: numbered here, handed to the device's connection as [`Outbound::Command`], and
//! tracked until the device acknowledges them, they time out ([`Registry::expire_overdue`]),
//! or they fail because the device is offline. Console lines typed on the dashboard go out
//! here too ([`Registry::send_line`]). A command to a device another hub holds
//! (`--cluster-nats`) goes to the cluster link instead ([`Registry::route_remote_commands`]),
//! and its record here follows what that hub tells ([`Registry::remote_command`]).

use super::{Attachment, Origin, Outbound, Registry, State};
use crate::now_ms;
use crate::protocol::{format_command, DeviceId};
use app::model::{CommandInfo, CommandRequest, CommandStatus, CommandTarget, Direction, LiveEvent};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Commands tracked at once (for acks and timeouts); a command to "all" creates one per device.
pub(super) const MAX_TRACKED_COMMANDS: usize = 20_000;

/// Commands one offline device may have waiting for it: as many as its connection's mailbox
/// takes at once, so that all of them go out the moment it connects.
pub const MAX_QUEUED_PER_DEVICE: usize = 64;

/// A command to a device another hub holds is given up here this long after its own hub
/// should have timed it out, if that hub told nothing (it died meanwhile).
pub(super) const ROUTE_GRACE_MS: i64 = 5_000;

/// A command to a device another hub holds, for the cluster link to hand to that hub.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCommand {
    /// The hub that holds the device.
    pub hub: Arc<str>,
    /// This registry's number of it.
    pub seq: u64,
    /// To that one device.
    pub request: CommandRequest,
    /// It was queued here for the device while it was offline everywhere: the hub it
    /// connected to takes over this hub's record (see [`Registry::adopt_queued`]).
    pub queued: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    #[error("no device is online")]
    NobodyOnline,
    #[error("device {0:?} is offline")]
    Offline(String),
    #[error("device {0:?} is not keeping up; try again")]
    Busy(String),
    #[error("no command {0} is waiting for this device")]
    UnknownAck(u64),
    #[error("device {0:?} already has {MAX_QUEUED_PER_DEVICE} commands waiting for it")]
    QueueFull(String),
}

/// A command waiting for its acknowledgement (or already final, kept for the dashboard).
pub(super) struct Tracked {
    pub(super) info: CommandInfo,
    pub(super) deadline_ms: i64,
    /// `Remote` for a command to a device another hub holds (its hub tracks it; this record
    /// follows what it tells): its changes go to this hub's pages only.
    pub(super) origin: Origin,
}

/// How many commands wait for device `id` to connect.
fn queued_for(commands: &std::collections::VecDeque<Tracked>, id: &DeviceId) -> usize {
    commands
        .iter()
        .filter(|c| c.info.status == CommandStatus::Queued && c.info.device_id == id.as_str())
        .count()
}

/// The numbers of the commands queued on this hub for device `id`, oldest first: not those
/// queued on other hubs (listed here as they told), which each of them sends itself.
fn queued_here(commands: &std::collections::VecDeque<Tracked>, id: &DeviceId) -> Vec<u64> {
    commands
        .iter()
        .filter(|c| c.info.status == CommandStatus::Queued && c.info.device_id == id.as_str())
        .filter(|c| c.origin == Origin::Local)
        .map(|c| c.info.seq)
        .collect()
}

impl Registry {
    /// From now on commands to devices other hubs hold go to the returned receiver (the
    /// cluster link), instead of failing as offline.
    pub fn route_remote_commands(&self) -> mpsc::UnboundedReceiver<RemoteCommand> {
        let (route, commands) = mpsc::unbounded_channel();
        self.lock().command_route = Some(route);
        commands
    }

    /// What the holding hub answered for the command this registry numbered `seq`: its own
    /// record of it (its number and status), or why it could not send it.
    pub fn remote_command_sent(&self, seq: u64, hub: &str, answer: Result<CommandInfo, String>) {
        let mut state = self.lock();
        let status = match answer {
            Ok(theirs) => {
                if !theirs.status.is_final() {
                    state.remote_commands.insert((hub.into(), theirs.seq), seq);
                }
                theirs.status
            }
            Err(why) => CommandStatus::Failed(why),
        };
        self.update_command(&mut state, seq, |info| {
            let changed = !info.status.is_final() && info.status != status;
            if changed {
                info.status = status;
            }
            changed
        });
    }

    /// Hub `hub` tells of a command to one of its devices, sent from whichever hub: one sent
    /// from here follows it; one sent elsewhere is listed here too, numbered here.
    pub fn remote_command(&self, hub: &str, theirs: CommandInfo) {
        let mut state = self.lock();
        let key: (Arc<str>, u64) = (hub.into(), theirs.seq);
        let ours = match state.remote_commands.get(&key) {
            Some(&ours) => ours,
            None => {
                state.next_command += 1;
                let ours = state.next_command;
                state.remote_commands.insert(key.clone(), ours);
                let info = CommandInfo {
                    seq: ours,
                    ..theirs.clone()
                };
                if state.commands.len() >= MAX_TRACKED_COMMANDS {
                    state.commands.pop_front();
                }
                state.commands.push_back(Tracked {
                    info: info.clone(),
                    // Its hub decides when it is final.
                    deadline_ms: i64::MAX,
                    origin: Origin::Remote,
                });
                self.publish_everywhere_but_local(LiveEvent::Command(info));
                ours
            }
        };
        if theirs.status.is_final() {
            state.remote_commands.remove(&key);
        }
        self.update_command(&mut state, ours, |info| {
            let changed = info.status != theirs.status;
            if changed {
                info.status = theirs.status;
            }
            changed
        });
    }

    /// Sends a command to one device or to every online device; returns one record per device.
    /// A command to a known but offline device is recorded as failed, or queued for its next
    /// connection if the request says how long it may wait.
    pub fn send_command(&self, request: &CommandRequest) -> Result<Vec<CommandInfo>, CommandError> {
        let now = now_ms();
        let timeout_ms = self.shared.config.command_timeout.as_millis() as i64;
        let mut state = self.lock();
        let targets: Vec<DeviceId> = match &request.target {
            CommandTarget::Device(id) => {
                let id = DeviceId::parse(id).map_err(|e| CommandError::Invalid(e.to_string()))?;
                let entry = state
                    .devices
                    .get(&id)
                    .ok_or_else(|| CommandError::UnknownDevice(id.to_string()))?;
                let spec = entry
                    .summary
                    .registration
                    .as_ref()
                    .and_then(|r| r.commands.iter().find(|c| c.name == request.variable));
                request.validate(spec).map_err(CommandError::Invalid)?;
                vec![id]
            }
            CommandTarget::All => {
                request.validate(None).map_err(CommandError::Invalid)?;
                // Those other hubs hold too (each gets its command through its hub).
                let mut online: Vec<DeviceId> = state
                    .devices
                    .iter()
                    .filter(|(_, e)| {
                        e.connection.is_some() || (e.remote.is_some() && e.summary.online)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                if online.is_empty() {
                    return Err(CommandError::NobodyOnline);
                }
                online.sort();
                online
            }
        };

        let route = state.command_route.clone();
        let mut sent = Vec::with_capacity(targets.len());
        for id in targets {
            state.next_command += 1;
            let seq = state.next_command;
            let waiting = queued_for(&state.commands, &id);
            let Some(entry) = state.devices.get_mut(&id) else {
                continue;
            };
            let mut deadline_ms = now + timeout_ms;
            // Not when it is offline there too: then it is offline everywhere (a queued
            // command waits here, and follows it to the hub it connects to).
            let routed = match (&entry.connection, &entry.remote, &route) {
                (None, Some(holder), Some(route)) if entry.summary.online => {
                    Some((holder.hub.clone(), route))
                }
                _ => None,
            };
            let origin = if routed.is_some() {
                Origin::Remote
            } else {
                Origin::Local
            };
            let status = match (&entry.connection, routed) {
                // Another hub holds the device: the command goes there (the cluster link asks
                // that hub to send it), and what that hub tells of it updates it here.
                (None, Some((hub, route))) => {
                    let single = CommandRequest {
                        target: CommandTarget::Device(id.to_string()),
                        ..request.clone()
                    };
                    // Its own hub times it out; here only if that hub goes quiet.
                    deadline_ms = now + 2 * timeout_ms + ROUTE_GRACE_MS;
                    match route.send(RemoteCommand {
                        hub,
                        seq,
                        request: single,
                        queued: false,
                    }) {
                        Ok(()) => CommandStatus::Pending,
                        Err(_) => {
                            CommandStatus::Failed(CommandError::Offline(id.to_string()).to_string())
                        }
                    }
                }
                (None, None) => match request.queue_ms {
                    Some(_) if waiting >= MAX_QUEUED_PER_DEVICE => {
                        return Err(CommandError::QueueFull(id.to_string()));
                    }
                    // Kept for the device's next connection ([`Registry::deliver_queued`]).
                    Some(wait) => {
                        deadline_ms = now.saturating_add(wait as i64);
                        CommandStatus::Queued
                    }
                    None => {
                        CommandStatus::Failed(CommandError::Offline(id.to_string()).to_string())
                    }
                },
                (Some(connection), _) => {
                    let line = format_command(
                        entry.dialect,
                        seq,
                        &request.variable,
                        request.value,
                        request.duration_ms,
                    );
                    match connection.outbound.try_send(Outbound::Command {
                        seq,
                        line: line.clone(),
                    }) {
                        Ok(()) => {
                            self.push_console(
                                &id,
                                entry,
                                Direction::Out,
                                &line,
                                now_ms(),
                                Origin::Local,
                            );
                            CommandStatus::Pending
                        }
                        Err(_) => {
                            CommandStatus::Failed(CommandError::Busy(id.to_string()).to_string())
                        }
                    }
                }
            };
            let info = CommandInfo {
                seq,
                device_id: id.to_string(),
                variable: request.variable.clone(),
                value: request.value,
                duration_ms: request.duration_ms,
                status,
                sent_ms: now,
                updated_ms: now,
            };
            if state.commands.len() >= MAX_TRACKED_COMMANDS {
                if let Some(mut oldest) = state.commands.pop_front() {
                    // A command still waiting for its device is given up visibly, not silently.
                    if oldest.info.status == CommandStatus::Queued {
                        oldest.info.status = CommandStatus::Expired;
                        oldest.info.updated_ms = now;
                        self.publish_from(oldest.origin, LiveEvent::Command(oldest.info));
                    }
                }
            }
            state.commands.push_back(Tracked {
                info: info.clone(),
                deadline_ms,
                origin,
            });
            self.publish_from(origin, LiveEvent::Command(info.clone()));
            sent.push(info);
        }
        Ok(sent)
    }

    /// Sends a raw text line (from the console) to an online device.
    pub fn send_line(&self, device: &str, line: &str) -> Result<(), CommandError> {
        let id = DeviceId::parse(device).map_err(|e| CommandError::Invalid(e.to_string()))?;
        let mut state = self.lock();
        let entry = state
            .devices
            .get_mut(&id)
            .ok_or_else(|| CommandError::UnknownDevice(id.to_string()))?;
        let connection = entry
            .connection
            .as_ref()
            .ok_or_else(|| CommandError::Offline(id.to_string()))?;
        connection
            .outbound
            .try_send(Outbound::Line(line.to_string()))
            .map_err(|_| CommandError::Busy(id.to_string()))?;
        self.push_console(&id, entry, Direction::Out, line, now_ms(), Origin::Local);
        Ok(())
    }

    pub(super) fn update_command(
        &self,
        state: &mut State,
        seq: u64,
        update: impl FnOnce(&mut CommandInfo) -> bool,
    ) -> bool {
        let Ok(index) = state.commands.binary_search_by_key(&seq, |c| c.info.seq) else {
            return false;
        };
        let tracked = &mut state.commands[index];
        if !update(&mut tracked.info) {
            return false;
        }
        tracked.info.updated_ms = now_ms();
        self.publish_from(tracked.origin, LiveEvent::Command(tracked.info.clone()));
        true
    }

    /// The connection wrote command `seq` to the device.
    pub fn command_delivered(&self, seq: u64) {
        let mut state = self.lock();
        self.update_command(&mut state, seq, |info| {
            let pending = info.status == CommandStatus::Pending;
            if pending {
                info.status = CommandStatus::Delivered;
            }
            pending
        });
    }

    /// The device acknowledged command `seq`. Only its own, not yet final, commands count.
    pub fn acknowledge(&self, attachment: &Attachment, seq: u64) -> Result<(), CommandError> {
        let device = attachment.device.as_str();
        let mut state = self.lock();
        let acked = self.update_command(&mut state, seq, |info| {
            let mine = info.device_id == device && !info.status.is_final();
            if mine {
                info.status = CommandStatus::Acked;
            }
            mine
        });
        if acked {
            Ok(())
        } else {
            Err(CommandError::UnknownAck(seq))
        }
    }

    /// Hands a device that just connected the commands queued for it, oldest first; each then
    /// waits for its acknowledgement like any other.
    pub(super) fn deliver_queued(&self, state: &mut State, id: &DeviceId) {
        let now = now_ms();
        let timeout_ms = self.shared.config.command_timeout.as_millis() as i64;
        for seq in queued_here(&state.commands, id) {
            let Ok(index) = state.commands.binary_search_by_key(&seq, |c| c.info.seq) else {
                continue;
            };
            let info = state.commands[index].info.clone();
            let Some(entry) = state.devices.get_mut(id) else {
                return;
            };
            let Some(connection) = &entry.connection else {
                return;
            };
            let line = format_command(
                entry.dialect,
                seq,
                &info.variable,
                info.value,
                info.duration_ms,
            );
            let status = match connection.outbound.try_send(Outbound::Command {
                seq,
                line: line.clone(),
            }) {
                Ok(()) => {
                    self.push_console(id, entry, Direction::Out, &line, now, Origin::Local);
                    CommandStatus::Pending
                }
                Err(_) => CommandStatus::Failed(CommandError::Busy(id.to_string()).to_string()),
            };
            state.commands[index].deadline_ms = now + timeout_ms;
            self.update_command(state, seq, |info| {
                info.status = status;
                true
            });
        }
    }

    /// Device `id` connected to hub `hub`: the commands queued here for it go there (the
    /// cluster link asks that hub to send them), and their records here follow what it tells.
    pub(super) fn route_queued(&self, state: &mut State, id: &DeviceId, hub: &str) {
        let Some(route) = state.command_route.clone() else {
            return;
        };
        let now = now_ms();
        let timeout_ms = self.shared.config.command_timeout.as_millis() as i64;
        for seq in queued_here(&state.commands, id) {
            let Ok(index) = state.commands.binary_search_by_key(&seq, |c| c.info.seq) else {
                continue;
            };
            let tracked = &mut state.commands[index];
            let request = CommandRequest {
                target: CommandTarget::Device(id.to_string()),
                variable: tracked.info.variable.clone(),
                value: tracked.info.value,
                duration_ms: tracked.info.duration_ms,
                queue_ms: None,
            };
            // From now on that hub tells of it, to every hub: this record follows for this
            // hub's pages only, like any command to a device another hub holds.
            tracked.origin = Origin::Remote;
            tracked.deadline_ms = now + 2 * timeout_ms + ROUTE_GRACE_MS;
            let status = match route.send(RemoteCommand {
                hub: hub.into(),
                seq,
                request,
                queued: true,
            }) {
                Ok(()) => CommandStatus::Pending,
                Err(_) => CommandStatus::Failed(CommandError::Offline(id.to_string()).to_string()),
            };
            self.update_command(state, seq, |info| {
                info.status = status;
                true
            });
        }
    }

    /// Hub `hub` asks this one to send the command it queued as its number `seq` to one of
    /// this hub's devices, which just connected here. This hub lists that command already
    /// (told of it when it was queued): that record becomes this hub's own and goes out now,
    /// so every hub lists the command once. `None` if this hub does not know it.
    pub fn adopt_queued(&self, hub: &str, seq: u64) -> Option<CommandInfo> {
        let mut state = self.lock();
        let ours = state.remote_commands.remove(&(hub.into(), seq))?;
        let index = state
            .commands
            .binary_search_by_key(&ours, |c| c.info.seq)
            .ok()?;
        let tracked = &mut state.commands[index];
        let id = DeviceId::parse(&tracked.info.device_id).ok()?;
        if tracked.info.status != CommandStatus::Queued {
            return None;
        }
        tracked.origin = Origin::Local;
        self.deliver_queued(&mut state, &id);
        let index = state
            .commands
            .binary_search_by_key(&ours, |c| c.info.seq)
            .ok()?;
        Some(state.commands[index].info.clone())
    }

    /// Marks commands not acknowledged by their deadline as timed out (and queued ones whose
    /// device did not connect in time as expired). Called periodically.
    pub fn expire_overdue(&self, now_ms: i64) {
        let mut state = self.lock();
        let overdue: Vec<u64> = state
            .commands
            .iter()
            .filter(|c| c.deadline_ms <= now_ms && !c.info.status.is_final())
            .map(|c| c.info.seq)
            .collect();
        for seq in overdue {
            self.update_command(&mut state, seq, |info| {
                info.status = if info.status == CommandStatus::Queued {
                    CommandStatus::Expired
                } else {
                    CommandStatus::TimedOut
                };
                true
            });
        }
    }

    pub fn command(&self, seq: u64) -> Option<CommandInfo> {
        let state = self.lock();
        let index = state
            .commands
            .binary_search_by_key(&seq, |c| c.info.seq)
            .ok()?;
        Some(state.commands[index].info.clone())
    }
}
