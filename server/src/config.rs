//! Command-line configuration. Every flag falls back to an `IOTHUB_*` environment variable.

use crate::devices::mqtt::MqttArgs;
use crate::devices::serial::SerialArgs;
use crate::devices::tcp::TcpArgs;
use crate::devices::DeviceArgs;
use crate::simulator::SimulatorArgs;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "iothub",
    version,
    about = "Self-hosted IoT device hub with a live web dashboard",
    args_conflicts_with_subcommands = true,
    // A later flag wins, so wrappers (scripts/start.sh) can set defaults a person overrides.
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Running `iothub` with no subcommand is `iothub serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// A TOML file with settings named like the flags (`bind = "0.0.0.0:3000"`); flags and
    /// environment variables override it.
    #[arg(long, global = true, env = "IOTHUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines as text (for people) or JSON (one object per line, for log collectors).
    #[arg(long, global = true, env = "IOTHUB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once at start-up: the size of the biggest variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: dashboard and device endpoints (the default).
    Serve(ServeArgs),
    /// Run simulated devices against a hub (or anything speaking the CSV line protocol).
    Simulate(SimulatorArgs),
    /// Manage the people who may sign in to the dashboard.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage device tokens (what lets a device connect).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage API tokens (what lets a program use the REST API as a user).
    #[command(subcommand)]
    ApiToken(ApiTokenCommand),
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Copy the SQLite store to a new file, complete and consistent, while the hub runs.
    Backup {
        /// The copy to make (must not exist yet).
        destination: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from standard input (asked for at a terminal).
    Add {
        name: String,
        /// What they may do: viewer (sees), operator (also sends commands), admin (also users,
        /// tokens, removing devices).
        #[arg(long, default_value = "viewer", value_parser = app::model::Role::parse)]
        role: app::model::Role,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a user another role (viewer, operator, admin).
    Role {
        name: String,
        #[arg(value_parser = app::model::Role::parse)]
        role: app::model::Role,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (read like `add`); their sessions end.
    Passwd {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user; their sessions end.
    Remove {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the users.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Remove a device from the dashboard and revoke its tokens (a running hub drops it within
    /// five seconds). Its readings are deleted too, unless --keep-readings.
    Remove {
        device: String,
        /// Keep its readings (they can still be exported); only unlist it.
        #[arg(long)]
        keep_readings: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a device id and print it (the only time it is shown).
    Create {
        device: String,
        /// What the token is for, e.g. "kitchen ESP32".
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (not the secrets, which are not kept).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its number (see `list`). A running hub disconnects the device using
    /// it within five seconds.
    Revoke {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Create an API token for a user and print it (the only time it is shown). It acts as
    /// that user, with at most --scope.
    Create {
        /// The user it acts for.
        #[arg(long)]
        user: String,
        /// The most it may do: viewer (reads), operator (also commands), admin.
        #[arg(long, default_value = "viewer", value_parser = app::model::Role::parse)]
        scope: app::model::Role,
        /// What it is for, e.g. "Home Assistant".
        #[arg(long, default_value = "")]
        label: String,
        /// It stops working after this many days (default: when revoked).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_days: Option<u32>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List API tokens (not the secrets, which are not kept).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API token by its number (see `list`); programs using it are refused at once.
    Revoke {
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the hub keeps its data (shared by `serve` and the management commands).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Folder for the database; created if missing.
    #[arg(long, env = "IOTHUB_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Store readings in PostgreSQL (`postgres://user:password@host/db`) instead of the
    /// embedded SQLite file in the data folder (`sqlite:///path/file.db` names another file).
    #[arg(long, env = "IOTHUB_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl Cli {
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

/// `iothub serve`: every setting, in groups; each part of the hub is handed only its own group.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub writes: WriteArgs,

    #[command(flatten)]
    pub retention: RetentionArgs,

    #[command(flatten)]
    pub accounts: AccountArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub devices: DeviceArgs,

    #[command(flatten)]
    pub tcp: TcpArgs,

    #[command(flatten)]
    pub serial: SerialArgs,

    #[command(flatten)]
    pub mqtt: MqttArgs,

    #[command(flatten)]
    pub live: LiveArgs,

    #[command(flatten)]
    pub simulate: SimulateArgs,

    #[command(flatten)]
    pub smtp: crate::alerts::SmtpArgs,

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,

    /// Print the configuration in effect (flags, environment, config file, defaults; secrets
    /// masked) and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Once every listener is bound, write their addresses to this file as JSON
    /// (`{"dashboard":"http://127.0.0.1:3000","tcp":null,"metrics":null,"pid":1234}`), for
    /// scripts that start the hub on port 0. Written whole or not at all.
    #[arg(long, env = "IOTHUB_READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// Alarm rules from the config file's `[[alarm_rule]]` tables (no flag: a rule is too
    /// big for one), created or brought up to date at start (see `Alerts::apply_config_rules`).
    #[arg(skip)]
    pub alarm_rules: Vec<app::model::NewRule>,
}

