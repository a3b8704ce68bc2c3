//! Several hubs as one (`--cluster-nats`): hubs that share a NATS server (and a PostgreSQL
//! store) tell each other what happens to the devices they hold, so that a browser on any of
//! them sees every device live.
//!
//! Each hub publishes its own devices' presence, readings, console lines, commands and alarms
//! (the registry's local events, `Registry::subscribe_local`) and applies what the others
//! publish to its registry as devices another hub holds (`registry/remote.rs`): its pages show
//! them like its own, its store and alarm engine leave them to the holding hub. A command to
//! such a device is a request to its hub, which sends it and answers with its record; what
//! becomes of it then comes back like the rest. A hub that joins says `hello` and every hub
//! answers with all it holds; a hub that stops says so, and one that dies is noticed by its
//! silence ([`LOST_AFTER`]): its devices go offline until they connect again, to any hub.
//! Which hub holds which device is also written in a JetStream key-value bucket
//! (`presence.rs`): commands go where it says, and a hub lets go of a device another hub
//! claims with a newer connection. Without `--cluster-nats` none of this runs.

mod link;
mod presence;
mod wire;

pub use link::{connect, run, Link, LinkStatus};
pub use presence::{Claim, PRESENCE_TTL, RENEW_EVERY};
pub use wire::{hex, presence_bucket, Ask, Envelope, Subjects, Told};

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// How often a hub says it is alive.
pub const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// A hub not heard from for this long is gone: its devices are shown offline.
pub const LOST_AFTER: Duration = Duration::from_secs(5);

/// Several hubs as one.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Several hubs as one")]
pub struct ClusterArgs {
    /// Join the hubs that use this NATS server (and share one PostgreSQL store,
    /// `--database-url`): each shows every hub's devices live. `nats://host:4222`,
    /// `tls://host:4222` for TLS; `nats://user:password@host:4222` (or `nats://token@host:4222`)
    /// to sign in.
    #[arg(long, env = "IOTHUB_CLUSTER_NATS", hide_env_values = true)]
    pub cluster_nats: Option<String>,

    /// A NATS credentials file (`.creds`: a user JWT and its NKey seed) to sign in with.
    #[arg(long, env = "IOTHUB_CLUSTER_NATS_CREDS")]
    pub cluster_nats_creds: Option<PathBuf>,

    /// CA certificates (PEM) to trust for a NATS server whose certificate is not from a public
    /// CA; requires TLS.
    #[arg(long, env = "IOTHUB_CLUSTER_NATS_CA_FILE")]
    pub cluster_nats_ca_file: Option<PathBuf>,

    /// This hub's name among the others (letters, digits, `-`, `_`). Default: a new random
    /// one at every start.
    #[arg(long, env = "IOTHUB_CLUSTER_HUB_ID", value_parser = parse_token)]
    pub cluster_hub_id: Option<String>,

    /// The first part of every NATS subject the hubs use: hubs of one system share it, and
    /// two systems on one NATS server each have their own.
    #[arg(long, env = "IOTHUB_CLUSTER_PREFIX", default_value = "iothub", value_parser = parse_token)]
    pub cluster_prefix: String,
}

fn parse_token(text: &str) -> Result<String, String> {
    if wire::is_subject_token(text) {
        Ok(text.to_string())
    } else {
        Err("1 to 64 letters, digits, `-` or `_`".into())
    }
}

/// The link to the other hubs, if `--cluster-nats` asks for one.
pub async fn link(args: &ClusterArgs) -> Result<Option<Link>, ClusterError> {
    let Some(url) = &args.cluster_nats else {
        return Ok(None);
    };
    let hub = args.cluster_hub_id.clone().unwrap_or_else(random_hub_id);
    let link = connect(args, url, hub).await?;
    tracing::info!(hub = %link.hub(), "linking with the other hubs through NATS");
    Ok(Some(link))
}

/// A hub id for a hub that was given none: random, so two hubs started alike differ.
fn random_hub_id() -> String {
    // Not a secret: fastrand's seed (from the clock and the process) tells two hubs apart.
    format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read the NATS credentials file {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("cannot subscribe on NATS: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}
