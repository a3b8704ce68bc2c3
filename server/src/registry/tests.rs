//! The registry's own tests: presence, readings, consoles, commands.

use super::*;
use app::model::{
    CommandRequest, CommandStatus, CommandTarget, DeviceOrder, DeviceQuery, Scope, PAGE_SIZE,
    SPARKLINE_POINTS,
};

fn registry(recent: usize, events: usize) -> Registry {
    Registry::new(RegistryConfig {
        recent_per_device: recent,
        event_capacity: events,
        command_timeout: Duration::from_secs(5),
        max_devices: 1_000,
    })
}

fn id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn temp(v: f64) -> Vec<FieldValue> {
    vec![FieldValue {
        field: "temp".into(),
        value: v,
    }]
}

fn led(target: CommandTarget, value: f64) -> CommandRequest {
    CommandRequest {
        target,
        variable: "LED".into(),
        value,
        duration_ms: None,
        queue_ms: None,
    }
}

#[test]
fn attach_record_detach() {
    let registry = registry(10, 16);
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "test".into(), tx).unwrap();
    let r = registry.record(&att, Dialect::Csv, None, temp(23.5));
    assert_eq!(r.seq, 1);
    let s = registry.summary(&id("7")).unwrap();
    assert!(s.online);
    assert_eq!((s.readings, s.latest[0].value), (1, 23.5));
    drop(att);
    assert!(!registry.summary(&id("7")).unwrap().online);
}

#[test]
fn a_new_connection_replaces_the_old_one() {
    let registry = registry(10, 16);
    let (old_tx, old_rx) = mailbox();
    let old = registry.attach(id("7"), "a".into(), old_tx).unwrap();
    let (new_tx, _new_rx) = mailbox();
    let _new = registry.attach(id("7"), "b".into(), new_tx).unwrap();
    assert!(
        matches!(old_rx.try_recv(), Some(Outbound::Close(reason)) if reason.contains("replaced"))
    );
    drop(old);
    let s = registry.summary(&id("7")).unwrap();
    assert!(
        s.online,
        "the old connection going away must not take the new one offline"
    );
    assert_eq!(s.transport, "b");
}

#[test]
fn recent_readings_and_console_lines_are_bounded() {
    let registry = registry(3, 16);
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    for i in 0..(CONSOLE_LINES + 10) {
        registry.lines_in(
            &att,
            Heard {
                lines: &format!("7,{i}"),
                ms: now_ms(),
            },
        );
        registry.record(&att, Dialect::Csv, None, temp(i as f64));
    }
    let snap = detail(&registry, "7");
    let n = (CONSOLE_LINES + 10) as u64;
    let recent: Vec<u64> = snap.devices[0].recent.iter().map(|r| r.seq).collect();
    assert_eq!(recent, [n - 2, n - 1, n]);
    assert_eq!(snap.devices[0].console.len(), CONSOLE_LINES);
    assert_eq!(
        snap.devices[0].console.last().unwrap().text,
        format!("7,{}", CONSOLE_LINES + 9)
    );
    registry.lines_in(
        &att,
        Heard {
            lines: &"x".repeat(10_000),
            ms: now_ms(),
        },
    );
    assert!(
        detail(&registry, "7").devices[0]
            .console
            .last()
            .unwrap()
            .text
            .chars()
            .count()
            <= CONSOLE_LINE_CHARS + 1
    );
}