/// The dashboard's HTTP listener and what it accepts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Web server")]
pub struct HttpArgs {
    /// Address for the dashboard and the device endpoints.
    #[arg(long, env = "IOTHUB_BIND", default_value = "0.0.0.0:3000")]
    pub bind: SocketAddr,

    /// The address people open the dashboard at, e.g. `https://hub.example.org:8443`. Browser
    /// requests that change something or stream (server functions, WebSockets) from any other
    /// origin are refused. Unset: the origin must match the `Host` the request was sent to.
    #[arg(long, env = "IOTHUB_PUBLIC_ORIGIN", value_parser = crate::security::parse_origin)]
    pub public_origin: Option<String>,

    /// More names the dashboard and device endpoint answer to, comma-separated (e.g.
    /// `raspberrypi.local`). IP addresses, `localhost` and the host of `--public-origin` always
    /// work; a request for any other name gets 421 (it protects against DNS rebinding).
    #[arg(long, env = "IOTHUB_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Web pages on these origins (e.g. `https://ha.example.org`, comma-separated) may call the
    /// REST API from a browser, with an API token (CORS). Unset: none may.
    #[arg(long, env = "IOTHUB_API_CORS_ORIGINS", value_delimiter = ',', value_parser = crate::security::parse_origin)]
    pub api_cors_origins: Vec<String>,

    /// Most open connections from one client address. Connections from this machine
    /// (127.0.0.1, ::1) are not counted.
    #[arg(long, env = "IOTHUB_MAX_CONNECTIONS_PER_IP", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// Largest request head (request line and headers), in bytes; larger requests get 431.
    #[arg(long, env = "IOTHUB_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(8192..=1024 * 1024))]
    pub max_header_bytes: u32,

    /// Time a client has to send a request's head, which is also the longest an HTTP
    /// connection may sit idle between requests (ms).
    #[arg(long, env = "IOTHUB_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_timeout_ms: u64,

    /// Time a client has to send a whole request, body included, and the longest a request
    /// that is not a stream (the device socket, CSV downloads and the live view are) may take
    /// to be answered (ms); later, 408.
    #[arg(long, env = "IOTHUB_REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub request_timeout_ms: u64,

    /// Most open connections in all (dashboard, device sockets, raw TCP devices); more are
    /// closed as they come. Keep the open-file limit above it (the systemd unit's
    /// `LimitNOFILE=`).
    #[arg(long, env = "IOTHUB_MAX_CONNECTIONS", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// The hub is reached through a reverse proxy on this machine: for requests from
    /// 127.0.0.1 or ::1, sign-in throttling counts the address the proxy appended to
    /// `X-Forwarded-For` rather than the proxy's own.
    #[arg(long, env = "IOTHUB_BEHIND_PROXY", value_parser = clap::builder::BoolishValueParser::new())]
    pub behind_proxy: bool,

    /// Folder with the built web assets (`pkg/` with the bundle and its list `bundle.txt`,
    /// favicon, service worker).
    #[arg(long, env = "IOTHUB_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Also serve `/metrics` (Prometheus text format) on this address, without sign-in, for a
    /// scraper: keep it on 127.0.0.1 or a private network. (`/metrics` on the dashboard's own
    /// address needs a session like every page.)
    #[arg(long, env = "IOTHUB_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
}

/// HTTPS and WSS.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Serve HTTPS and WSS with this certificate chain (PEM, the hub's certificate first);
    /// needs --tls-key. With TLS on, browsers are told to use HTTPS from then on (HSTS).
    #[arg(long, env = "IOTHUB_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Also listen for plain HTTP on this address and answer every request with a redirect to
    /// the same path over HTTPS (needs --acme-domain or --tls-cert); the flag alone means
    /// `0.0.0.0:80`.
    #[arg(long, env = "IOTHUB_HTTP_REDIRECT", num_args = 0..=1, default_missing_value = "0.0.0.0:80")]
    pub http_redirect: Option<SocketAddr>,

    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "IOTHUB_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Get the HTTPS certificate for this name from Let's Encrypt (or the CA of
    /// --acme-directory), keep it in the data folder and renew it, all by itself; comma-separate
    /// several names. The CA checks that the name reaches this hub on port 443 (TLS-ALPN-01):
    /// forward the router's port 443 to --bind's port. Using it accepts the CA's terms of
    /// service (Let's Encrypt's: https://letsencrypt.org/repository/).
    #[arg(long, env = "IOTHUB_ACME_DOMAIN", value_delimiter = ',', conflicts_with_all = ["tls_cert", "tls_key"], value_parser = crate::certificates::acme::parse_domain)]
    pub acme_domain: Vec<String>,

    /// An address the CA may write to about the certificate (say, if renewing keeps failing).
    #[arg(long, env = "IOTHUB_ACME_EMAIL", requires = "acme_domain")]
    pub acme_email: Option<String>,

    /// The ACME directory of the certificate authority. Let's Encrypt's staging CA, for trying
    /// things out without its rate limits: https://acme-staging-v02.api.letsencrypt.org/directory
    #[arg(long, env = "IOTHUB_ACME_DIRECTORY", default_value = crate::certificates::acme::LETS_ENCRYPT)]
    pub acme_directory: String,

    /// Trust this CA certificate (PEM) for the ACME directory's own HTTPS instead of the
    /// public ones: a private CA, or a test CA such as pebble.
    #[arg(long, env = "IOTHUB_ACME_CA_ROOT", requires = "acme_domain")]
    pub acme_ca_root: Option<PathBuf>,
}

