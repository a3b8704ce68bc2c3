//! Simulated devices: each connects to a hub's `/ws/device` URL and sends the classic mbed line
//! `id,counter,temperature` at a fixed rate, reconnecting with backoff when the connection drops.
//! Also usable against any server that speaks the CSV line protocol.

use clap::Args;
use futures::{SinkExt, StreamExt};
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

/// Runs until `stop` is cancelled.
pub async fn run(args: SimulatorArgs, stop: CancellationToken) {
    tracing::info!(url = %args.url, devices = args.devices, rate = args.rate, "simulator started");
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.devices {
        let device = SimulatedDevice::new(args.first_id.saturating_add(n));
        tasks.spawn(device.run(args.url.clone(), period, stop.clone()));
    }
    while tasks.join_next().await.is_some() {}
}

struct SimulatedDevice {
    id: u32,
    counter: u64,
    phase: f64,
}

impl SimulatedDevice {
    fn new(id: u32) -> Self {
        SimulatedDevice {
            id,
            counter: 0,
            phase: fastrand::f64() * std::f64::consts::TAU,
        }
    }

    /// `id,counter,temperature`: a slow sine around 21 °C with a little noise.
    fn next_line(&mut self) -> String {
        self.counter += 1;
        let t = self.counter as f64;
        let temp = 21.0
            + 3.0 * (t / 60.0 * std::f64::consts::TAU / 2.0 + self.phase).sin()
            + (fastrand::f64() - 0.5) * 0.4;
        format!("{},{},{:.2}", self.id, self.counter, temp)
    }

    async fn run(mut self, url: Url, period: Duration, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        while !stop.is_cancelled() {
            match tokio_tungstenite::connect_async(url.as_str()).await {
                Ok((socket, _)) => {
                    backoff = Duration::from_millis(250);
                    self.stream(socket, period, &stop).await;
                }
                Err(err) => tracing::debug!(id = self.id, %err, "simulated device cannot connect"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
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
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_line, ParseRules};

    #[test]
    fn simulated_lines_parse_as_the_classic_format() {
        let rules = ParseRules {
            csv_fields: vec!["counter".into(), "temp".into()],
            max_fields: 64,
        };
        let mut device = SimulatedDevice::new(7);
        for expected_counter in 1..=100 {
            let parsed = parse_line(&device.next_line(), &rules).unwrap();
            assert_eq!(parsed.device_id.unwrap().as_str(), "7");
            assert_eq!(parsed.values[0].value, expected_counter as f64);
            assert!((17.0..=25.0).contains(&parsed.values[1].value));
        }
    }

    #[test]
    fn rates_are_validated() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "NaN", "inf", "1001", "x"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
