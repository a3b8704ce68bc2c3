use anyhow::Context;
use clap::Parser;
use server::config::{Cli, Command, LogFormat};
use server::startup::Application;
use server::{config_file, simulator};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the C library's malloc: see the note in the workspace Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // The config file becomes environment variables before anything else runs (setting the
    // environment is only sound while the process has one thread).
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = config_file::path_from(&args) {
        for (name, value) in config_file::settings(&path, |name| std::env::var_os(name).is_some())?
        {
            std::env::set_var(name, value);
        }
    }
    let mut cli = Cli::parse();
    // Alarm rules are tables, not flags: taken from the file here, for `serve`.
    if let Some(path) = config_file::path_from(&args) {
        let rules = config_file::alarm_rules(&path)?;
        if let Some(Command::Serve(serve)) = cli.command.as_mut() {
            serve.alarm_rules = rules.clone();
        }
        cli.serve.alarm_rules = rules;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Logs go to stderr: stdout is for what a command prints (`iothub token create`).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        // Colour codes only for a person at a terminal, not for log files and journald.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }

    match cli.into_command() {
        Command::Serve(args) if args.print_config => println!("{}", args.printable()),
        Command::Serve(args) => {
            let app = Application::build(args)
                .await
                .context("cannot start the hub")?;
            stop_on_signal(app.shutdown_token());
            app.run_until_stopped().await.context("the server failed")?;
        }
        Command::User(command) => server::admin::user(command).await?,
        Command::Token(command) => server::admin::token(command).await?,
        Command::ApiToken(command) => server::admin::api_token(command).await?,
        Command::Device(command) => server::admin::device(command).await?,
        Command::Backup { destination, store } => {
            server::admin::backup(&destination, &store).await?
        }
        Command::Simulate(args) => {
            let stop = CancellationToken::new();
            stop_on_signal(stop.clone());
            simulator::run(args, stop).await;
        }
    }
    Ok(())
}

/// Cancels `token` on Ctrl-C or SIGTERM (what `systemctl stop` and `docker stop` send).
fn stop_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}
