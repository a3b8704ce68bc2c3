//! Tests of the shared model: validation, the live state and its events.

use super::*;

#[test]
fn a_removed_device_is_no_longer_listed() {
    let mut state: DashboardState = DashboardSnapshot {
        devices: ["8", "7"]
            .map(|id| DeviceSnapshot {
                summary: summary(id),
                recent: vec![],
                console: vec![],
            })
            .into(),
        ..DashboardSnapshot::default()
    }
    .into();
    assert_eq!(
        state.page,
        ["8", "7"],
        "in the order the server listed them"
    );
    state.apply(LiveEvent::Removed {
        device_id: "7".into(),
    });
    assert_eq!(state.page, ["8"]);
    assert!(!state.devices.contains_key("7"));
}

#[test]
fn the_counts_follow_the_fleet_events() {
    let mut state = DashboardState::default();
    let fleet = Fleet {
        known: 10_000,
        online: 9_000,
        cut_off: false,
    };
    state.apply(LiveEvent::Fleet(fleet));
    assert_eq!(state.fleet, fleet);
}

fn summary(id: &str) -> DeviceSummary {
    DeviceSummary {
        id: id.into(),
        online: true,
        transport: "websocket".into(),
        connected_since_ms: Some(1),
        last_seen_ms: 1,
        readings: 0,
        errors: 0,
        bytes_in: 0,
        latest: vec![],
        registration: None,
        display_name: None,
    }
}

fn reading(seq: u64, id: &str, ms: i64, temp: f64) -> Reading {
    Reading {
        seq,
        device_id: id.into(),
        received_ms: ms,
        device_ms: None,
        values: vec![FieldValue {
            field: "temp".into(),
            value: temp,
        }],
    }
}

#[test]
fn readings_extend_series_and_update_summary() {
    let mut state = DashboardState::default();
    state.apply(LiveEvent::Device(summary("7")));
    state.apply(LiveEvent::Reading(reading(1, "7", 1000, 23.5)));
    state.apply(LiveEvent::Reading(reading(2, "7", 2000, 24.0)));
    let view = &state.devices["7"];
    assert_eq!(view.series[0].0, "temp");
    assert_eq!(
        view.series[0].1.iter().copied().collect::<Vec<_>>(),
        [(1000, 23.5), (2000, 24.0)]
    );
    let summary = view.summary.as_ref().unwrap();
    assert_eq!(summary.readings, 2);
    assert_eq!(summary.last_seen_ms, 2000);
    assert_eq!(summary.latest[0].value, 24.0);
}

#[test]
fn readings_already_in_a_snapshot_are_not_applied_twice() {
    let mut state: DashboardState = DashboardSnapshot {
        seq: 5,
        focus: None,
        devices: vec![DeviceSnapshot {
            summary: summary("7"),
            recent: vec![reading(5, "7", 5000, 1.0)],
            console: vec![],
        }],
        ..DashboardSnapshot::default()
    }
    .into();
    state.apply(LiveEvent::Reading(reading(5, "7", 5000, 1.0)));
    state.apply(LiveEvent::Reading(reading(6, "7", 6000, 2.0)));
    assert_eq!(state.devices["7"].series[0].1.len(), 2);
    assert_eq!(state.seq, 6);
}

#[test]
fn series_are_bounded_more_tightly_for_devices_out_of_focus() {
    let mut state = DashboardState {
        focus: Some("7".into()),
        ..DashboardState::default()
    };
    for i in 0..(LIVE_POINTS_PER_FIELD as u64 + 50) {
        state.apply(LiveEvent::Reading(reading(2 * i + 1, "7", i as i64, 0.0)));
        state.apply(LiveEvent::Reading(reading(2 * i + 2, "8", i as i64, 0.0)));
    }
    let points = &state.devices["7"].series[0].1;
    assert_eq!(points.len(), LIVE_POINTS_PER_FIELD);
    assert_eq!(points.front().unwrap().0, 50);
    assert_eq!(state.devices["8"].series[0].1.len(), SPARKLINE_POINTS);
}

#[test]
fn time_windows_round_trip_and_default_to_live() {
    for window in TimeWindow::ALL {
        assert_eq!(TimeWindow::from_key(window.key()), window);
    }
    assert_eq!(TimeWindow::from_key(""), TimeWindow::Live);
    assert_eq!(TimeWindow::from_key("1y"), TimeWindow::Live);
    assert_eq!(TimeWindow::Hour1.span_ms(), Some(3_600_000));
    assert_eq!(TimeWindow::Live.span_ms(), None);
}

