//! Devices another hub holds: applied once and in order, never told back, and given up when
//! the device connects here or its hub goes.

use super::*;
use app::model::{DeviceSummary, Reading};
use tokio::sync::broadcast::error::TryRecvError;

fn registry() -> Registry {
    Registry::new(RegistryConfig {
        recent_per_device: 100,
        event_capacity: 64,
        command_timeout: Duration::from_secs(5),
        max_devices: 1_000,
    })
}

fn summary(id: &str, online: bool) -> DeviceSummary {
    DeviceSummary {
        id: id.into(),
        online,
        transport: "websocket 10.0.0.7:5000".into(),
        connected_since_ms: online.then_some(1),
        last_seen_ms: 1,
        readings: 0,
        errors: 0,
        bytes_in: 0,
        latest: Vec::new(),
        registration: None,
        display_name: None,
    }
}

fn reading(id: &str, seq: u64, value: f64) -> Reading {
    Reading {
        seq,
        device_id: id.into(),
        received_ms: 10 + seq as i64,
        device_ms: None,
        values: vec![FieldValue {
            field: "t".into(),
            value,
        }],
    }
}

fn values(registry: &Registry, id: &str) -> Vec<f64> {
    let snapshot = registry.snapshot(Selection::Page(&app::model::Scope::Device(id.into())));
    snapshot.devices[0]
        .recent
        .iter()
        .map(|r| r.values[0].value)
        .collect()
}

#[test]
fn readings_of_another_hub_are_applied_once_in_order_and_numbered_here() {
    let registry = registry();
    let (_, mut pages) = registry.subscribe(Selection::Summaries);
    let (_, mut local) = registry.subscribe_local(Selection::Summaries);
    registry.remote_summary("a", summary("7", true));
    registry.remote_readings("a", "7", vec![reading("7", 5, 1.0), reading("7", 6, 2.0)]);
    // Told again (a state after a reconnection) with one more: only the new one is applied.
    registry.remote_readings(
        "a",
        "7",
        vec![
            reading("7", 5, 1.0),
            reading("7", 6, 2.0),
            reading("7", 7, 3.0),
        ],
    );
    assert_eq!(values(&registry, "7"), [1.0, 2.0, 3.0]);
    let shown = registry.summary(&DeviceId::parse("7").unwrap()).unwrap();
    assert!(shown.online);
    assert_eq!(shown.readings, 3);
    assert_eq!(shown.transport, "websocket 10.0.0.7:5000 via a");
    // This hub's pages see them, numbered by this hub; the local channel (the alarm engine,
    // the cluster) does not.
    assert!(matches!(pages.try_recv(), Ok(LiveEvent::Device(_))));
    let seqs: Vec<u64> = std::iter::from_fn(|| match pages.try_recv() {
        Ok(LiveEvent::Reading(r)) => Some(r.seq),
        _ => None,
    })
    .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(matches!(local.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn a_device_connected_here_is_this_hubs_and_what_others_say_of_it_is_ignored() {
    let registry = registry();
    registry.remote_summary("a", summary("7", true));
    registry.remote_readings("a", "7", vec![reading("7", 1, 1.0)]);
    let (_, mut local) = registry.subscribe_local(Selection::Summaries);
    let (tx, _rx) = mailbox();
    let here = registry
        .attach(DeviceId::parse("7").unwrap(), "test".into(), tx)
        .unwrap();
    // Its connection here is told to the other hubs.
    assert!(matches!(local.try_recv(), Ok(LiveEvent::Device(d)) if d.online));
    registry.record(&here, Dialect::Csv, None, temp(2.0));
    // Hub a, late, still says it holds it: ignored.
    registry.remote_summary("a", summary("7", false));
    registry.remote_readings("a", "7", vec![reading("7", 2, 9.0)]);
    registry.hub_lost("a");
    let shown = registry.summary(&DeviceId::parse("7").unwrap()).unwrap();
    assert!(shown.online);
    assert_eq!(shown.transport, "test");
    assert_eq!(values(&registry, "7"), [1.0, 2.0]);
    assert_eq!(registry.local_devices().len(), 1);
}

#[test]
fn a_hub_gone_or_no_longer_listing_a_device_takes_it_offline() {
    let registry = registry();
    registry.remote_summary("a", summary("7", true));
    registry.remote_summary("a", summary("8", true));
    registry.remote_summary("b", summary("9", true));
    let online = |id: &str| {
        registry
            .summary(&DeviceId::parse(id).unwrap())
            .unwrap()
            .online
    };
    // Hub a's state no longer lists 8: it went offline while this hub was not listening.
    registry.remote_state(
        "a",
        vec![DeviceState {
            summary: summary("7", true),
            recent: Vec::new(),
        }],
    );
    assert!(online("8"), "not until the list of all it holds");
    registry.remote_holding("a", &["7".to_string()]);
    assert!(online("7") && !online("8") && online("9"));
    registry.hub_lost("a");
    assert!(!online("7") && online("9"));
    // None of them is this hub's own.
    assert!(registry.local_devices().is_empty());
    registry.remote_removed("b", "9");
    assert!(registry.summary(&DeviceId::parse("9").unwrap()).is_none());
}

fn temp(v: f64) -> Vec<FieldValue> {
    vec![FieldValue {
        field: "temp".into(),
        value: v,
    }]
}
