//! `iothub-load`: a load generator for anything speaking the CSV line protocol over WebSocket
//! (`ID,COUNTER,TEMP` lines in text frames), such as the hub's `/ws/device` endpoint, or over
//! raw TCP (`--url tcp://host:5070`: newline-terminated lines, the hub's `--tcp-listen`).
//!
//! Two modes:
//!
//! * **flood** (default): `--connections` devices connect (at most `--connect-concurrency` at a
//!   time), wait until every connect has finished, then all send `--batch` lines per frame, as
//!   fast as the socket allows (or `--rate` lines/s each) for `--duration` seconds. Each then
//!   closes the WebSocket and waits until the server answers the close (or ends the
//!   connection), so when the tool exits the server has read every line that was sent.
//! * **idle** (`--idle`): each device sends one line to identify itself and then only reads
//!   (answering pings) until `--duration` seconds after the last connect, or Ctrl-C.
//!
//! Output (stdout), one `key=value` line per phase:
//!
//! ```text
//! phase=connected connections=100 connected=100 connect_failed=0 connect_s=0.05
//! phase=done mode=flood connections=100 connected=100 ... sent=123456 errors_received=0 ... elapsed_s=10.02 sent_per_s=12321.0
//! ```
//!
//! `send_s` is the sending phase; `elapsed_s` runs from the start of sending until the last
//! connection's close handshake ended (the server had read everything); rates use `elapsed_s`.
//! A server slower than the senders leaves lines queued in the kernel's socket buffers when the
//! sending phase ends; reading them is part of `elapsed_s` (up to `--drain-timeout`).
//! Ctrl-C ends every phase early (waiting at most 2 s for close replies). Exits with status 1
//! if no connection could be made.

use clap::Parser;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use url::Url;

type Socket = WebSocketStream<TcpStream>;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "iothub-load",
    version,
    about = "Load generator for the CSV-over-WebSocket device protocol"
)]
struct Args {
    /// WebSocket URL of the device endpoint (the only address this tool connects to), or
    /// `tcp://host:port` for raw TCP lines. Plain `ws://` only: this tool has no TLS.
    #[arg(long, default_value = "ws://127.0.0.1:3000/ws/device")]
    url: Url,
    /// Number of device connections.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    connections: u32,
    /// Seconds of sending (flood) or of staying connected (idle), counted from the moment the
    /// last connect finished.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    duration: f64,
    /// Device id of the first connection; the others count up from it.
    #[arg(long, default_value_t = 1)]
    first_id: u64,
    /// Lines per WebSocket text frame.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Lines per second per connection; 0 sends as fast as the socket allows.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,
    /// Each connection sends one line to identify itself, then only reads until the end.
    #[arg(long)]
    idle: bool,
    /// Most connects (TCP + WebSocket handshake) in flight at once.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connect_concurrency: u32,
    /// Seconds allowed for all connects together; connects still pending then count as failed.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    connect_timeout: f64,
    /// Seconds each connection waits for the server's close reply after the duration (the
    /// server may still be reading what was sent).
    #[arg(long, default_value_t = 120.0, value_parser = parse_seconds)]
    drain_timeout: f64,
    /// Socket send buffer per connection in bytes (SO_SNDBUF; the kernel doubles it); 0 keeps
    /// the system's autotuned buffer, which on Linux grows to megabytes and lets a fast sender
    /// queue far more than a slow server can read.
    #[arg(long, default_value_t = 0)]
    send_buffer: u32,
    /// Tokio worker threads for this tool (0 = one per core). On a small machine shared with
    /// the server under test, fewer threads leave more CPU to the server.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_seconds(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("{raw:?} is not a number of seconds in (0, 86400]")),
    }
}

fn parse_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{raw:?} is not a rate >= 0")),
    }
}

