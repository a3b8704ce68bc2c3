//! `iothub-bench-store`: a storage benchmark for both back ends (SQLite, PostgreSQL), run by
//! `scripts/bench-store.sh`.
//!
//! For each back end, on a fresh database:
//!
//! 1. **Ingest**: `--devices` devices each send one reading per second with `--fields` values,
//!    interleaved in time order like real ingest, timestamps ending now; `--rows` value rows in
//!    all. Every reading goes through the store (the store's batching writer, flushing
//!    every 250 ms or 100,000 values like the server's defaults) in batches of one second of the
//!    plan (a reading of every device, as [`Store::append_batch`] gets them from the devices'
//!    frames), then [`Store::close`] flushes the rest. Stored readings/s = readings the database holds afterwards ([`Store::count_readings`]
//!    on a reopened store) / time from the first append until `close()` returned.
//! 2. **History query**: the dashboard's chart query, [`Store::series`] over the last 24 h of one
//!    device with 1000 points, `--repeat` times (every run and the median are printed), then the
//!    same through the real HTTP server function (`device_series`, a server started in this
//!    process on 127.0.0.1:0 over the same database). The query plan is printed too.
//! 3. **CSV export**: one device's full history streamed through [`Store::export`], each reading
//!    formatted as a plain `time,value,value` line; readings/s and MB/s of CSV text.
//! 4. **1-year window**: `--year-devices` more devices with a reading every `--year-interval-s`
//!    over the last 365 days, then the chart query over one device's year (1000 points, read
//!    from the hourly rollup plus the raw ragged ends), `--repeat` times.
//!
//! The SQLite database lives in a temporary folder that is deleted afterwards; the PostgreSQL
//! database is created on the server of `--database-url` (a role that may create databases) and
//! dropped afterwards. Progress goes to stderr, results to stdout.

use anyhow::{bail, Context};
use app::model::{FieldValue, HistoryWindow, Name, Reading};
use chrono::Utc;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use leptos::server_fn::ServerFn;
use server::config::ServeArgs;
use server::startup::Application;
use server::storage::{self, Database, Store, StoreConfig};
use sqlx::{Connection, Executor, Row as _};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const YEAR_MS: i64 = 365 * DAY_MS;
/// Points per series the dashboard asks for.
const MAX_POINTS: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "iothub-bench-store",
    version,
    about = "Storage benchmark: ingest through the batching writer, 24 h history query, CSV export"
)]
struct Args {
    /// Which back end(s) to measure.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    backend: BackendChoice,
    /// Value rows to load (one row per field of a reading).
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    rows: u64,
    /// Devices sending, one reading per second each.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: u32,
    /// Values per reading.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    fields: u32,
    /// Repetitions of the history query (store and HTTP each).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Repetitions of the full-history CSV export.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    export_repeat: u32,
    /// PostgreSQL server for the benchmark database: a URL whose role may create databases.
    #[arg(long, env = "IOTHUB_TEST_POSTGRES_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The writer's flush interval (ms); the server's default is 250.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    flush_interval_ms: u64,
    /// The writer flushes as soon as this many values wait; the server's default is 100,000.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    flush_rows: u32,
    /// Skip the history query through the HTTP server function.
    #[arg(long)]
    no_http: bool,
    /// Devices with a year of readings, for the 1-year window (read from the hourly rollup);
    /// 0 leaves that part out.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    year_devices: u32,
    /// Seconds between two readings of a year device. The hourly rollup holds one row per
    /// field and hour whatever the rate, so this sets the load time, not the query's work.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    year_interval_s: u32,
}

/// The synthetic data set.
#[derive(Debug, Clone)]
struct Plan {
    devices: u32,
    field_names: Vec<Name>,
    /// Readings per device, one per second.
    per_device: u64,
    /// Receive time of the first reading of device 0.
    start_ms: i64,
}