#[test]
fn sparklines_skip_the_send_counter_and_units_come_from_the_registration() {
    let mut state = DashboardState::default();
    state.apply(LiveEvent::Device(DeviceSummary {
        registration: Some(Registration {
            fields: vec![FieldSpec {
                name: "temp".into(),
                unit: Some("°C".into()),
            }],
            ..Registration::default()
        }),
        ..summary("7")
    }));
    state.apply(LiveEvent::Reading(Reading {
        values: vec![
            FieldValue {
                field: "counter".into(),
                value: 1.0,
            },
            FieldValue {
                field: "temp".into(),
                value: 20.0,
            },
        ],
        ..reading(1, "7", 1, 0.0)
    }));
    let view = &state.devices["7"];
    assert_eq!(view.trend().map(|(f, _)| f.as_str()), Some("temp"));
    assert_eq!(view.unit("temp"), Some("°C"));
    assert_eq!(view.unit("counter"), None);
}

#[test]
fn command_updates_replace_the_earlier_status() {
    let mut state = DashboardState::default();
    let info = CommandInfo {
        seq: 1,
        device_id: "7".into(),
        variable: "LED".into(),
        value: 1.0,
        duration_ms: None,
        status: CommandStatus::Delivered,
        sent_ms: 1,
        updated_ms: 1,
    };
    state.apply(LiveEvent::Command(info.clone()));
    state.apply(LiveEvent::Command(CommandInfo {
        status: CommandStatus::Acked,
        ..info
    }));
    assert_eq!(state.commands.len(), 1);
    assert_eq!(state.commands[0].status, CommandStatus::Acked);
}

fn command(variable: &str, value: f64, duration_ms: Option<u64>) -> CommandRequest {
    CommandRequest {
        target: CommandTarget::All,
        variable: variable.into(),
        value,
        duration_ms,
        queue_ms: None,
    }
}

#[test]
fn command_requests_are_validated() {
    assert_eq!(command("LED", 1.0, Some(500)).validate(None), Ok(()));
    assert_eq!(command("motor_2", -3.5, None).validate(None), Ok(()));
    for bad in [
        command("", 1.0, None),
        command("2LED", 1.0, None),
        command("LED=1", 1.0, None),
        command("L E D", 1.0, None),
        command(&"X".repeat(33), 1.0, None),
        command("LED", f64::NAN, None),
        command("LED", f64::INFINITY, None),
        command("LED", 1.0, Some(0)),
        command("LED", 1.0, Some(MAX_DURATION_MS + 1)),
    ] {
        assert!(bad.validate(None).is_err(), "{bad:?}");
    }
    let spec = CommandSpec {
        name: "LED".into(),
        min: Some(0.0),
        max: Some(1.0),
        step: None,
        unit: None,
    };
    assert!(command("LED", 1.0, None).validate(Some(&spec)).is_ok());
    assert_eq!(
        command("LED", 2.0, None).validate(Some(&spec)),
        Err("LED accepts values from 0 to 1".into())
    );
}

#[test]
fn the_command_form_is_parsed_strictly() {
    let ok = CommandRequest::from_form("device:7", " LED ", " 1.5 ", "500", "").unwrap();
    assert_eq!(ok.target, CommandTarget::Device("7".into()));
    assert_eq!(
        (ok.variable.as_str(), ok.value, ok.duration_ms),
        ("LED", 1.5, Some(500))
    );
    assert_eq!(ok.queue_ms, None);
    let waits = CommandRequest::from_form("device:7", "LED", "1", "", "3600000").unwrap();
    assert_eq!(waits.queue_ms, Some(3_600_000));
    assert_eq!(waits.validate(None), Ok(()));
    assert!(CommandRequest::from_form("device:7", "LED", "1", "", "soon").is_err());
    assert!(
        CommandRequest::from_form("all", "LED", "1", "", "60000")
            .unwrap()
            .validate(None)
            .is_err(),
        "only a command to one device can wait for it"
    );
    assert_eq!(
        CommandRequest::from_form("all", "LED", "0", "", "")
            .unwrap()
            .target,
        CommandTarget::All
    );
    for (target, value, duration) in [
        ("all", "", ""),
        ("all", "abc", ""),
        ("all", "NaN", ""),
        ("all", "1", "-5"),
        ("all", "1", "1.5"),
        ("device:", "1", ""),
        ("nobody", "1", ""),
    ] {
        assert!(
            CommandRequest::from_form(target, "LED", value, duration, "").is_err(),
            "{target} {value} {duration}"
        );
    }
}