/// People signing in.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sign-in")]
pub struct AccountArgs {
    /// Password of the first user, `admin`, created on the first start (when there are no
    /// users). Unset: a password is generated and printed to the log once.
    #[arg(long, env = "IOTHUB_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Read the first user's password from this file instead (its first line): a systemd
    /// credential (`LoadCredential=`), or any file only the hub can read.
    #[arg(
        long,
        env = "IOTHUB_ADMIN_PASSWORD_FILE",
        conflicts_with = "admin_password"
    )]
    pub admin_password_file: Option<PathBuf>,

    /// How long a sign-in lasts, in hours.
    #[arg(long, env = "IOTHUB_SESSION_HOURS", default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..=8_760))]
    pub session_hours: u32,
}

/// How the store batches its writes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Store")]
pub struct WriteArgs {
    /// The store writes queued readings at least this often (ms); a crash loses at most this much.
    #[arg(long, env = "IOTHUB_FLUSH_INTERVAL_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub flush_interval_ms: u64,

    /// …or as soon as this many values are queued. Large on purpose: each flush rewrites the
    /// pages it touches, so at high rates bigger flushes cost less per reading (a 10-lines-per-
    /// frame flood costs a third less server CPU than with 5,000); the interval still bounds
    /// what a crash loses.
    #[arg(long, env = "IOTHUB_FLUSH_ROWS", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub flush_rows: u32,
}

/// How long stored data is kept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Retention")]
pub struct RetentionArgs {
    /// Delete readings older than this many days (checked hourly); 0 keeps everything.
    #[arg(long, env = "IOTHUB_RETENTION_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub retention_days: u32,

    /// Delete per-minute aggregates older than this many days; 0 keeps them. They serve
    /// history windows of an hour or more, also after the raw readings are gone.
    #[arg(long, env = "IOTHUB_MINUTE_RETENTION_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub minute_retention_days: u32,

    /// Delete per-hour aggregates older than this many days; 0 keeps them (a year of one
    /// field is 8,760 rows).
    #[arg(long, env = "IOTHUB_HOUR_RETENTION_DAYS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub hour_retention_days: u32,
}

/// What the registry keeps for the live view, and how long commands wait.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Live view")]
pub struct LiveArgs {
    /// Readings per device kept in memory for the live charts.
    #[arg(long, env = "IOTHUB_RECENT_READINGS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub recent_readings: u32,

    /// How long a device has to acknowledge a command before it counts as timed out (ms).
    #[arg(long, env = "IOTHUB_COMMAND_TIMEOUT_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub command_timeout_ms: u64,

    /// Most devices the hub knows at once, online or not (each costs memory, and every
    /// dashboard snapshot lists them); a new device id past it is refused with an error.
    #[arg(long, env = "IOTHUB_MAX_DEVICES", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_devices: u32,
}

/// Simulated devices run alongside the hub.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Simulated devices")]
pub struct SimulateArgs {
    /// Also run this many simulated devices against this server.
    #[arg(long, env = "IOTHUB_SIMULATE", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub simulate: u32,

    /// Readings per second each simulated device sends.
    #[arg(long, env = "IOTHUB_SIMULATE_RATE", default_value_t = 1.0, value_parser = crate::simulator::parse_rate)]
    pub simulate_rate: f64,
}