impl Plan {
    fn new(args: &Args) -> anyhow::Result<Plan> {
        let per_device = args.rows / (u64::from(args.devices) * u64::from(args.fields));
        if per_device == 0 {
            bail!(
                "--rows {} is fewer than one reading per device ({} devices x {} fields)",
                args.rows,
                args.devices,
                args.fields
            );
        }
        const NAMES: [&str; 4] = ["temp", "hum", "pressure", "co2"];
        let field_names = (0..args.fields as usize)
            .map(|i| {
                NAMES
                    .get(i)
                    .map_or_else(|| format!("f{}", i + 1), |s| s.to_string())
                    .into()
            })
            .collect();
        // Whole seconds, ending just before now.
        let now_s = server::now_ms() / 1000;
        let start_ms = (now_s - per_device as i64) * 1000;
        Ok(Plan {
            devices: args.devices,
            field_names,
            per_device,
            start_ms,
        })
    }

    fn readings(&self) -> u64 {
        self.per_device * u64::from(self.devices)
    }

    fn rows(&self) -> u64 {
        self.readings() * self.field_names.len() as u64
    }

    /// Just after the last reading.
    fn end_ms(&self) -> i64 {
        self.start_ms + self.per_device as i64 * 1000
    }

    fn device_id(d: u32) -> String {
        format!("dev-{d:03}")
    }

    /// Devices within one second are spread evenly over it, like independent senders.
    fn received_ms(&self, t: u64, d: u32) -> i64 {
        self.start_ms + t as i64 * 1000 + i64::from(d) * 1000 / i64::from(self.devices)
    }

    /// The device whose history is queried and exported: one in the middle.
    fn probe_device(&self) -> String {
        Plan::device_id(self.devices / 2)
    }
}

/// What one back end measured.
struct Report {
    backend: &'static str,
    version: String,
    load: Duration,
    sent_readings: u64,
    stored_readings: u64,
    stored_rows: u64,
    count_time: Duration,
    db_bytes: u64,
    series: Vec<SeriesRun>,
    http: Result<Vec<HttpRun>, String>,
    export: Vec<ExportRun>,
    /// The 1-year window's runs; empty with `--year-devices 0`.
    year: Vec<SeriesRun>,
}

struct SeriesRun {
    elapsed: Duration,
    points: usize,
    /// Sum of the per-bucket counts over all fields: the value rows the query aggregated.
    rows: u64,
}

struct HttpRun {
    elapsed: Duration,
    body_bytes: usize,
    points: usize,
    rows: u64,
}

struct ExportRun {
    elapsed: Duration,
    readings: u64,
    values: u64,
    bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::new(&args)?;
    let started = Instant::now();
    let want_sqlite = matches!(args.backend, BackendChoice::Sqlite | BackendChoice::Both);
    let want_postgres = matches!(args.backend, BackendChoice::Postgres | BackendChoice::Both);
    if want_postgres && args.database_url.is_none() {
        bail!("PostgreSQL needs --database-url or IOTHUB_TEST_POSTGRES_URL (scripts/postgres-for-tests.sh prints one)");
    }

    print_conditions(&args, &plan);
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    if want_sqlite {
        match bench_sqlite(&args, &plan).await {
            Ok(report) => reports.push(report),
            Err(err) => {
                println!("\nSQLite FAILED: {err:#}");
                failures.push("SQLite");
            }
        }
    }
    if want_postgres {
        let admin_url = args.database_url.clone().unwrap_or_default();
        match bench_postgres(&args, &plan, &admin_url).await {
            Ok(report) => reports.push(report),
            Err(err) => {
                println!("\nPostgreSQL FAILED: {err:#}");
                failures.push("PostgreSQL");
            }
        }
    }
    print_summary(&plan, &reports);
    println!("\ntotal run time: {:.1} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        bail!("failed: {}", failures.join(", "));
    }
    Ok(())
}