/// Counters shared by every connection.
#[derive(Default)]
struct Stats {
    connected: AtomicU64,
    connect_failed: AtomicU64,
    /// Lines in frames whose send completed (handed to the kernel).
    sent: AtomicU64,
    frames: AtomicU64,
    /// Received lines starting with `error:`.
    errors_received: AtomicU64,
    /// Other received text lines (commands, console echoes, ...).
    other_received: AtomicU64,
    pings_received: AtomicU64,
    /// The server closed (or the socket failed) before this tool started closing.
    closed_early: AtomicU64,
    /// The close handshake this tool started completed.
    closed_cleanly: AtomicU64,
    /// The connection ended after this tool started closing, but without the server's close
    /// frame (e.g. the server dropped the TCP connection).
    closed_uncleanly: AtomicU64,
    /// No close reply within `--drain-timeout`.
    drain_timeouts: AtomicU64,
    send_failed: AtomicU64,
    first_connect_error: Mutex<Option<String>>,
    first_error_line: Mutex<Option<String>>,
    first_close_reason: Mutex<Option<String>>,
    first_unclean_end: Mutex<Option<String>>,
}

fn remember(slot: &Mutex<Option<String>>, value: impl FnOnce() -> String) {
    if let Ok(mut slot) = slot.lock() {
        if slot.is_none() {
            *slot = Some(value());
        }
    }
}

fn recall(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok().and_then(|s| s.clone())
}

/// When the connections may start sending, and until when.
#[derive(Debug, Clone, Copy)]
struct Window {
    until: Instant,
}

struct Shared {
    args: Args,
    /// `--url`'s host and port, resolved once.
    addr: SocketAddr,
    stats: Stats,
    connects: Semaphore,
    connect_deadline: Instant,
    /// Ctrl-C.
    stop: CancellationToken,
    config: WebSocketConfig,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if args.threads > 1 {
            b.worker_threads(args.threads);
        }
        b
    };
    let runtime = runtime.enable_all().build()?;
    let code = runtime.block_on(run(args))?;
    drop(runtime);
    std::process::exit(code);
}

async fn run(args: Args) -> anyhow::Result<i32> {
    if !matches!(args.url.scheme(), "ws" | "tcp") {
        anyhow::bail!("--url must be a ws:// or tcp:// URL, not {}", args.url);
    }
    let host = args
        .url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("--url has no host: {}", args.url))?;
    let default_port = if args.url.scheme() == "tcp" { 5070 } else { 80 };
    let port = args.url.port_or_known_default().unwrap_or(default_port);
    let addr = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} has no address"))?;
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("iothub-load: interrupted; closing connections");
                stop.cancel();
            }
        });
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        addr,
        connects: Semaphore::new(args.connect_concurrency as usize),
        connect_deadline: started + Duration::from_secs_f64(args.connect_timeout),
        // Small buffers: thousands of connections, a few dozen bytes per line.
        config: WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0),
        stats: Stats::default(),
        stop,
        args,
    });
    let args = &shared.args;
    let stats = &shared.stats;
    let (go_tx, go_rx) = watch::channel::<Option<Window>>(None);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.connections {
        let id = args.first_id.saturating_add(u64::from(n));
        tasks.spawn(connection(id, shared.clone(), go_rx.clone()));
    }
    drop(go_rx);

    // Connect phase: until every connect has succeeded or failed (each is bounded by
    // --connect-timeout), or Ctrl-C.
    let total = u64::from(args.connections);
    loop {
        let done =
            stats.connected.load(Ordering::Relaxed) + stats.connect_failed.load(Ordering::Relaxed);
        if done >= total || shared.stop.is_cancelled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connected = stats.connected.load(Ordering::Relaxed);
    let failed = stats.connect_failed.load(Ordering::Relaxed);
    println!(
        "phase=connected connections={} connected={connected} connect_failed={failed} connect_s={:.2}",
        args.connections,
        started.elapsed().as_secs_f64()
    );
    if let Some(err) = recall(&stats.first_connect_error) {
        eprintln!("iothub-load: first connect error: {err}");
    }

    let send_start = Instant::now();
    let send_start_unix_ms = unix_ms();
    let until = send_start + Duration::from_secs_f64(args.duration);
    // Receivers may all be gone (every connect failed); that is fine.
    let _ = go_tx.send(Some(Window { until }));

    while tasks.join_next().await.is_some() {}
    let elapsed = send_start.elapsed().as_secs_f64();
    let send_s = (until.min(Instant::now()) - send_start).as_secs_f64();
    let send_end_unix_ms = send_start_unix_ms + (send_s * 1000.0) as i64;

    let sent = stats.sent.load(Ordering::Relaxed);
    let mut line = String::new();
    let _ = write!(
        line,
        "phase=done mode={} connections={} connected={connected} connect_failed={failed} batch={} rate={} \
         sent={sent} frames={} errors_received={} other_received={} pings_received={} \
         closed_early={} closed_cleanly={} closed_uncleanly={} drain_timeouts={} send_failed={} \
         send_s={send_s:.2} elapsed_s={elapsed:.2} sent_per_s={:.1} \
         send_start_unix_ms={send_start_unix_ms} send_end_unix_ms={send_end_unix_ms}",
        if args.idle { "idle" } else { "flood" },
        args.connections,
        args.batch,
        args.rate,
        stats.frames.load(Ordering::Relaxed),
        stats.errors_received.load(Ordering::Relaxed),
        stats.other_received.load(Ordering::Relaxed),
        stats.pings_received.load(Ordering::Relaxed),
        stats.closed_early.load(Ordering::Relaxed),
        stats.closed_cleanly.load(Ordering::Relaxed),
        stats.closed_uncleanly.load(Ordering::Relaxed),
        stats.drain_timeouts.load(Ordering::Relaxed),
        stats.send_failed.load(Ordering::Relaxed),
        if elapsed > 0.0 {
            sent as f64 / elapsed
        } else {
            0.0
        },
    );
    if let Some(cpu) = own_cpu_seconds() {
        let _ = write!(line, " client_cpu_s={cpu:.2}");
    }
    println!("{line}");
    if let Some(err) = recall(&stats.first_error_line) {
        eprintln!("iothub-load: first error line received: {err}");
    }
    if let Some(reason) = recall(&stats.first_close_reason) {
        eprintln!("iothub-load: first early close: {reason}");
    }
    if let Some(reason) = recall(&stats.first_unclean_end) {
        eprintln!("iothub-load: first close without the server's close frame: {reason}");
    }
    Ok(if connected == 0 {
        eprintln!("iothub-load: could not connect to {}", args.url);
        1
    } else {
        0
    })
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// User + system CPU seconds of this process, from `/proc/self/stat` (Linux only).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux platform Rust supports.
    Some((utime + stime) / 100.0)
}