#[test]
fn wire_format_round_trips_one_event_per_line() {
    let event = LiveEvent::Reading(reading(3, "7", 3000, 23.5));
    let line = event.to_line();
    assert!(line.ends_with('\n'));
    assert_eq!(line.matches('\n').count(), 1);
    let back: LiveEvent = serde_json::from_str(line.trim_end()).unwrap();
    assert_eq!(back, event);
}

fn sent(seq: u64, device: &str, variable: &str, value: f64, status: CommandStatus) -> CommandInfo {
    CommandInfo {
        seq,
        device_id: device.into(),
        variable: variable.into(),
        value,
        duration_ms: None,
        status,
        sent_ms: 0,
        updated_ms: 0,
    }
}

#[test]
fn a_zero_to_one_command_gets_a_switch_and_a_wider_range_a_slider() {
    let spec = |min, max, step| CommandSpec {
        name: "X".into(),
        min,
        max,
        step,
        unit: None,
    };
    assert_eq!(
        spec(Some(0.0), Some(1.0), None).control(),
        Some(ControlKind::Switch)
    );
    assert_eq!(
        spec(Some(0.0), Some(255.0), None).control(),
        Some(ControlKind::Slider {
            min: 0.0,
            max: 255.0,
            step: 1.0
        })
    );
    assert_eq!(
        spec(Some(10.0), Some(30.0), Some(0.5)).control(),
        Some(ControlKind::Slider {
            min: 10.0,
            max: 30.0,
            step: 0.5
        })
    );
    assert_eq!(
        spec(Some(0.0), Some(1.0), Some(0.1)).control(),
        Some(ControlKind::Slider {
            min: 0.0,
            max: 1.0,
            step: 0.1
        }),
        "a 0-1 range in tenths is a dimmer, not a switch"
    );
    assert_eq!(spec(Some(0.0), None, None).control(), None);
    assert_eq!(spec(Some(1.0), Some(1.0), None).control(), None);
}

#[test]
fn a_control_shows_what_waits_for_its_ack_and_rolls_back_when_none_comes() {
    use CommandStatus::*;
    let none: Vec<CommandInfo> = Vec::new();
    assert_eq!(control_state(&none, "7", "LED"), ControlState::default());
    let acked = [sent(1, "7", "LED", 1.0, Acked)];
    assert_eq!(control_state(&acked, "7", "LED").shown(), Some(1.0));
    let waiting = [
        sent(1, "7", "LED", 1.0, Acked),
        sent(2, "7", "LED", 0.0, Delivered),
    ];
    let state = control_state(&waiting, "7", "LED");
    assert_eq!(
        (state.pending, state.confirmed, state.shown()),
        (Some(0.0), Some(1.0), Some(0.0))
    );
    let lost = [
        sent(1, "7", "LED", 1.0, Acked),
        sent(2, "7", "LED", 0.0, TimedOut),
    ];
    let state = control_state(&lost, "7", "LED");
    assert_eq!(state.shown(), Some(1.0), "back to the confirmed value");
    assert!(state.failed.is_some());
    // Other devices and variables do not count.
    let others = [
        sent(1, "8", "LED", 1.0, Acked),
        sent(2, "7", "FAN", 1.0, Acked),
    ];
    assert_eq!(control_state(&others, "7", "LED"), ControlState::default());
}

#[test]
fn an_automation_may_wait_for_one_device_but_not_for_all() {
    use crate::model::{Action, ActionTarget};
    let action = |target: ActionTarget| Action {
        target,
        variable: "FAN".into(),
        value: 1.0,
        duration_ms: None,
        queue_ms: Some(600_000),
    };
    assert_eq!(action(ActionTarget::AlarmDevice).validate(), Ok(()));
    assert_eq!(
        action(ActionTarget::Device("kitchen".into())).validate(),
        Ok(())
    );
    assert!(action(ActionTarget::All).validate().is_err());
}