fn print_conditions(args: &Args, plan: &Plan) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(|| "?".into(), |kib| format!("{:.1}", kib / 1_048_576.0));
    let per_device_h = plan.per_device as f64 / 3600.0;
    let window_readings = plan.per_device.min(86_400);
    println!("== iothub-bench-store: conditions");
    println!("date:       {}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"));
    println!(
        "host:       nproc={}, {cpu}, {mem_gib} GiB RAM, load avg {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_avg()
    );
    println!(
        "data:       rows={} (asked {}), devices={}, fields={} ({}), {} readings/device at 1/s = {:.1} h each, {} readings in all",
        plan.rows(),
        args.rows,
        plan.devices,
        plan.field_names.len(),
        plan.field_names.iter().map(|f| &**f).collect::<Vec<_>>().join(","),
        plan.per_device,
        per_device_h,
        plan.readings()
    );
    println!(
        "writer:     Store::append_batch, flush_interval={} ms, flush_rows={} values; then close()",
        args.flush_interval_ms, args.flush_rows
    );
    println!(
        "query:      Store::series({}, now-24h, now, {MAX_POINTS}) over {} readings = {} value rows of that device; {} runs",
        plan.probe_device(),
        window_readings,
        window_readings * plan.field_names.len() as u64,
        args.repeat
    );
    println!(
        "export:     Store::export({}, full history = {} readings), one `time,values` CSV line per reading; {} runs",
        plan.probe_device(),
        plan.per_device,
        args.export_repeat
    );
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ------------------------------------------------------------------------------------------
// Back ends

async fn bench_sqlite(args: &Args, plan: &Plan) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(format!(
        "iothub-bench-store.{}.{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = bench_sqlite_in(args, plan, &dir).await;
    if let Err(err) = std::fs::remove_dir_all(&dir) {
        eprintln!("could not delete {}: {err}", dir.display());
    }
    result
}

async fn bench_sqlite_in(args: &Args, plan: &Plan, dir: &Path) -> anyhow::Result<Report> {
    let path = dir.join("bench.db");
    println!("\n== SQLite ({})", path.display());
    let database = Database::Sqlite(path.clone());
    let mut report = bench_backend(
        args,
        plan,
        "SQLite",
        database,
        format!("sqlite://{}", path.display()),
    )
    .await?;
    let mut conn = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true),
    )
    .await?;
    report.version = format!(
        "SQLite {}",
        sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await?
    );
    conn.close().await?;
    Ok(report)
}

async fn bench_postgres(args: &Args, plan: &Plan, admin_url: &str) -> anyhow::Result<Report> {
    let name = format!("iothub_bench_{:016x}", fastrand::u64(..));
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .context("connecting to --database-url")?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .context("creating the benchmark database")?;
    let mut url = url::Url::parse(admin_url).context("--database-url")?;
    url.set_path(&name);
    println!("\n== PostgreSQL (database {name}, dropped afterwards)");
    let result = async {
        let mut report = bench_backend(
            args,
            plan,
            "PostgreSQL",
            Database::Postgres(url.to_string()),
            url.to_string(),
        )
        .await?;
        let mut conn = sqlx::PgConnection::connect(url.as_str()).await?;
        report.version = format!(
            "PostgreSQL {}",
            sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&mut conn)
                .await?
        );
        conn.close().await?;
        anyhow::Ok(report)
    }
    .await;
    drop_database(&mut admin, &name).await;
    let _ = admin.close().await;
    result
}

