//! Webhook deliveries: a JSON POST for each raised and cleared alarm, signed with the rule's
//! secret (`X-IoTHub-Signature: sha256=<hex HMAC-SHA256 of the body>`), retried with back-off,
//! its outcome noted on the alarm. Each delivery is a task of its own: a slow or dead receiver
//! never holds up the alarms, let alone the readings.

use crate::storage::Store;
use app::model::{Alarm, AlarmRule};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;

/// Attempts per delivery, and the first wait between two (doubling).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub const SIGNATURE_HEADER: &str = "x-iothub-signature";
pub const EVENT_HEADER: &str = "x-iothub-event";

/// The body of a webhook request.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// `raised` or `cleared`.
    pub event: &'a str,
    pub alarm: &'a Alarm,
    pub rule: &'a AlarmRule,
    /// When the hub sent it (ms since 1970).
    pub sent_ms: i64,
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One delivery: tries until it is accepted (any 2xx) or the attempts run out, then notes the
/// outcome on the alarm.
pub async fn deliver(
    http: reqwest::Client,
    store: Store,
    url: String,
    secret: String,
    event: &'static str,
    alarm: Alarm,
    rule: AlarmRule,
) {
    let body = WebhookBody {
        event,
        alarm: &alarm,
        rule: &rule,
        sent_ms: crate::now_ms(),
    };
    // A struct of plain fields always serialises.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let signed = signature(&secret, &body);
    let mut wait = FIRST_RETRY;
    let mut outcome = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(&url)
            .timeout(ATTEMPT_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &signed)
            .header(EVENT_HEADER, event)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                metrics::counter!(crate::metrics::NOTIFICATIONS, "channel" => "webhook", "result" => "sent")
                    .increment(1);
                outcome = format!("{event}: delivered");
                break;
            }
            Ok(response) => {
                outcome = format!("{event}: the receiver answered {}", response.status())
            }
            Err(err) => outcome = format!("{event}: {err}"),
        }
        tracing::warn!(url, attempt, outcome, "webhook delivery failed");
        if attempt == ATTEMPTS {
            metrics::counter!(crate::metrics::NOTIFICATIONS, "channel" => "webhook", "result" => "failed")
                .increment(1);
            outcome = format!("{outcome} (gave up after {ATTEMPTS} attempts)");
        } else {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    if let Err(err) = store.note_delivery(alarm.id, &outcome).await {
        tracing::warn!(%err, "noting a webhook delivery failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
