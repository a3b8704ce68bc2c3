//! Telling people: each raised and cleared alarm goes to the channels its rule names — a
//! webhook (a JSON POST signed with the rule's secret: `X-IoTHub-Signature: sha256=<hex
//! HMAC-SHA256 of the body>`), an ntfy topic (a push to phones), an email (SMTP with STARTTLS or
//! TLS). Each delivery is a task of its own, retried with back-off, its outcome noted on the
//! alarm: a slow or dead receiver never holds up the alarms, let alone the readings.

use crate::storage::{Channel, Store};
use app::model::{Alarm, AlarmRule};
use clap::Args;
use hmac::{Hmac, Mac};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
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

/// Email for alarms.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Alarm emails")]
pub struct SmtpArgs {
    /// The mail server alarms are sent through: `smtp://user:password@mail.example.org:587`
    /// (STARTTLS, required), `smtps://…:465` (TLS); plain `smtp://` only to a relay on this
    /// machine (127.0.0.1, ::1, localhost).
    #[arg(long, env = "IOTHUB_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of alarm emails.
    #[arg(
        long,
        env = "IOTHUB_SMTP_FROM",
        default_value = "IoT hub <iothub@localhost>"
    )]
    pub smtp_from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("--smtp-url: {0}")]
    Url(String),
    #[error("--smtp-from is not an email address: {0}")]
    From(String),
}

/// A configured mail server and sender.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    /// From `--smtp-url` and `--smtp-from`; `None` when no server is configured.
    pub fn from_args(args: &SmtpArgs) -> Result<Option<Mailer>, SmtpError> {
        let Some(raw) = &args.smtp_url else {
            return Ok(None);
        };
        let mut url = url::Url::parse(raw).map_err(|e| SmtpError::Url(e.to_string()))?;
        let local = matches!(
            url.host_str(),
            Some("127.0.0.1" | "[::1]" | "::1" | "localhost")
        );
        let says_tls = url.query_pairs().any(|(k, _)| k == "tls");
        if url.scheme() == "smtp" && !says_tls && !local {
            // STARTTLS unless asked otherwise: passwords and alarms do not cross in clear.
            url.query_pairs_mut().append_pair("tls", "required");
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| SmtpError::Url(e.to_string()))?
            .timeout(Some(ATTEMPT_TIMEOUT))
            .build();
        let from = args
            .smtp_from
            .parse()
            .map_err(|e: lettre::address::AddressError| SmtpError::From(e.to_string()))?;
        Ok(Some(Mailer { transport, from }))
    }
}

/// Where one delivery goes.
#[derive(Clone)]
pub enum Target {
    Webhook { url: String, secret: String },
    Ntfy { url: String },
    Email { to: String, mailer: Box<Mailer> },
}

impl Target {
    fn channel(&self) -> Channel {
        match self {
            Target::Webhook { .. } => Channel::Webhook,
            Target::Ntfy { .. } => Channel::Ntfy,
            Target::Email { .. } => Channel::Email,
        }
    }
}

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

/// A title and a few lines for people: ntfy and email.
pub fn for_people(event: &str, alarm: &Alarm, rule: &AlarmRule) -> (String, String) {
    let title = format!("{}: {} on {}", event, rule.name, alarm.device_id);
    let value = match event {
        "cleared" => alarm.cleared_value,
        _ => alarm.raised_value,
    };
    let mut text = format!(
        "Alarm \"{}\" {event} for device {}",
        rule.name, alarm.device_id
    );
    if let (Some(field), Some(value)) = (rule.condition.field(), value) {
        text.push_str(&format!(" ({field} = {value})"));
    }
    let when = match event {
        "cleared" => alarm.cleared_ms,
        _ => Some(alarm.raised_ms),
    };
    if let Some(when) = when.and_then(chrono::DateTime::from_timestamp_millis) {
        text.push_str(&format!(" at {} UTC", when.format("%Y-%m-%d %H:%M:%S")));
    }
    text.push('.');
    (title, text)
}