/// TCP connect (with the chosen send buffer) and WebSocket handshake.
async fn open(shared: &Shared) -> Result<Socket, String> {
    let stream = connect_tcp(shared).await?;
    let (socket, _response) = tokio_tungstenite::client_async_with_config(
        shared.args.url.as_str(),
        stream,
        Some(shared.config),
    )
    .await
    .map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(socket)
}

/// A TCP connection to `--url`'s address, with the chosen send buffer.
async fn connect_tcp(shared: &Shared) -> Result<TcpStream, String> {
    let socket = if shared.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if shared.args.send_buffer > 0 {
        socket
            .set_send_buffer_size(shared.args.send_buffer)
            .map_err(|e| format!("SO_SNDBUF: {e}"))?;
    }
    let stream = socket
        .connect(shared.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", shared.addr))?;
    // Each frame goes out at once, as a device's would.
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(stream)
}

/// The next `batch` lines of device `id`, separated by `\n`.
fn fill_batch(frame: &mut String, id: u64, counter: &mut u64, batch: u32) {
    frame.clear();
    for k in 0..batch {
        *counter += 1;
        if k > 0 {
            frame.push('\n');
        }
        let temp = 20.0 + (*counter % 100) as f64 / 10.0;
        let _ = write!(frame, "{id},{counter},{temp:.1}", counter = *counter);
    }
}

/// One device over raw TCP: connect, (identify), wait for the go signal, send lines or idle,
/// then shut down its sending side and read until the server closes (it has read everything).
async fn tcp_connection(id: u64, shared: Arc<Shared>, mut go: watch::Receiver<Option<Window>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stats = &shared.stats;
    let stream = {
        let Ok(_permit) = shared.connects.acquire().await else {
            return;
        };
        match tokio::time::timeout_at(shared.connect_deadline, connect_tcp(&shared)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                remember(&stats.first_connect_error, || err);
                stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                remember(&stats.first_connect_error, || "connect timeout".into());
                stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);
    let (read, mut write) = stream.into_split();
    let drain = Duration::from_secs_f64(shared.args.drain_timeout);
    let hard_deadline = shared.connect_deadline
        + Duration::from_secs_f64(shared.args.duration)
        + drain
        + Duration::from_secs(1);
    let closing = CancellationToken::new();

    let writer = async {
        let mut counter = 0;
        let mut frame = String::new();
        if shared.args.idle
            && write
                .write_all(format!("{id},0,20.0\n").as_bytes())
                .await
                .is_ok()
        {
            stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        let window = tokio::select! {
            w = go.wait_for(Option::is_some) => w.ok().and_then(|w| *w),
            _ = shared.stop.cancelled() => None,
        };
        if let Some(window) = window {
            let hard = window.until + drain;
            while Instant::now() < window.until && !shared.stop.is_cancelled() {
                if shared.args.idle {
                    tokio::select! {
                        _ = tokio::time::sleep_until(window.until) => {}
                        _ = shared.stop.cancelled() => {}
                    }
                    break;
                }
                fill_batch(&mut frame, id, &mut counter, shared.args.batch);
                frame.push('\n');
                match tokio::time::timeout_at(hard, write.write_all(frame.as_bytes())).await {
                    Ok(Ok(())) => {
                        stats
                            .sent
                            .fetch_add(u64::from(shared.args.batch), Ordering::Relaxed);
                        stats.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        stats.send_failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
        closing.cancel();
        let _ = write.shutdown().await;
    };
    let reader = async {
        let mut lines = tokio::io::BufReader::new(read).lines();
        loop {
            match tokio::time::timeout_at(hard_deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if line.starts_with("error:") {
                        stats.errors_received.fetch_add(1, Ordering::Relaxed);
                        remember(&stats.first_error_line, || line.clone());
                    } else {
                        stats.other_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    if closing.is_cancelled() {
                        stats.closed_cleanly.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.closed_early.fetch_add(1, Ordering::Relaxed);
                        remember(&stats.first_close_reason, || "the server closed".into());
                    }
                    return;
                }
                Err(_) => {
                    stats.drain_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    };
    tokio::join!(writer, reader);
}

/// One device: connect, (identify), wait for the go signal, send or idle, close.
async fn connection(id: u64, shared: Arc<Shared>, mut go: watch::Receiver<Option<Window>>) {
    if shared.args.url.scheme() == "tcp" {
        return tcp_connection(id, shared, go).await;
    }
    let stats = &shared.stats;
    let socket = {
        let Ok(_permit) = shared.connects.acquire().await else {
            return;
        };
        let connect = open(&shared);
        let outcome = tokio::select! {
            _ = shared.stop.cancelled() => Err("interrupted".to_string()),
            r = tokio::time::timeout_at(shared.connect_deadline, connect) => match r {
                Ok(result) => result,
                Err(_) => Err("connect timeout".to_string()),
            },
        };
        match outcome {
            Ok(socket) => socket,
            Err(err) => {
                remember(&stats.first_connect_error, || err);
                stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    stats.connected.fetch_add(1, Ordering::Relaxed);

    let (mut tx, rx) = socket.split();
    let closing = CancellationToken::new();
    let gone = CancellationToken::new();
    let drain = Duration::from_secs_f64(shared.args.drain_timeout);
    // Nothing may outlive this, whatever happens.
    let hard_deadline = shared.connect_deadline
        + Duration::from_secs_f64(shared.args.duration)
        + drain
        + Duration::from_secs(1);

    let writer = async {
        let mut counter: u64 = 0;
        if shared.args.idle {
            let line = format!("{id},0,20.0");
            if tx.send(Message::Text(line.into())).await.is_ok() {
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.frames.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.send_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Wait for every connection to be up (or the run to end).
        let window = tokio::select! {
            w = go.wait_for(Option::is_some) => w.ok().and_then(|w| *w),
            _ = gone.cancelled() => None,
            _ = shared.stop.cancelled() => None,
        };
        if let Some(window) = window {
            if shared.args.idle {
                tokio::select! {
                    _ = tokio::time::sleep_until(window.until) => {}
                    _ = gone.cancelled() => {}
                    _ = shared.stop.cancelled() => {}
                }
            } else {
                send_until(&shared, id, &mut tx, &mut counter, window.until, &gone).await;
            }
        }
        if !gone.is_cancelled() {
            closing.cancel();
            let close = tokio::time::timeout(drain, tx.send(Message::Close(None)));
            if !matches!(close.await, Ok(Ok(()))) {
                // The reader notices the end of the stream or times out.
            }
        }
    };
    let reader = read_until_closed(&shared, rx, &closing, &gone, drain, hard_deadline);
    tokio::join!(writer, reader);
}

async fn send_until(
    shared: &Shared,
    id: u64,
    tx: &mut SplitSink<Socket, Message>,
    counter: &mut u64,
    until: Instant,
    gone: &CancellationToken,
) {
    let stats = &shared.stats;
    let batch = shared.args.batch;
    let mut tick = (shared.args.rate > 0.0).then(|| {
        let period = Duration::from_secs_f64(f64::from(batch) / shared.args.rate);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let mut frame = String::with_capacity(batch as usize * 24 + 1);
    // A send blocked by a server that stopped reading gives up here.
    let hard = until + Duration::from_secs_f64(shared.args.drain_timeout);
    while Instant::now() < until && !shared.stop.is_cancelled() && !gone.is_cancelled() {
        if let Some(tick) = tick.as_mut() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(until) => break,
                _ = gone.cancelled() => break,
                _ = shared.stop.cancelled() => break,
            }
        }
        fill_batch(&mut frame, id, counter, batch);
        match tokio::time::timeout_at(hard, tx.send(Message::Text(frame.as_str().into()))).await {
            Ok(Ok(())) => {
                stats.sent.fetch_add(u64::from(batch), Ordering::Relaxed);
                stats.frames.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) | Err(_) => {
                stats.send_failed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Reads (and so answers pings) until the stream ends, counting what arrives. After `closing`,
/// waits at most `drain` for the server's close reply.
async fn read_until_closed(
    shared: &Shared,
    mut rx: SplitStream<Socket>,
    closing: &CancellationToken,
    gone: &CancellationToken,
    drain: Duration,
    hard_deadline: Instant,
) {
    let stats = &shared.stats;
    let mut drain_until: Option<Instant> = None;
    let mut close_reason: Option<String> = None;
    let mut timed_out = false;
    loop {
        let limit = drain_until.unwrap_or(hard_deadline);
        let incoming = tokio::select! {
            m = rx.next() => m,
            _ = closing.cancelled(), if drain_until.is_none() => {
                let wait = if shared.stop.is_cancelled() {
                    drain.min(Duration::from_secs(2))
                } else {
                    drain
                };
                drain_until = Some(Instant::now() + wait);
                continue;
            }
            _ = tokio::time::sleep_until(limit) => {
                timed_out = true;
                break;
            }
        };
        match incoming {
            Some(Ok(Message::Text(text))) => {
                for line in text.lines() {
                    if line.starts_with("error:") {
                        stats.errors_received.fetch_add(1, Ordering::Relaxed);
                        remember(&stats.first_error_line, || line.to_string());
                    } else {
                        stats.other_received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Ok(Message::Ping(_))) => {
                stats.pings_received.fetch_add(1, Ordering::Relaxed);
            }
            Some(Ok(Message::Close(frame))) => {
                close_reason = Some(match frame {
                    Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                    None => "close without a code".into(),
                });
                // tungstenite replies itself; the stream ends next.
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                close_reason.get_or_insert_with(|| format!("socket error: {err}"));
                break;
            }
            None => break,
        }
    }
    let got_close = close_reason
        .as_deref()
        .is_some_and(|r| r.starts_with("close"));
    if timed_out {
        stats.drain_timeouts.fetch_add(1, Ordering::Relaxed);
    } else if closing.is_cancelled() {
        if got_close {
            stats.closed_cleanly.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.closed_uncleanly.fetch_add(1, Ordering::Relaxed);
            remember(&stats.first_unclean_end, || {
                close_reason.unwrap_or_else(|| "stream ended without a close frame".into())
            });
        }
    } else {
        stats.closed_early.fetch_add(1, Ordering::Relaxed);
        remember(&stats.first_close_reason, || {
            close_reason.unwrap_or_else(|| "connection ended".into())
        });
    }
    gone.cancel();
}