/// `DROP DATABASE … WITH (FORCE)`, retried for up to 60 s: an autovacuum worker still busy with
/// the freshly loaded table belongs to the superuser, and a role without `pg_signal_backend`
/// may not terminate it, so the drop fails until the worker is done.
async fn drop_database(admin: &mut sqlx::PgConnection, name: &str) {
    const ATTEMPTS: u32 = 60;
    for attempt in 1..=ATTEMPTS {
        match admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
        {
            Ok(_) => return,
            Err(err) if attempt == ATTEMPTS => {
                eprintln!("could not drop the database {name}: {err}; drop it by hand (DROP DATABASE {name})");
            }
            Err(err) => {
                if attempt == 1 {
                    eprintln!("dropping the database {name} failed ({err}); retrying for up to {ATTEMPTS} s");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Load, count, query, export, on one empty database.
async fn bench_backend(
    args: &Args,
    plan: &Plan,
    backend: &'static str,
    database: Database,
    url: String,
) -> anyhow::Result<Report> {
    let config = StoreConfig {
        database,
        flush_interval: Duration::from_millis(args.flush_interval_ms),
        flush_rows: args.flush_rows as usize,
    };

    // 1. Ingest.
    let store = Store::open(config.clone()).await?;
    let (sent_readings, load) = load(&store, plan).await?;
    let stored_rows_sent = sent_readings * plan.field_names.len() as u64;
    println!(
        "ingest: sent {sent_readings} readings ({stored_rows_sent} value rows) in {:.2} s (first append to close() returned)",
        load.as_secs_f64()
    );

    // Reopen, like a restarted server.
    let store = Store::open(config.clone()).await?;
    let counted = Instant::now();
    let stored_readings = store.count_readings().await?;
    let count_time = counted.elapsed();
    // Every reading holds every field of the plan: value rows in the old layout's terms.
    let stored_rows = stored_readings * plan.field_names.len() as u64;
    let db_bytes = database_bytes(&url).await?;
    println!(
        "stored: {stored_readings} readings, {stored_rows} value rows (count_readings() took {:.2} s); database size {:.0} MB",
        count_time.as_secs_f64(),
        db_bytes as f64 / 1e6
    );
    println!(
        "        => {:.0} readings/s stored, {:.0} value rows/s",
        stored_readings as f64 / load.as_secs_f64(),
        stored_rows as f64 / load.as_secs_f64()
    );
    if stored_readings != sent_readings {
        println!(
            "        ! {} readings sent but {} stored",
            sent_readings, stored_readings
        );
    }
    print_stats_state(&url).await;

    // 2. History query.
    let device = plan.probe_device();
    let to_ms = plan.end_ms();
    let from_ms = to_ms - DAY_MS;
    print_plan(&url, &device, from_ms, to_ms).await;
    println!("history query: Store::series({device}, {from_ms}, {to_ms}, {MAX_POINTS})");
    let series = time_series(&store, &device, from_ms, to_ms, args.repeat).await?;

    let http = if args.no_http {
        Err("skipped (--no-http)".to_string())
    } else {
        match http_series(args, &url, &device, from_ms, to_ms).await {
            Ok(runs) => Ok(runs),
            Err(err) => {
                println!("  HTTP: failed: {err:#}");
                Err(format!("{err:#}"))
            }
        }
    };

    // 3. CSV export.
    println!(
        "CSV export: Store::export({device}, full history = {} readings)",
        plan.per_device
    );
    let mut export = Vec::new();
    for run in 1..=args.export_repeat {
        let r = export_csv(&store, &device, plan.start_ms, to_ms).await?;
        println!(
            "  run {run}: {:>8.2} s  {} readings, {} values, {:.1} MB CSV  => {:.0} readings/s, {:.1} MB/s",
            r.elapsed.as_secs_f64(),
            r.readings,
            r.values,
            r.bytes as f64 / 1e6,
            r.readings as f64 / r.elapsed.as_secs_f64(),
            r.bytes as f64 / 1e6 / r.elapsed.as_secs_f64()
        );
        export.push(r);
    }
    let med = median(export.iter().map(|r| r.elapsed));
    if let Some(first) = export.first() {
        println!(
            "  median: {:.2} s => {:.0} readings/s, {:.1} MB/s",
            med.as_secs_f64(),
            first.readings as f64 / med.as_secs_f64(),
            first.bytes as f64 / 1e6 / med.as_secs_f64()
        );
    }
    store.close().await;

    // 4. A year of readings, and the 1-year window over it (read from the hourly rollup).
    let year = if args.year_devices == 0 {
        Vec::new()
    } else {
        year_window(args, plan, config).await?
    };

    Ok(Report {
        backend,
        version: String::new(),
        load,
        sent_readings,
        stored_readings,
        stored_rows,
        count_time,
        db_bytes,
        series,
        http,
        export,
        year,
    })
}

/// Loads a year for `--year-devices` devices into the store, then times the dashboard's chart
/// query over one device's last 365 days (`--repeat` runs).
async fn year_window(
    args: &Args,
    plan: &Plan,
    config: StoreConfig,
) -> anyhow::Result<Vec<SeriesRun>> {
    let store = Store::open(config.clone()).await?;
    let began = Instant::now();
    let sent = load_year(&store, args, &plan.field_names).await?;
    store.close().await;
    println!(
        "1-year data: {sent} readings of {} devices, one every {} s for 365 days, stored in {:.2} s",
        args.year_devices,
        args.year_interval_s,
        began.elapsed().as_secs_f64()
    );
    let store = Store::open(config).await?;
    let device = year_device(args.year_devices / 2);
    let to_ms = server::now_ms();
    let from_ms = to_ms - YEAR_MS;
    println!("1-year window: Store::series({device}, {from_ms}, {to_ms}, {MAX_POINTS})");
    let runs = time_series(&store, &device, from_ms, to_ms, args.repeat).await?;
    store.close().await;
    Ok(runs)
}

/// Runs the dashboard's chart query `repeat` times, printing every run and the median.
async fn time_series(
    store: &Store,
    device: &str,
    from_ms: i64,
    to_ms: i64,
    repeat: u32,
) -> anyhow::Result<Vec<SeriesRun>> {
    let mut runs = Vec::new();
    for run in 1..=repeat {
        let began = Instant::now();
        let window = store.series(device, from_ms, to_ms, MAX_POINTS).await?;
        let elapsed = began.elapsed();
        let (points, rows) = window_size(&window);
        println!(
            "  run {run}: {:>9.1} ms  ({} series, {points} points, {rows} value rows aggregated, level {} ms)",
            ms(elapsed),
            window.series.len(),
            window.level_ms
        );
        runs.push(SeriesRun {
            elapsed,
            points,
            rows,
        });
    }
    println!(
        "  median: {:.1} ms",
        ms(median(runs.iter().map(|r| r.elapsed)))
    );
    Ok(runs)
}

/// Appends every reading of the plan in time order, one batch per second of the plan (one
/// reading of each device, like one frame from each of them); returns readings sent and the time
/// from the first append until `close()` returned.
async fn load(store: &Store, plan: &Plan) -> anyhow::Result<(u64, Duration)> {
    let devices: Vec<Name> = (0..plan.devices)
        .map(|d| Plan::device_id(d).into())
        .collect();
    let total = plan.readings();
    let mut sent = 0u64;
    let mut next_report = total / 10;
    let mut rng = fastrand::Rng::with_seed(7);
    let began = Instant::now();
    for t in 0..plan.per_device {
        // A slow daily wave plus noise, different per field.
        let phase = (t as f64 / 86_400.0) * std::f64::consts::TAU;
        let mut batch = Vec::with_capacity(devices.len());
        for (d, device_id) in devices.iter().enumerate() {
            let values = plan
                .field_names
                .iter()
                .enumerate()
                .map(|(f, field)| FieldValue {
                    field: field.clone(),
                    value: 20.0 * (f as f64 + 1.0) + 5.0 * (phase + d as f64).sin() + rng.f64()
                        - 0.5,
                })
                .collect();
            sent += 1;
            batch.push(Arc::new(Reading {
                seq: sent,
                device_id: device_id.clone(),
                received_ms: plan.received_ms(t, d as u32),
                device_ms: None,
                values,
            }));
        }
        store.append_batch(batch).await?;
        if sent >= next_report {
            let secs = began.elapsed().as_secs_f64();
            eprintln!(
                "  ingest: {:>3}% {sent}/{total} readings appended, {secs:.1} s, {:.0} readings/s",
                sent * 100 / total,
                sent as f64 / secs
            );
            next_report += total / 10;
        }
    }
    let appended = began.elapsed();
    store.close().await;
    let elapsed = began.elapsed();
    eprintln!(
        "  ingest: all appended after {:.2} s; close() (final flush) returned after {:.2} s",
        appended.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    Ok((sent, elapsed))
}

/// A year of `--year-devices` devices, one reading every `--year-interval-s` seconds each, ending
/// now, appended a time step at a time (the devices are named `year-NNN`, apart from the plan's).
/// Returns the readings appended.
async fn load_year(store: &Store, args: &Args, fields: &[Name]) -> anyhow::Result<u64> {
    let devices: Vec<Name> = (0..args.year_devices)
        .map(|d| year_device(d).into())
        .collect();
    let step_ms = i64::from(args.year_interval_s) * 1000;
    let end_ms = server::now_ms();
    let start_ms = end_ms - YEAR_MS;
    let mut rng = fastrand::Rng::with_seed(11);
    let mut sent = 0u64;
    let mut t_ms = start_ms;
    while t_ms < end_ms {
        let batch = devices
            .iter()
            .enumerate()
            .map(|(d, device_id)| {
                sent += 1;
                Arc::new(Reading {
                    seq: sent,
                    device_id: device_id.clone(),
                    received_ms: t_ms + d as i64,
                    device_ms: None,
                    values: fields
                        .iter()
                        .map(|field| FieldValue {
                            field: field.clone(),
                            value: 15.0 + 10.0 * rng.f64(),
                        })
                        .collect(),
                })
            })
            .collect();
        store.append_batch(batch).await?;
        t_ms += step_ms;
    }
    Ok(sent)
}

fn year_device(d: u32) -> String {
    format!("year-{d:03}")
}

fn window_size(window: &HistoryWindow) -> (usize, u64) {
    let points = window.series.iter().map(|s| s.points.len()).sum();
    let rows = window
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .map(|p| p.count)
        .sum();
    (points, rows)
}

async fn export_csv(
    store: &Store,
    device: &str,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<ExportRun> {
    let began = Instant::now();
    // What `GET /export/{device}` does, without the HTTP: the same query and the same rows.
    let fields = store.fields(device, from_ms, to_ms).await?;
    let mut stream = store.export(device, from_ms, to_ms);
    let mut out = server::export::csv_writer_into(ByteCount(0));
    let (mut readings, mut values) = (0u64, 0u64);
    while let Some(reading) = stream.next().await {
        let reading = reading?;
        server::export::write_reading(&mut out, &fields, &reading)?;
        readings += 1;
        values += reading.values.len() as u64;
    }
    let bytes = out.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?.0;
    Ok(ExportRun {
        elapsed: began.elapsed(),
        readings,
        values,
        bytes,
    })
}

/// Counts the bytes of the CSV text instead of keeping them.
struct ByteCount(u64);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Direct SQL, for numbers the store does not expose (row counts, sizes, query plans).

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn sqlite_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url))
}

/// The database's size on disk, in bytes.
async fn database_bytes(url: &str) -> anyhow::Result<u64> {
    if is_postgres(url) {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(bytes as u64)
    } else {
        let path = sqlite_path(url);
        let mut bytes = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            bytes += std::fs::metadata(&p).map_or(0, |m| m.len());
        }
        Ok(bytes)
    }
}

/// PostgreSQL: whether autovacuum/autoanalyze has seen the table yet (it decides between plans).
async fn print_stats_state(url: &str) {
    if !is_postgres(url) {
        return;
    }
    let result = async {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let row = sqlx::query(
            "SELECT COALESCE(last_autovacuum::text, 'never'), COALESCE(last_autoanalyze::text, 'never'),
                    n_live_tup, n_dead_tup
               FROM pg_stat_user_tables WHERE relname = 'readings'",
        )
        .fetch_one(&mut conn)
        .await?;
        let visible: Option<f64> = sqlx::query_scalar(
            "SELECT CASE WHEN relpages > 0 THEN relallvisible::float8 / relpages END
               FROM pg_class WHERE relname = 'readings'",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        anyhow::Ok(format!(
            "last autovacuum {}, last autoanalyze {}, n_live_tup {}, n_dead_tup {}, all-visible pages {}",
            row.get::<String, _>(0),
            row.get::<String, _>(1),
            row.get::<i64, _>(2),
            row.get::<i64, _>(3),
            visible.map_or_else(|| "?".into(), |v| format!("{:.0}%", v * 100.0))
        ))
    }
    .await;
    match result {
        Ok(line) => println!("table state: {line}"),
        Err(err) => println!("table state: unavailable ({err:#})"),
    }
}

/// The plan of the history query's rollup part (the SQL of `storage/readings.rs`).
async fn print_plan(url: &str, device: &str, from_ms: i64, to_ms: i64) {
    // A 24 h window in 1000 points has buckets of more than a minute: the store reads the
    // per-minute rollups for the whole minutes (and raw readings for the ragged ends).
    let (bucket_ms, Some(level)) = storage::chart_bucket(from_ms, to_ms, MAX_POINTS) else {
        println!("query plan: none (this window reads raw readings only)");
        return;
    };
    let (inner_from, inner_to) = (
        storage::rollup::align_up(from_ms, level),
        storage::rollup::bucket_start(to_ms, level),
    );
    let result = async {
        let mut out = String::new();
        if is_postgres(url) {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            let key: i64 = sqlx::query_scalar(storage::DEVICE_KEY_SQL)
                .bind(device)
                .fetch_one(&mut conn)
                .await?;
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "EXPLAIN (ANALYZE, BUFFERS) {}",
                storage::ROLLUP_WINDOW_SQL
            ))
            .bind(key)
            .bind(level)
            .bind(inner_from)
            .bind(inner_to)
            .bind(from_ms)
            .bind(bucket_ms)
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            for row in rows {
                let _ = writeln!(out, "    {row}");
            }
        } else {
            let mut conn = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(sqlite_path(url))
                    .read_only(true),
            )
            .await?;
            let key: i64 = sqlx::query_scalar(storage::DEVICE_KEY_SQL)
                .bind(device)
                .fetch_one(&mut conn)
                .await?;
            let rows = sqlx::query(&format!(
                "EXPLAIN QUERY PLAN {}",
                storage::ROLLUP_WINDOW_SQL
            ))
            .bind(key)
            .bind(level)
            .bind(inner_from)
            .bind(inner_to)
            .bind(from_ms)
            .bind(bucket_ms)
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            for row in rows {
                let _ = writeln!(out, "    {}", row.try_get::<String, _>("detail")?);
            }
        }
        anyhow::Ok(out)
    }
    .await;
    match result {
        Ok(plan) => print!(
            "query plan ({}):\n{plan}",
            if is_postgres(url) {
                "EXPLAIN ANALYZE, BUFFERS"
            } else {
                "EXPLAIN QUERY PLAN"
            }
        ),
        Err(err) => println!("query plan: unavailable ({err:#})"),
    }
}

