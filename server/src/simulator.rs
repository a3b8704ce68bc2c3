//! Simulated devices: each connects to a hub's `/ws/device` URL, registers, and sends
//! `counter`, `temp` and `led` at a fixed rate in its dialect (the classic mbed CSV line
//! `id,counter,temp,led`, key=value, or JSON). It obeys `LED` commands, acknowledges every
//! command, and reconnects with backoff when the connection drops. With `--dialect csv
//! --no-register` it speaks only the plain CSV line protocol, for any server that does.

use crate::certificates::ServedCertificate;
use crate::retry::Backoff;
use clap::{Args, ValueEnum};
use futures::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use url::Url;

#[derive(Debug, Clone, Args)]
pub struct SimulatorArgs {
    /// WebSocket URL of the hub's device endpoint.
    #[arg(
        long,
        env = "IOTHUB_SIM_URL",
        default_value = "ws://127.0.0.1:3000/ws/device"
    )]
    pub url: Url,
    /// How many devices to simulate.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,
    /// Readings per second per device.
    #[arg(long, default_value_t = 1.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Id of the first device; the others count up from it.
    #[arg(long, default_value_t = 1)]
    pub first_id: u32,
    /// Line format; `mixed` gives each device the next format in turn.
    #[arg(long, value_enum, default_value_t = SimDialect::Mixed)]
    pub dialect: SimDialect,
    /// Do not send a registration line on connect.
    #[arg(long)]
    pub no_register: bool,
    /// Device tokens, one per simulated device in id order (`--token` repeated, or a
    /// comma-separated list); needed unless the hub allows tokenless devices.
    #[arg(
        long = "token",
        env = "IOTHUB_SIM_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,
    /// TLS for `wss://` URLs; `None` trusts the usual public certificate authorities.
    #[arg(skip)]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimDialect {
    Csv,
    Kv,
    Json,
    Mixed,
}

/// Readings per second: a finite number in (0, 1000].
pub fn parse_rate(raw: &str) -> Result<f64, String> {
    let rate: f64 = raw
        .parse()
        .map_err(|_| format!("{raw:?} is not a number"))?;
    if rate.is_finite() && rate > 0.0 && rate <= 1000.0 {
        Ok(rate)
    } else {
        Err("must be more than 0 and at most 1000 readings per second".into())
    }
}