#[test]
fn the_rule_form_becomes_a_checked_rule() {
    let form = RuleForm {
        name: " kitchen too hot ".into(),
        devices: "kitchen-*".into(),
        kind: "above".into(),
        field: "temp".into(),
        threshold: "30".into(),
        clear: "28".into(),
        seconds: "60".into(),
        on_raised: "FAN=1".into(),
        ..RuleForm::default()
    };
    let rule = form.to_rule().unwrap();
    assert_eq!(rule.name, "kitchen too hot");
    assert_eq!(
        rule.condition,
        Condition::Above {
            field: "temp".into(),
            threshold: 30.0,
            clear: Some(28.0),
            hold_s: 60
        }
    );
    assert_eq!(
        rule.on_raised.as_ref().unwrap().target,
        ActionTarget::AlarmDevice
    );
    assert_eq!(rule.on_raised.as_ref().unwrap().variable, "FAN");
    assert_eq!(rule.on_cleared, None);
    let offline = RuleForm {
        name: "gone".into(),
        kind: "offline".into(),
        seconds: "300".into(),
        ..RuleForm::default()
    };
    assert_eq!(
        offline.to_rule().unwrap().devices,
        "*",
        "empty devices: all"
    );
    for (broken, why) in [
        (
            RuleForm {
                threshold: "hot".into(),
                ..form.clone()
            },
            "must be a number",
        ),
        (
            RuleForm {
                clear: "35".into(),
                ..form.clone()
            },
            "clears at or below",
        ),
        (
            RuleForm {
                seconds: "-1".into(),
                ..form.clone()
            },
            "whole seconds",
        ),
        (
            RuleForm {
                on_raised: "FAN".into(),
                ..form.clone()
            },
            "VARIABLE=value",
        ),
        (
            RuleForm {
                webhook_url: "https://example.org/hook".into(),
                ..form.clone()
            },
            "secret",
        ),
        (
            RuleForm {
                kind: "offline".into(),
                seconds: "".into(),
                ..form.clone()
            },
            "after 1 to",
        ),
        (
            RuleForm {
                name: "".into(),
                ..form.clone()
            },
            "name",
        ),
    ] {
        let err = broken.to_rule().unwrap_err();
        assert!(err.contains(why), "{err:?} should say {why:?}");
    }
}

#[test]
fn a_rule_covers_devices_by_pattern_and_draws_its_threshold_on_its_field() {
    let rule = AlarmRule {
        id: 1,
        name: "hot".into(),
        devices: "kitchen-*".into(),
        condition: Condition::Below {
            field: "temp".into(),
            threshold: 5.0,
            clear: None,
            hold_s: 0,
        },
        webhook_url: None,
        ntfy_url: None,
        email_to: None,
        on_raised: None,
        on_cleared: None,
        created_ms: 0,
    };
    assert!(rule.covers("kitchen-1") && !rule.covers("garage"));
    // A chart reads the rule's JSON as far as it needs.
    let json = serde_json::to_string(&rule).unwrap();
    let threshold: RuleThreshold = serde_json::from_str(&json).unwrap();
    assert_eq!(threshold.id, 1);
    assert_eq!(threshold.threshold_for("temp"), Some(5.0));
    assert_eq!(threshold.threshold_for("hum"), None);
    let offline = AlarmRule {
        condition: Condition::Offline { after_s: 60 },
        ..rule.clone()
    };
    let offline: RuleThreshold =
        serde_json::from_str(&serde_json::to_string(&offline).unwrap()).unwrap();
    assert_eq!(offline.threshold_for("temp"), None);
    assert_eq!(rule.condition.describe(), "temp below 5");
    assert_eq!(
        Condition::Silent { after_s: 60 }.describe(),
        "no reading for 60 s"
    );
}

#[test]
fn alarms_up_follow_the_live_events_until_they_clear() {
    let alarm = Alarm {
        id: 4,
        rule_id: 1,
        rule_name: "hot".into(),
        device_id: "7".into(),
        raised_ms: 1_000,
        raised_value: Some(31.0),
        acked_by: None,
        acked_ms: None,
        cleared_ms: None,
        cleared_value: None,
        webhook_delivery: None,
        ntfy_delivery: None,
        email_delivery: None,
    };
    let mut state = DashboardState::default();
    state.apply(LiveEvent::Alarm(alarm.clone()));
    assert_eq!(state.alarms_for(Some("7")).count(), 1);
    assert_eq!(state.alarms_for(Some("8")).count(), 0);
    state.apply(LiveEvent::Alarm(Alarm {
        acked_by: Some("ann".into()),
        acked_ms: Some(2_000),
        ..alarm.clone()
    }));
    assert_eq!(state.alarms[&4].acked_by.as_deref(), Some("ann"));
    state.apply(LiveEvent::Alarm(Alarm {
        cleared_ms: Some(3_000),
        ..alarm.clone()
    }));
    assert_eq!(state.alarms_for(None).count(), 0);
    state.apply(LiveEvent::Alarm(alarm));
    state.apply(LiveEvent::Removed {
        device_id: "7".into(),
    });
    assert!(
        state.alarms.is_empty(),
        "a removed device's alarms go with it"
    );
}