#[test]
fn restoring_lists_a_stored_device_offline_but_never_replaces_a_live_one() {
    let registry = registry(3, 16);
    let (tx, _rx) = mailbox();
    let _live = registry.attach(id("7"), "t".into(), tx).unwrap();
    registry.restore(
        "7",
        Restored {
            last_seen_ms: 42,
            ..Restored::default()
        },
    );
    let old: Vec<Reading> = (0..5)
        .map(|i| Reading {
            seq: 0,
            device_id: "8".into(),
            received_ms: i,
            device_ms: None,
            values: temp(i as f64),
        })
        .collect();
    registry.restore(
        "8",
        Restored {
            last_seen_ms: 42,
            recent: old,
            ..Restored::default()
        },
    );
    registry.restore(
        "bad\nid",
        Restored {
            last_seen_ms: 42,
            ..Restored::default()
        },
    );

    let snap = registry.snapshot(Selection::Sparklines);
    assert_eq!(snap.devices.len(), 2, "an invalid stored id is skipped");
    let seven = &snap.devices[0].summary;
    assert!(seven.online, "the live connection stays");
    let eight = &snap.devices[1];
    assert!(!eight.summary.online && eight.summary.connected_since_ms.is_none());
    assert_eq!(eight.summary.last_seen_ms, 42);
    let kept: Vec<i64> = eight.recent.iter().map(|r| r.received_ms).collect();
    assert_eq!(kept, [2, 3, 4], "only the newest recent readings are kept");
    assert_eq!(
        eight.summary.latest,
        temp(4.0),
        "the newest reading's values"
    );
}

fn detail(registry: &Registry, device: &str) -> DashboardSnapshot {
    registry.snapshot(Selection::Page(&Scope::Device(device.into())))
}

#[test]
fn snapshots_carry_detail_only_for_the_device_in_focus() {
    let registry = registry(SPARKLINE_POINTS + 40, 16);
    let (tx, _rx) = mailbox();
    let seven = registry.attach(id("7"), "t".into(), tx.clone()).unwrap();
    let eight = registry.attach(id("8"), "t".into(), tx).unwrap();
    for i in 0..(SPARKLINE_POINTS + 40) {
        for att in [&seven, &eight] {
            registry.lines_in(
                att,
                Heard {
                    lines: "line",
                    ms: now_ms(),
                },
            );
            registry.record(att, Dialect::Csv, None, temp(i as f64));
        }
    }
    let overview = registry.snapshot(Selection::Page(&Scope::Devices(DeviceQuery::default())));
    assert_eq!(overview.focus, None);
    assert_eq!(overview.devices.len(), 2);
    for device in &overview.devices {
        assert_eq!(device.recent.len(), SPARKLINE_POINTS);
        assert!(device.console.is_empty());
    }
    let detail = detail(&registry, "8");
    assert_eq!(detail.focus.as_deref(), Some("8"));
    assert_eq!(detail.devices.len(), 1, "only the device in focus");
    assert_eq!(detail.devices[0].recent.len(), SPARKLINE_POINTS + 40);
    assert_eq!(detail.devices[0].console.len(), SPARKLINE_POINTS + 40);
    assert_eq!(
        detail.fleet,
        Fleet {
            known: 2,
            online: 2,
            cut_off: false,
        },
        "and the counts of all"
    );
}

#[test]
fn the_overview_gets_one_page_of_the_devices_its_filter_matches() {
    let registry = registry(10, 16);
    let (tx, _rx) = mailbox();
    let mut attached = Vec::new();
    for i in 0..150 {
        let kind = if i % 3 == 0 { "kitchen" } else { "garden" };
        let att = registry
            .attach(id(&format!("{kind}-{i:03}")), "t".into(), tx.clone())
            .unwrap();
        registry.record(&att, Dialect::Csv, None, temp(i as f64));
        attached.push(att);
    }
    // Every third one goes offline.
    attached.retain(|att| !att.device.as_str().starts_with("kitchen"));
    let page = |filter: &str, page: u32| {
        let query = DeviceQuery {
            filter: filter.into(),
            order: DeviceOrder::OfflineFirst,
            page,
        };
        registry.snapshot(Selection::Page(&Scope::Devices(query)))
    };
    let first = page("", 0);
    assert_eq!(first.matching, 150);
    assert_eq!(first.devices.len(), PAGE_SIZE);
    assert_eq!(
        first.fleet,
        Fleet {
            known: 150,
            online: 100,
            cut_off: false,
        }
    );
    assert!(
        first.devices.iter().all(|d| !d.summary.online),
        "offline first"
    );
    assert_eq!(first.devices[0].summary.id, "kitchen-000");
    assert_eq!(first.devices[0].recent.len(), 1, "with its sparkline");
    let kitchen = page("KITCHEN-", 1);
    assert_eq!(kitchen.matching, 50);
    let ids: Vec<&str> = kitchen
        .devices
        .iter()
        .map(|d| d.summary.id.as_str())
        .collect();
    assert_eq!(ids, ["kitchen-144", "kitchen-147"], "the second page of 50");
    assert!(page("", 4).devices.is_empty(), "past the end");
    assert!(registry
        .snapshot(Selection::Page(&Scope::Fleet))
        .devices
        .is_empty());
}