/// A client TLS set-up that trusts exactly the certificate the hub serves (whatever name it is
/// for, and the new one after a renewal), for the bundled simulator talking to its own hub
/// over 127.0.0.1. Handshake signatures are still verified, so only the holder of the
/// certificate's key can answer.
pub fn pinned_tls(
    served: Arc<ServedCertificate>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        served,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct PinnedCertificate {
    served: Arc<ServedCertificate>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .served
            .leaf()
            .is_some_and(|served| served.as_ref() == end_entity.as_ref())
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Runs until `stop` is cancelled.
pub async fn run(args: SimulatorArgs, stop: CancellationToken) {
    tracing::info!(url = %args.url, devices = args.devices, rate = args.rate, "simulator started");
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.devices {
        let dialect = match args.dialect {
            SimDialect::Mixed => {
                [SimDialect::Csv, SimDialect::Kv, SimDialect::Json][n as usize % 3]
            }
            fixed => fixed,
        };
        let mut device = SimulatedDevice::new(args.first_id.saturating_add(n), dialect);
        device.register = !args.no_register;
        let mut url = args.url.clone();
        // In the URL rather than a header: that is how most microcontroller libraries do it.
        if let Some(token) = args.tokens.get(n as usize) {
            url.query_pairs_mut().append_pair("token", token);
        }
        tasks.spawn(device.run(url, args.tls.clone(), period, stop.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

struct SimulatedDevice {
    id: u32,
    dialect: SimDialect,
    register: bool,
    counter: u64,
    phase: f64,
    led: f64,
}

impl SimulatedDevice {
    fn new(id: u32, dialect: SimDialect) -> Self {
        SimulatedDevice {
            id,
            dialect,
            register: true,
            counter: 0,
            phase: fastrand::f64() * std::f64::consts::TAU,
            led: 0.0,
        }
    }

    fn registration(&self) -> String {
        serde_json::json!({
            "id": self.id.to_string(),
            "register": {
                "name": format!("Simulated sensor {}", self.id),
                "fields": [{"name": "counter"}, {"name": "temp", "unit": "°C"}, {"name": "led"}],
                "commands": [{"name": "LED", "min": 0, "max": 1}],
            }
        })
        .to_string()
    }

    /// The next reading: a slow sine around 21 °C with a little noise, and the LED state.
    fn next_line(&mut self) -> String {
        self.counter += 1;
        let t = self.counter as f64;
        let temp = 21.0
            + 3.0 * (t / 60.0 * std::f64::consts::TAU / 2.0 + self.phase).sin()
            + (fastrand::f64() - 0.5) * 0.4;
        let (id, counter, led) = (self.id, self.counter, self.led);
        match self.dialect {
            SimDialect::Kv => format!("id={id},counter={counter},temp={temp:.2},led={led}"),
            SimDialect::Json => {
                format!(r#"{{"id":"{id}","counter":{counter},"temp":{temp:.2},"led":{led}}}"#)
            }
            SimDialect::Csv | SimDialect::Mixed => format!("{id},{counter},{temp:.2},{led}"),
        }
    }

    /// Obeys a command line from the hub and returns the acknowledgement to send, if any.
    /// Understands `LED=1,seq=12,dur=500` and `{"cmd":"LED","value":1,"seq":12}`.
    fn obey(&mut self, line: &str) -> Option<String> {
        let (variable, value, seq) = if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (
                v["cmd"].as_str()?.to_string(),
                v["value"].as_f64()?,
                v["seq"].as_u64()?,
            )
        } else {
            let mut parts = line.split(',');
            let (variable, value) = parts.next()?.split_once('=')?;
            let seq = parts.find_map(|p| p.strip_prefix("seq="))?.parse().ok()?;
            (variable.to_string(), value.parse().ok()?, seq)
        };
        if variable == "LED" {
            self.led = value;
        }
        Some(match self.dialect {
            SimDialect::Json => format!(r#"{{"ack":{seq}}}"#),
            _ => format!("ack={seq}"),
        })
    }

    async fn run(
        mut self,
        url: Url,
        tls: Option<Arc<rustls::ClientConfig>>,
        period: Duration,
        stop: CancellationToken,
    ) {
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() {
            let connector = tls.clone().map(tokio_tungstenite::Connector::Rustls);
            match tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                None,
                false,
                connector,
            )
            .await
            {
                Ok((socket, _)) => {
                    backoff.reset();
                    self.stream(socket, period, &stop).await;
                }
                Err(err) => tracing::debug!(id = self.id, %err, "simulated device cannot connect"),
            }
            if !backoff.wait(&stop).await {
                return;
            }
        }
    }

    async fn stream<S>(
        &mut self,
        socket: tokio_tungstenite::WebSocketStream<S>,
        period: Duration,
        stop: &CancellationToken,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let (mut tx, mut rx) = socket.split();
        if self.register
            && tx
                .send(Message::Text(self.registration().into()))
                .await
                .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = tx.send(Message::Close(None)).await;
                    return;
                }
                _ = tick.tick() => {
                    if tx.send(Message::Text(self.next_line().into())).await.is_err() {
                        return;
                    }
                }
                incoming = rx.next() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(Message::Text(text))) => {
                        for line in text.lines() {
                            if let Some(ack) = self.obey(line) {
                                if tx.send(Message::Text(ack.into())).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{format_command, parse_line, DeviceMessage, Dialect, ParseRules};

    fn rules() -> ParseRules {
        ParseRules {
            csv_fields: ["counter".into(), "temp".into(), "led".into()].into(),
            max_fields: 64,
        }
    }

    #[test]
    fn every_dialect_parses_with_the_same_values() {
        for dialect in [SimDialect::Csv, SimDialect::Kv, SimDialect::Json] {
            let mut device = SimulatedDevice::new(7, dialect);
            for expected_counter in 1..=50 {
                let line = device.next_line();
                let Ok(DeviceMessage::Reading(r)) = parse_line(&line, &rules()) else {
                    panic!("{line}")
                };
                assert_eq!(r.device_id.unwrap().as_str(), "7");
                let get = |name: &str| r.values.iter().find(|v| &*v.field == name).map(|v| v.value);
                assert_eq!(get("counter"), Some(expected_counter as f64), "{line}");
                assert!((17.0..=25.0).contains(&get("temp").unwrap()), "{line}");
                assert_eq!(get("led"), Some(0.0));
            }
        }
    }

    #[test]
    fn registration_is_accepted_by_the_parser() {
        let device = SimulatedDevice::new(3, SimDialect::Csv);
        let Ok(DeviceMessage::Register { registration, .. }) =
            parse_line(&device.registration(), &rules())
        else {
            panic!("registration refused")
        };
        assert_eq!(registration.commands[0].name, "LED");
    }

    #[test]
    fn obeys_led_and_acks_in_its_dialect() {
        let mut csv = SimulatedDevice::new(1, SimDialect::Csv);
        assert_eq!(
            csv.obey(&format_command(Dialect::Csv, 12, "LED", 1.0, Some(500)))
                .as_deref(),
            Some("ack=12")
        );
        assert_eq!(csv.led, 1.0);
        assert!(csv.next_line().ends_with(",1"));
        let mut json = SimulatedDevice::new(2, SimDialect::Json);
        assert_eq!(
            json.obey(&format_command(Dialect::Json, 3, "LED", 1.0, None))
                .as_deref(),
            Some(r#"{"ack":3}"#)
        );
        assert_eq!(json.led, 1.0);
        assert_eq!(json.obey("error: something"), None);
        let ack = json
            .obey(&format_command(Dialect::Json, 4, "FAN", 0.5, None))
            .unwrap();
        assert!(matches!(
            parse_line(&ack, &rules()),
            Ok(DeviceMessage::Ack { seq: 4, .. })
        ));
        assert_eq!(json.led, 1.0, "other commands leave the LED alone");
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "NaN", "inf", "1001", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