impl ServeArgs {
    /// The settings in effect, secrets masked (`--print-config`).
    pub fn printable(&self) -> String {
        let mut shown = self.clone();
        let mask = |secret: &mut String| *secret = "***".into();
        if let Some(password) = shown.accounts.admin_password.as_mut() {
            mask(password);
        }
        if let Some(url) = shown.store.database_url.as_mut() {
            if let Ok(mut parsed) = url::Url::parse(url) {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                    *url = parsed.to_string();
                }
            }
        }
        if let Some(url) = shown.cluster.cluster_nats.as_mut() {
            if let Ok(mut parsed) = url::Url::parse(url) {
                if parsed.password().is_some() {
                    let _ = parsed.set_password(Some("***"));
                    *url = parsed.to_string();
                }
            }
        }
        if let Some((_, password)) = shown
            .mqtt
            .mqtt_url
            .as_mut()
            .and_then(|b| b.credentials.as_mut())
        {
            mask(password);
        }
        format!("{shown:#?}")
    }

    /// The serve flags alone, without their environment fallback.
    pub fn command_without_env() -> clap::Command {
        <ServeArgs as clap::Args>::augment_args(clap::Command::new("iothub"))
            .mut_args(|arg| arg.env(None::<&str>))
    }

    /// The defaults, as `iothub serve` with no flags and no environment would have them
    /// (environment variables are ignored here, so tests are not affected by the caller's shell).
    pub fn defaults() -> Self {
        let matches = Self::command_without_env().get_matches_from(["iothub"]);
        <ServeArgs as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("the defaults of ServeArgs are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["iothub", "--bind", "127.0.0.1:0"]).unwrap();
        match cli.into_command() {
            Command::Serve(args) => {
                assert_eq!(args.http.bind.port(), 0);
                assert_eq!(args.devices.default_fields, ["counter", "temp"]);
            }
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = Cli::try_parse_from(["iothub", "--max-fields", "0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-fields"), "{err}");
        let err = Cli::try_parse_from(["iothub", "serve", "--simulate-rate=-1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--simulate-rate"), "{err}");
    }

    #[test]
    fn acme_takes_dns_names_and_excludes_certificate_files() {
        let parsed =
            Cli::try_parse_from(["iothub", "--acme-domain", "Hub.Example.org,pi.example.org"])
                .unwrap();
        match parsed.into_command() {
            Command::Serve(args) => {
                assert_eq!(args.tls.acme_domain, ["hub.example.org", "pi.example.org"]);
                assert_eq!(
                    args.tls.acme_directory,
                    crate::certificates::acme::LETS_ENCRYPT
                );
            }
            other => panic!("expected serve, got {other:?}"),
        }
        let err = Cli::try_parse_from(["iothub", "--acme-domain", "192.0.2.1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("IP address"), "{err}");
        let err = Cli::try_parse_from([
            "iothub",
            "--acme-domain",
            "hub.example.org",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--tls-cert") || err.contains("--acme-domain"),
            "{err}"
        );
        let err = Cli::try_parse_from(["iothub", "--acme-email", "me@example.org"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--acme-domain"), "{err}");
    }

    #[test]
    fn the_tcp_listener_is_off_unless_asked_for() {
        assert_eq!(ServeArgs::defaults().tcp.tcp_listen, None);
        let cli = Cli::try_parse_from(["iothub", "serve", "--tcp-listen"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("serve")
        };
        assert_eq!(args.tcp.tcp_listen, Some("0.0.0.0:5070".parse().unwrap()));
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let err = Cli::try_parse_from(["iothub", "--tls-cert", "cert.pem"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--tls-key"), "{err}");
        assert!(
            Cli::try_parse_from(["iothub", "--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_ok()
        );
    }

    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        let cli =
            Cli::try_parse_from(["iothub", "serve", "--simulate", "5", "--simulate", "0"]).unwrap();
        let Command::Serve(args) = cli.into_command() else {
            panic!("serve")
        };
        assert_eq!(args.simulate.simulate, 0);
    }

    #[test]
    fn defaults_ignore_the_environment() {
        let args = ServeArgs::defaults();
        assert_eq!(args.http.bind.port(), 3000);
        assert_eq!(args.devices.max_frame_bytes, 65536);
        assert!(
            !args.devices.allow_tokenless_devices,
            "devices need tokens unless told otherwise"
        );
        assert_eq!(args.accounts.admin_password, None);
    }

    #[test]
    fn management_commands_share_the_data_flags() {
        let cli = Cli::try_parse_from([
            "iothub",
            "token",
            "create",
            "kitchen-7",
            "--label",
            "ESP32",
            "--data-dir",
            "/srv/hub",
        ])
        .unwrap();
        match cli.into_command() {
            Command::Token(TokenCommand::Create {
                device,
                label,
                store,
            }) => {
                assert_eq!((device.as_str(), label.as_str()), ("kitchen-7", "ESP32"));
                assert_eq!(store.data_dir, PathBuf::from("/srv/hub"));
            }
            other => panic!("expected token create, got {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["iothub", "user", "add"]).is_err(),
            "a name is needed"
        );
    }
}
