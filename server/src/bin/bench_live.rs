//! `iothub-bench-live`: how fast a reading reaches the dashboard, and how fast the overview is
//! rendered, with many devices connected to a running hub.
//!
//! `--devices` WebSocket devices connect (ids `lat-1`, `lat-2`, …) and each sends `--rate`
//! key=value lines per second carrying its send time: `id=lat-7,sent=1763815845123.456`
//! (milliseconds since the epoch). One subscriber reads the dashboard's live stream as the
//! overview opens it (its first page of cards, so the readings of the first 48 devices by
//! name), and for every reading takes arrival − sent (one machine, one clock). Meanwhile it
//! times `--pages` GETs of the overview page to the first byte of the body, and measures the
//! whole page's size. Readings in the first `--warmup` seconds are not counted. With
//! `--device-base` the devices connect to another hub of the same system (`--cluster-nats`):
//! the latency is then from a device on one hub to a browser on the other.
//!
//! Output (stdout), `key=value` lines:
//!
//! ```text
//! phase=latency devices=1000 rate=1 readings=17000 p50_ms=1.9 p99_ms=6.1 max_ms=12.0
//! phase=ttfb pages=20 median_ms=35.2 p95_ms=41.0 html_bytes=61234
//! ```

use anyhow::{bail, Context};
use app::api::LiveUpdates;
use app::model::{DeviceQuery, LiveEvent, Scope};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "iothub-bench-live",
    version,
    about = "Device → browser latency and page render time"
)]
struct Args {
    /// The hub's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    base: url::Url,
    /// Where the devices connect, if not to `--base`: another hub of the same system
    /// (`--cluster-nats`), to time a reading's way from one hub to a browser on the other.
    #[arg(long)]
    device_base: Option<url::Url>,
    /// Device connections.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Readings per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seconds of sending, after every device has connected.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds at the start whose readings are not counted.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Overview page loads to time.
    #[arg(long, default_value_t = 20)]
    pages: u32,
    /// The dashboard user to sign in as.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Their password.
    #[arg(long, env = "IOTHUB_BENCH_PASSWORD", hide_env_values = true)]
    password: String,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.rate > 0.0 && args.rate <= 100.0) {
        bail!("--rate must be in (0, 100]");
    }
    let session = server::client::sign_in(&args.base, &args.user, &args.password).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::COOKIE, session.parse()?);
    // As the dashboard's page sends with every POST (the hub refuses signed-in POSTs without).
    headers.insert(
        reqwest::header::ORIGIN,
        args.base.origin().ascii_serialization().parse()?,
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()?;
    let device_base = args
        .device_base
        .clone()
        .unwrap_or_else(|| args.base.clone());
    let mut ws_base = device_base.clone();
    ws_base
        .set_scheme(if device_base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        })
        .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL of {device_base}"))?;

    // Subscribe first, so that no counted reading can be missed.
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let counting_from = Arc::new(Mutex::new(f64::INFINITY));
    let stop = CancellationToken::new();
    let stream = http
        .post(args.base.join(LiveUpdates::PATH)?)
        .json(&serde_json::json!({ "scope": Scope::Devices(DeviceQuery::default()) }))
        .send()
        .await
        .context("opening the live stream")?;
    if !stream.status().is_success() {
        bail!("the live stream answered {}", stream.status());
    }
    let subscriber = tokio::spawn({
        let (latencies, counting_from, stop) =
            (latencies.clone(), counting_from.clone(), stop.clone());
        async move {
            let mut body = stream.bytes_stream();
            let mut buffer = String::new();
            loop {
                let chunk = tokio::select! {
                    _ = stop.cancelled() => break,
                    chunk = body.next() => match chunk { Some(Ok(chunk)) => chunk, _ => break },
                };
                let arrived = now_ms();
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find('\n') {
                    let line: String = buffer.drain(..=end).collect();
                    let Ok(LiveEvent::Reading(reading)) = serde_json::from_str(&line) else {
                        continue;
                    };
                    let sent = reading
                        .values
                        .iter()
                        .find(|v| &*v.field == "sent")
                        .map(|v| v.value);
                    if let Some(sent) = sent.filter(|_| reading.device_id.starts_with("lat-")) {
                        if sent >= *counting_from.lock().unwrap_or_else(|e| e.into_inner()) {
                            latencies
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(arrived - sent);
                        }
                    }
                }
            }
        }
    });

    // Connect every device (a hundred handshakes at a time) before any sends.
    let mut sockets = Vec::with_capacity(args.devices as usize);
    let connects = futures::stream::iter(1..=args.devices)
        .map(|i| {
            let url = format!("{}ws/device?id=lat-{i}", ws_base);
            async move { (i, tokio_tungstenite::connect_async(url).await) }
        })
        .buffer_unordered(100);
    tokio::pin!(connects);
    while let Some((i, result)) = connects.next().await {
        let (socket, _) = result.with_context(|| format!("device lat-{i} could not connect"))?;
        sockets.push((i, socket));
    }
    eprintln!("{} devices connected", sockets.len());

    let started = Instant::now();
    *counting_from.lock().unwrap_or_else(|e| e.into_inner()) = now_ms() + args.warmup * 1000.0;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut senders = Vec::new();
    for (i, socket) in sockets {
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let (mut sink, mut incoming) = socket.split();
            // Spread the devices over the period instead of sending in lockstep.
            let offset = period.mul_f64(f64::from(i % 1000) / 1000.0);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    // Reading keeps the connection serviced (pings, error lines).
                    message = incoming.next() => if message.is_none() { break },
                    _ = tick.tick() => {
                        let line = format!("id=lat-{i},sent={:.3}", now_ms());
                        if sink.send(Message::text(line)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        }));
    }

    // Page loads while the devices send.
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let mut ttfb = Vec::new();
    let mut html_bytes = Vec::new();
    for _ in 0..args.pages {
        let begun = Instant::now();
        let mut response = http.get(args.base.clone()).send().await?;
        if !response.status().is_success() {
            bail!("the overview answered {}", response.status());
        }
        let mut bytes = response.chunk().await?.map_or(0, |c| c.len());
        ttfb.push(begun.elapsed().as_secs_f64() * 1000.0);
        // Drain the rest so the connection is reused and the page is really produced.
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len();
        }
        html_bytes.push(bytes);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let remaining = Duration::from_secs_f64(args.duration).saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    // Let the last readings arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for sender in senders {
        let _ = sender.await;
    }
    let _ = subscriber.await;

    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_by(f64::total_cmp);
    ttfb.sort_by(f64::total_cmp);
    println!(
        "phase=latency devices={} rate={} seconds={} readings={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        args.devices,
        args.rate,
        args.duration,
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    html_bytes.sort_unstable();
    println!(
        "phase=ttfb pages={} median_ms={:.1} p95_ms={:.1} html_bytes={}",
        ttfb.len(),
        quantile(&ttfb, 0.5),
        quantile(&ttfb, 0.95),
        html_bytes.get(html_bytes.len() / 2).copied().unwrap_or(0),
    );
    if latencies.is_empty() {
        bail!("no reading of the test devices reached the live stream");
    }
    Ok(())
}