#[test]
fn subscribers_see_each_event_in_the_snapshot_or_the_stream_exactly_once() {
    let registry = registry(100, 1024);
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    registry.record(&att, Dialect::Csv, None, temp(1.0));
    let (snap, mut rx) = registry.subscribe(Selection::Page(&Scope::Fleet));
    registry.record(&att, Dialect::Csv, None, temp(2.0));
    assert_eq!(snap.seq, 1);
    match rx.try_recv().unwrap() {
        LiveEvent::Reading(r) => assert_eq!(r.seq, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_slow_subscriber_lags_without_blocking_ingest() {
    let registry = registry(10, 4);
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    let (_, mut slow) = registry.subscribe(Selection::Page(&Scope::Fleet));
    for i in 0..100 {
        registry.record(&att, Dialect::Csv, None, temp(i as f64));
    }
    assert!(matches!(
        slow.try_recv(),
        Err(broadcast::error::TryRecvError::Lagged(_))
    ));
    assert_eq!(registry.snapshot(Selection::Page(&Scope::Fleet)).seq, 100);
}

#[test]
fn a_command_goes_out_in_the_device_dialect_and_is_acked() {
    let registry = registry(10, 64);
    let (tx, rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    registry.record(&att, Dialect::Json, None, temp(1.0));
    let sent = registry
        .send_command(&led(CommandTarget::Device("7".into()), 1.0))
        .unwrap();
    let seq = sent[0].seq;
    assert_eq!(
        rx.try_recv().unwrap(),
        Outbound::Command {
            seq,
            line: format!(r#"{{"cmd":"LED","value":1,"seq":{seq}}}"#)
        }
    );
    registry.command_delivered(seq);
    assert_eq!(
        registry.command(seq).unwrap().status,
        CommandStatus::Delivered
    );
    registry.acknowledge(&att, seq).unwrap();
    assert_eq!(registry.command(seq).unwrap().status, CommandStatus::Acked);
    assert_eq!(
        registry.acknowledge(&att, seq),
        Err(CommandError::UnknownAck(seq)),
        "acked once only"
    );
    assert_eq!(
        registry.acknowledge(&att, 999),
        Err(CommandError::UnknownAck(999))
    );
}

#[test]
fn commands_to_all_reach_every_online_device_only() {
    let registry = registry(10, 64);
    let (a_tx, a_rx) = mailbox();
    let (b_tx, b_rx) = mailbox();
    let (c_tx, _c_rx) = mailbox();
    let _a = registry.attach(id("a"), "t".into(), a_tx).unwrap();
    let _b = registry.attach(id("b"), "t".into(), b_tx).unwrap();
    drop(registry.attach(id("c"), "t".into(), c_tx).unwrap());
    let sent = registry
        .send_command(&led(CommandTarget::All, 0.0))
        .unwrap();
    let devices: Vec<&str> = sent.iter().map(|c| c.device_id.as_str()).collect();
    assert_eq!(devices, ["a", "b"]);
    assert!(
        matches!(a_rx.try_recv(), Some(Outbound::Command { line, .. }) if line.starts_with("LED=0,seq="))
    );
    assert!(b_rx.try_recv().is_some());
    assert_ne!(sent[0].seq, sent[1].seq);
}

#[test]
fn offline_unknown_and_out_of_range_commands() {
    let registry = registry(10, 64);
    assert_eq!(
        registry.send_command(&led(CommandTarget::All, 1.0)),
        Err(CommandError::NobodyOnline)
    );
    assert_eq!(
        registry.send_command(&led(CommandTarget::Device("nope".into()), 1.0)),
        Err(CommandError::UnknownDevice("nope".into()))
    );
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    let registration = Registration {
        commands: vec![app::model::CommandSpec {
            name: "LED".into(),
            min: Some(0.0),
            max: Some(1.0),
            step: None,
            unit: None,
        }],
        ..Registration::default()
    };
    assert!(registry.register(&att, &registration), "new");
    assert!(!registry.register(&att, &registration), "the same again");
    assert!(matches!(
        registry.send_command(&led(CommandTarget::Device("7".into()), 5.0)),
        Err(CommandError::Invalid(msg)) if msg.contains("from 0 to 1")
    ));
    drop(att);
    let sent = registry
        .send_command(&led(CommandTarget::Device("7".into()), 1.0))
        .unwrap();
    assert_eq!(
        sent[0].status,
        CommandStatus::Failed("device \"7\" is offline".into())
    );
}

#[test]
fn unacknowledged_commands_time_out() {
    let registry = registry(10, 64);
    let (tx, _rx) = mailbox();
    let _att = registry.attach(id("7"), "t".into(), tx).unwrap();
    let seq = registry
        .send_command(&led(CommandTarget::Device("7".into()), 1.0))
        .unwrap()[0]
        .seq;
    registry.command_delivered(seq);
    registry.expire_overdue(now_ms());
    assert_eq!(
        registry.command(seq).unwrap().status,
        CommandStatus::Delivered,
        "not yet"
    );
    registry.expire_overdue(now_ms() + 5_001);
    assert_eq!(
        registry.command(seq).unwrap().status,
        CommandStatus::TimedOut
    );
}

#[test]
fn a_device_cannot_ack_another_devices_command() {
    let registry = registry(10, 64);
    let (a_tx, _a_rx) = mailbox();
    let (b_tx, _b_rx) = mailbox();
    let _a = registry.attach(id("a"), "t".into(), a_tx).unwrap();
    let b = registry.attach(id("b"), "t".into(), b_tx).unwrap();
    let seq = registry
        .send_command(&led(CommandTarget::Device("a".into()), 1.0))
        .unwrap()[0]
        .seq;
    assert_eq!(
        registry.acknowledge(&b, seq),
        Err(CommandError::UnknownAck(seq))
    );
}

#[test]
fn new_ids_past_the_device_limit_are_refused_known_ones_are_not() {
    let registry = Registry::new(RegistryConfig {
        recent_per_device: 10,
        event_capacity: 16,
        command_timeout: Duration::from_secs(5),
        max_devices: 2,
    });
    let (tx, _rx) = mailbox();
    let a = registry.attach(id("a"), "t".into(), tx.clone()).unwrap();
    let _b = registry.attach(id("b"), "t".into(), tx.clone()).unwrap();
    assert_eq!(
        registry.attach(id("c"), "t".into(), tx.clone()).err(),
        Some(TooManyDevices(2))
    );
    // A known device (offline now) may come back.
    drop(a);
    assert!(registry.attach(id("a"), "t".into(), tx).is_ok());
}

#[test]
fn a_batch_records_its_lines_and_readings_together() {
    let registry = registry(10, 64);
    let (tx, _rx) = mailbox();
    let att = registry.attach(id("7"), "t".into(), tx).unwrap();
    let (_, mut events) = registry.subscribe(Selection::Page(&Scope::Fleet));
    let new = |value| NewReading {
        dialect: Dialect::Csv,
        device_ms: None,
        values: temp(value),
    };
    let heard = Heard {
        lines: "7,1,20.5\n7,2,21.5\n",
        ms: 1_000,
    };
    let recorded = registry.record_batch(&att, heard, [new(20.5), new(21.5)]);
    assert_eq!(recorded.len(), 2);
    let device = detail(&registry, "7").devices.remove(0);
    let console: Vec<&str> = device.console.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(console, ["7,1,20.5", "7,2,21.5"]);
    assert_eq!(device.summary.bytes_in, 18);
    assert_eq!(device.summary.readings, 2);
    // Console lines are published before the readings they carried.
    let kinds: Vec<&str> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|event| match event {
            LiveEvent::Console { .. } => "console",
            LiveEvent::Reading(_) => "reading",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["console", "console", "reading", "reading"]);
}

fn queued(value: f64, queue_ms: u64) -> CommandRequest {
    CommandRequest {
        queue_ms: Some(queue_ms),
        ..led(CommandTarget::Device("sleepy".into()), value)
    }
}

#[test]
fn commands_for_a_sleeping_device_wait_and_go_out_in_order_when_it_connects() {
    let registry = registry(10, 64);
    let (tx, _rx) = mailbox();
    drop(registry.attach(id("sleepy"), "t".into(), tx).unwrap());
    let first = registry.send_command(&queued(1.0, 60_000)).unwrap()[0].seq;
    let second = registry.send_command(&queued(0.0, 60_000)).unwrap()[0].seq;
    assert_eq!(
        registry.command(first).unwrap().status,
        CommandStatus::Queued
    );
    // Without `queue_ms` an offline device's command still fails at once.
    let now = registry
        .send_command(&led(CommandTarget::Device("sleepy".into()), 1.0))
        .unwrap();
    assert!(matches!(now[0].status, CommandStatus::Failed(_)));

    let (tx, rx) = mailbox();
    let att = registry.attach(id("sleepy"), "t".into(), tx).unwrap();
    let lines: Vec<Outbound> = std::iter::from_fn(|| rx.try_recv()).collect();
    assert_eq!(
        lines,
        [
            Outbound::Command {
                seq: first,
                line: format!("LED=1,seq={first}")
            },
            Outbound::Command {
                seq: second,
                line: format!("LED=0,seq={second}")
            },
        ]
    );
    assert_eq!(
        registry.command(second).unwrap().status,
        CommandStatus::Pending
    );
    registry.command_delivered(first);
    registry.acknowledge(&att, first).unwrap();
    assert_eq!(
        registry.command(first).unwrap().status,
        CommandStatus::Acked
    );
    // Delivered once: a later connection gets nothing again.
    drop(att);
    let (tx, rx) = mailbox();
    let _att = registry.attach(id("sleepy"), "t".into(), tx).unwrap();
    assert_eq!(rx.try_recv(), None);
}

#[test]
fn a_queued_command_expires_when_its_device_stays_away_and_the_queue_is_bounded() {
    let registry = registry(10, 64);
    let (tx, _rx) = mailbox();
    drop(registry.attach(id("sleepy"), "t".into(), tx).unwrap());
    let seq = registry.send_command(&queued(1.0, 1_000)).unwrap()[0].seq;
    let sent_ms = registry.command(seq).unwrap().sent_ms;
    registry.expire_overdue(sent_ms + 999);
    assert_eq!(registry.command(seq).unwrap().status, CommandStatus::Queued);
    registry.expire_overdue(sent_ms + 1_001);
    assert_eq!(
        registry.command(seq).unwrap().status,
        CommandStatus::Expired
    );
    let (tx, rx) = mailbox();
    let _att = registry.attach(id("sleepy"), "t".into(), tx).unwrap();
    assert_eq!(rx.try_recv(), None, "an expired command is never sent");
    drop(_att);

    for _ in 0..commands::MAX_QUEUED_PER_DEVICE {
        registry.send_command(&queued(1.0, 60_000)).unwrap();
    }
    assert_eq!(
        registry.send_command(&queued(1.0, 60_000)),
        Err(CommandError::QueueFull("sleepy".into()))
    );
    // A command to every device cannot wait: there is no telling who "every device" will be.
    let all = CommandRequest {
        queue_ms: Some(1_000),
        ..led(CommandTarget::All, 1.0)
    };
    assert!(matches!(
        registry.send_command(&all),
        Err(CommandError::Invalid(_))
    ));
}