// ------------------------------------------------------------------------------------------
// The same query through the real server: `device_series`, POSTed like the browser does.

/// The first user's password on the throwaway server the HTTP measurement starts.
const BENCH_PASSWORD: &str = "bench-store password";

async fn http_series(
    args: &Args,
    url: &str,
    device: &str,
    from_ms: i64,
    to_ms: i64,
) -> anyhow::Result<Vec<HttpRun>> {
    let data_dir = std::env::temp_dir().join(format!(
        "iothub-bench-store-http.{}.{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let mut serve = ServeArgs::defaults();
    serve.http.bind = "127.0.0.1:0".parse()?;
    serve.store.data_dir = data_dir.clone();
    serve.http.site_root = data_dir.join("no-site");
    serve.store.database_url = Some(url.to_string());
    serve.accounts.admin_password = Some(BENCH_PASSWORD.into());
    let result = async {
        let app = Application::build(serve).await?;
        let addr = app.local_addr();
        let stop = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        let base: url::Url = format!("http://{addr}/").parse()?;
        let cookie = server::client::sign_in(&base, "admin", BENCH_PASSWORD).await?;
        let path = app::api::DeviceSeries::PATH;
        println!("history query over HTTP: POST http://{addr}{path} (device_series server function, same database)");
        let body = format!(
            "device_id={device}&from_ms={from_ms}&to_ms={to_ms}&max_points={MAX_POINTS}"
        );
        let http = reqwest::Client::new();
        let url = base.join(path)?;
        let mut runs = Vec::new();
        let mut failure = None;
        for run in 1..=args.repeat {
            let began = Instant::now();
            let response = post_form(&http, &url, &body, &cookie).await;
            let elapsed = began.elapsed();
            let (status, bytes) = match response {
                Ok(r) => r,
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            };
            if status != 200 {
                failure = Some(anyhow::anyhow!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
                ));
                break;
            }
            let window: HistoryWindow = match serde_json::from_slice(&bytes) {
                Ok(window) => window,
                Err(err) => {
                    failure = Some(anyhow::anyhow!("the response is not a HistoryWindow: {err}"));
                    break;
                }
            };
            let (points, rows) = window_size(&window);
            println!(
                "  run {run}: {:>9.1} ms  (HTTP 200, {} bytes JSON, {points} points, {rows} value rows aggregated)",
                ms(elapsed),
                bytes.len()
            );
            runs.push(HttpRun {
                elapsed,
                body_bytes: bytes.len(),
                points,
                rows,
            });
        }
        stop.cancel();
        match tokio::time::timeout(Duration::from_secs(30), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => eprintln!("the HTTP server stopped with an error: {err}"),
            Ok(Err(err)) => eprintln!("the HTTP server task failed: {err}"),
            Err(_) => eprintln!("the HTTP server did not stop within 30 s"),
        }
        if let Some(err) = failure {
            return Err(err);
        }
        println!(
            "  median: {:.1} ms",
            ms(median(runs.iter().map(|r| r.elapsed)))
        );
        anyhow::Ok(runs)
    }
    .await;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// One form-encoded POST, as the browser sends a server function call; returns the status and
/// the body.
async fn post_form(
    http: &reqwest::Client,
    url: &url::Url,
    body: &str,
    cookie: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let response = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::COOKIE, cookie)
        .header(reqwest::header::ORIGIN, url.origin().ascii_serialization())
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

// ------------------------------------------------------------------------------------------
// Output

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: impl Iterator<Item = Duration>) -> Duration {
    let mut v: Vec<Duration> = values.collect();
    v.sort_unstable();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

fn print_summary(plan: &Plan, reports: &[Report]) {
    if reports.is_empty() {
        return;
    }
    println!(
        "\n== summary ({} value rows, {} devices x {} fields, nproc={}, {}, load avg now {})",
        plan.rows(),
        plan.devices,
        plan.field_names.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        load_avg()
    );
    let head = format!(
        "{:<11} {:>10} {:>8} {:>11} {:>10} {:>7} {:>10} {:>10} {:>10} {:>11} {:>8} {:>10}",
        "back end",
        "stored",
        "load s",
        "readings/s",
        "rows/s",
        "DB MB",
        "q24h med",
        "http med",
        "export s",
        "export r/s",
        "MB/s",
        "q1y med"
    );
    println!("{head}");
    for r in reports {
        let load = r.load.as_secs_f64();
        let q = ms(median(r.series.iter().map(|s| s.elapsed)));
        let http = match &r.http {
            Ok(runs) if !runs.is_empty() => {
                format!("{:.1} ms", ms(median(runs.iter().map(|h| h.elapsed))))
            }
            _ => "-".into(),
        };
        let e = median(r.export.iter().map(|x| x.elapsed)).as_secs_f64();
        let (er, eb) = r
            .export
            .first()
            .map_or((0.0, 0.0), |x| (x.readings as f64, x.bytes as f64));
        let year = if r.year.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1} ms", ms(median(r.year.iter().map(|s| s.elapsed))))
        };
        println!(
            "{:<11} {:>10} {:>8.1} {:>11.0} {:>10.0} {:>7.0} {:>10} {:>10} {:>10.2} {:>11.0} {:>8.1} {:>10}",
            r.backend,
            r.stored_readings,
            load,
            r.stored_readings as f64 / load,
            r.stored_rows as f64 / load,
            r.db_bytes as f64 / 1e6,
            format!("{q:.1} ms"),
            http,
            e,
            er / e,
            eb / 1e6 / e,
            year
        );
    }
    for r in reports {
        let runs: Vec<String> = r
            .series
            .iter()
            .map(|s| format!("{:.1}", ms(s.elapsed)))
            .collect();
        println!(
            "{} ({}): sent {} readings, stored {} readings / {} rows; count_readings() {:.2} s",
            r.backend,
            r.version,
            r.sent_readings,
            r.stored_readings,
            r.stored_rows,
            r.count_time.as_secs_f64()
        );
        if let Some(s) = r.series.first() {
            println!(
                "  q24h runs (ms): {}  [{} points, {} rows aggregated each]",
                runs.join(" "),
                s.points,
                s.rows
            );
        }
        match &r.http {
            Ok(h) => {
                let runs: Vec<String> = h.iter().map(|x| format!("{:.1}", ms(x.elapsed))).collect();
                if let Some(first) = h.first() {
                    println!(
                        "  http runs (ms): {}  [{} bytes JSON, {} points, {} rows]",
                        runs.join(" "),
                        first.body_bytes,
                        first.points,
                        first.rows
                    );
                }
            }
            Err(err) => println!("  http: {err}"),
        }
        let runs: Vec<String> = r
            .export
            .iter()
            .map(|x| format!("{:.2}", x.elapsed.as_secs_f64()))
            .collect();
        if let Some(x) = r.export.first() {
            println!(
                "  export runs (s): {}  [{} readings, {} values, {:.1} MB CSV each]",
                runs.join(" "),
                x.readings,
                x.values,
                x.bytes as f64 / 1e6
            );
        }
    }
}