/// One delivery: tries until it is accepted or the attempts run out, then notes the outcome
/// on the alarm.
pub async fn deliver(
    http: reqwest::Client,
    store: Store,
    target: Target,
    event: &'static str,
    alarm: Alarm,
    rule: AlarmRule,
) {
    let channel = target.channel();
    let mut wait = FIRST_RETRY;
    let mut outcome = String::new();
    for attempt in 1..=ATTEMPTS {
        match send(&http, &target, event, &alarm, &rule).await {
            Ok(()) => {
                metrics::counter!(crate::metrics::NOTIFICATIONS, "channel" => channel.label(), "result" => "sent")
                    .increment(1);
                outcome = format!("{event}: delivered");
                break;
            }
            Err(why) => outcome = format!("{event}: {why}"),
        }
        tracing::warn!(
            channel = channel.label(),
            attempt,
            outcome,
            "alarm delivery failed"
        );
        if attempt == ATTEMPTS {
            metrics::counter!(crate::metrics::NOTIFICATIONS, "channel" => channel.label(), "result" => "failed")
                .increment(1);
            outcome = format!("{outcome} (gave up after {ATTEMPTS} attempts)");
        } else {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    if let Err(err) = store.note_delivery(alarm.id, channel, &outcome).await {
        tracing::warn!(%err, "noting an alarm delivery failed");
    }
}

async fn send(
    http: &reqwest::Client,
    target: &Target,
    event: &'static str,
    alarm: &Alarm,
    rule: &AlarmRule,
) -> Result<(), String> {
    let accepted = |response: reqwest::Response| {
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    };
    match target {
        Target::Webhook { url, secret } => {
            let body = WebhookBody {
                event,
                alarm,
                rule,
                sent_ms: crate::now_ms(),
            };
            // A struct of plain fields always serialises.
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let response = http
                .post(url)
                .timeout(ATTEMPT_TIMEOUT)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature(secret, &body))
                .header(EVENT_HEADER, event)
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            accepted(response)
        }
        Target::Ntfy { url } => {
            // ntfy's publishing API: the message is the body, the rest are headers.
            let (title, text) = for_people(event, alarm, rule);
            let (priority, tags) = match event {
                "raised" => ("high", "warning"),
                _ => ("default", "white_check_mark"),
            };
            let response = http
                .post(url)
                .timeout(ATTEMPT_TIMEOUT)
                .header("Title", title)
                .header("Priority", priority)
                .header("Tags", tags)
                .body(text)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            accepted(response)
        }
        Target::Email { to, mailer } => {
            let (title, text) = for_people(event, alarm, rule);
            let to = to
                .parse()
                .map_err(|e: lettre::address::AddressError| e.to_string())?;
            let message = Message::builder()
                .from(mailer.from.clone())
                .to(to)
                .subject(format!("[IoT hub] {title}"))
                .body(text)
                .map_err(|e| e.to_string())?;
            mailer
                .transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
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

    #[test]
    fn smtp_is_encrypted_unless_the_server_is_on_this_machine() {
        let mailer = |url: &str| {
            Mailer::from_args(&SmtpArgs {
                smtp_url: Some(url.into()),
                smtp_from: "IoT hub <hub@example.org>".into(),
            })
        };
        assert!(mailer("smtp://u:p@mail.example.org:587").unwrap().is_some());
        assert!(mailer("smtps://u:p@mail.example.org:465")
            .unwrap()
            .is_some());
        assert!(mailer("smtp://127.0.0.1:2525").unwrap().is_some());
        assert!(matches!(mailer("not a url"), Err(SmtpError::Url(_))));
        let bad_from = Mailer::from_args(&SmtpArgs {
            smtp_url: Some("smtp://127.0.0.1:25".into()),
            smtp_from: "nobody".into(),
        });
        assert!(matches!(bad_from, Err(SmtpError::From(_))));
    }
}