#[test]
fn a_stored_rule_goes_back_into_the_form_unchanged_but_for_its_secret() {
    let form = RuleForm {
        name: "hot".into(),
        devices: "kitchen-*".into(),
        kind: "below".into(),
        field: "temp".into(),
        threshold: "2.5".into(),
        clear: "3".into(),
        seconds: "30".into(),
        webhook_url: "https://example.org/hook".into(),
        webhook_secret: "sixteen characters!".into(),
        on_cleared: "HEAT=0".into(),
        ..RuleForm::default()
    };
    let new = form.to_rule().unwrap();
    let stored = AlarmRule {
        id: 3,
        name: new.name.clone(),
        devices: new.devices.clone(),
        condition: new.condition.clone(),
        webhook_url: new.webhook_url.clone(),
        ntfy_url: None,
        email_to: None,
        on_raised: None,
        on_cleared: new.on_cleared.clone(),
        created_ms: 0,
    };
    let again = RuleForm::from_rule(&stored);
    assert_eq!(
        again,
        RuleForm {
            webhook_secret: String::new(),
            ..form
        }
    );
    // Left empty, the secret is the server's to keep; a new one replaces it.
    assert!(again.to_rule().is_err(), "a new rule needs a secret");
    let changed = again.to_changed_rule().unwrap();
    assert_eq!(changed.webhook_secret, None);
    assert_eq!(changed.condition, new.condition);
}

#[test]
fn conditions_decode_as_each_kind_writes_them_and_refuse_what_it_does_not_have() {
    let decode = |json: &str| serde_json::from_str::<Condition>(json).map_err(|e| e.to_string());
    assert_eq!(
        decode(r#"{"kind":"above","field":"t","threshold":30}"#),
        Ok(Condition::Above {
            field: "t".into(),
            threshold: 30.0,
            clear: None,
            hold_s: 0
        })
    );
    assert_eq!(
        decode(r#"{"kind":"below","field":"t","threshold":5,"clear":7.5,"hold_s":60}"#),
        Ok(Condition::Below {
            field: "t".into(),
            threshold: 5.0,
            clear: Some(7.5),
            hold_s: 60
        })
    );
    assert_eq!(
        decode(r#"{"kind":"offline","after_s":120}"#),
        Ok(Condition::Offline { after_s: 120 })
    );
    assert_eq!(
        decode(r#"{"kind":"silent","after_s":30}"#),
        Ok(Condition::Silent { after_s: 30 })
    );
    // What each kind writes, it reads back.
    for condition in [
        Condition::Above {
            field: "humidity".into(),
            threshold: 80.5,
            clear: Some(75.0),
            hold_s: 10,
        },
        Condition::Below {
            field: "t".into(),
            threshold: -3.0,
            clear: None,
            hold_s: 0,
        },
        Condition::Offline { after_s: 1 },
        Condition::Silent { after_s: 604_800 },
    ] {
        let json = serde_json::to_string(&condition).unwrap();
        assert_eq!(decode(&json), Ok(condition), "{json}");
    }
    let refused = |json: &str, why: &str| {
        let err = decode(json).expect_err(json);
        assert!(err.contains(why), "{json}: {err}");
    };
    refused(
        r#"{"kind":"above","field":"t"}"#,
        "missing field `threshold`",
    );
    refused(r#"{"kind":"below","threshold":1}"#, "missing field `field`");
    refused(r#"{"kind":"offline"}"#, "missing field `after_s`");
    refused(
        r#"{"kind":"above","field":"t","threshold":1,"after_s":5}"#,
        "unknown field `after_s`",
    );
    refused(
        r#"{"kind":"silent","after_s":5,"field":"t"}"#,
        "unknown field `field`",
    );
    refused(
        r#"{"kind":"offline","after_s":5,"hold_s":1}"#,
        "unknown field `hold_s`",
    );
    refused(
        r#"{"kind":"above","field":"t","threshold":1,"colour":"red"}"#,
        "unknown field `colour`",
    );
    refused(
        r#"{"kind":"sideways","after_s":5}"#,
        "unknown variant `sideways`",
    );
    refused(r#"{"field":"t","threshold":1}"#, "missing field `kind`");
    refused(
        r#"{"kind":"above","field":"t","threshold":"hot"}"#,
        "invalid type",
    );
}
