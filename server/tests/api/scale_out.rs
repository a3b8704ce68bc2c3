//! Two hubs sharing one PostgreSQL store, the storage half of running several hubs as one:
//! what one hub stores the other reads (history, CSV export), and accounts, sessions and
//! device tokens are the same on both (sign in once, use either; a token made on one admits
//! the device on the other, and revoking it on one disconnects the device from the other).

use crate::helpers::{eventually, Device, TestApp};
use server::storage::test_support::TestPostgres;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn two_hubs_on_one_postgres_share_history_accounts_and_tokens() {
    let Some(pg) = TestPostgres::create().await else {
        return;
    };
    let url = pg.url.clone();
    let spawn = || {
        TestApp::spawn_with(|args| {
            args.store.database_url = Some(url.clone());
            args.devices.allow_tokenless_devices = false;
        })
    };
    let (a, b) = (spawn().await, spawn().await);

    // The session made by signing in on A is good on B.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, a.session_cookie.parse().unwrap());
    let a_session_on_b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let devices = a_session_on_b
        .get(b.url("/api/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(devices.status(), 200, "A's session on B");

    // A device token made on B admits the device on A; A stores its readings, and B's
    // history and export have them.
    let token = b.create_token("7", "made on B").await;
    let request = format!("ws://{}/ws/device?token={}", a.addr, token.secret)
        .into_client_request()
        .unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("B's token admits the device on A");
    let mut device = Device { ws };
    for i in 0..20 {
        device.send(&format!("7,{i},{i}.5")).await;
    }
    let history = eventually("B reads what A stored", || async {
        Some(b.history("7", 100).await).filter(|h| h.len() == 20)
    })
    .await;
    assert_eq!(history[19].values[1].value, 19.5);
    let now = server::now_ms();
    let csv = b
        .http
        .get(b.url(&format!("/export/7.csv?from=0&to={}", now + 60_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert_eq!(csv.lines().count(), 21, "a header and 20 rows: {csv}");

    // Revoked on B, the token's device is disconnected from A (A finds the revocation in the
    // store) and refused by both.
    let revoked = b
        .call::<app::api::RevokeDeviceToken, app::model::DeviceToken>(&[(
            "id",
            &token.token.id.to_string(),
        )])
        .await
        .unwrap();
    assert!(revoked.revoked_ms.is_some());
    // (within A's revocation sweep, 5 s)
    assert_eq!(device.closed().await, "device token revoked");
    for hub in [&a, &b] {
        let request = format!("ws://{}/ws/device?token={}", hub.addr, token.secret)
            .into_client_request()
            .unwrap();
        assert!(tokio_tungstenite::connect_async(request).await.is_err());
    }

    a.stop().await;
    b.stop().await;
    pg.drop_database().await;
}
