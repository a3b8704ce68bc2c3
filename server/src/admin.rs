//! `iothub user …`, `iothub token …` and `iothub device …`: managing who may sign in and which devices may
//! connect, from the command line, on the same database a running hub uses (SQLite's WAL lets
//! both work at once).

use crate::auth::{Auth, AuthConfig};
use crate::config::{ApiTokenCommand, DeviceCommand, StoreArgs, TokenCommand, UserCommand};
use crate::storage::{Database, Store, StoreConfig};
use anyhow::Context;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, role, store } => {
            let password = read_password(&name)?;
            with_auth(&store, |auth| async move {
                auth.add_user(&name, &password, role).await?;
                println!("added user {name} ({role})");
                Ok(())
            })
            .await
        }
        UserCommand::Role { name, role, store } => {
            with_auth(&store, |auth| async move {
                auth.set_role(&name, role).await?;
                println!("{name} is now {role} (a running hub applies it within a minute)");
                Ok(())
            })
            .await
        }
        UserCommand::Passwd { name, store } => {
            let password = read_password(&name)?;
            with_auth(&store, |auth| async move {
                auth.set_password(&name, &password).await?;
                println!("changed the password of {name}; their sessions have ended");
                Ok(())
            })
            .await
        }
        UserCommand::Remove { name, store } => {
            with_auth(&store, |auth| async move {
                auth.remove_user(&name).await?;
                println!("removed user {name}");
                Ok(())
            })
            .await
        }
        UserCommand::List { store } => {
            with_auth(&store, |auth| async move {
                for user in auth.users().await? {
                    println!(
                        "{}\t{}\tcreated {}",
                        user.name,
                        user.role,
                        utc(user.created_ms)
                    );
                }
                Ok(())
            })
            .await
        }
    }
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            device,
            label,
            store,
        } => {
            with_auth(&store, |auth| async move {
                let created = auth.create_device_token(&device, &label).await?;
                eprintln!(
                    "token {} for device {}; shown only now, keep it in the device's firmware:",
                    created.token.id, created.token.device_id
                );
                println!("{}", created.secret);
                Ok(())
            })
            .await
        }
        TokenCommand::List { store } => {
            with_auth(&store, |auth| async move {
                println!("id\tdevice\tlabel\tcreated\tlast used\trevoked");
                for t in auth.device_tokens().await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.device_id.escape_debug(),
                        t.label.escape_debug(),
                        utc(t.created_ms),
                        t.last_used_ms.map_or("never".into(), utc),
                        t.revoked_ms.map_or("-".into(), utc),
                    );
                }
                Ok(())
            })
            .await
        }
        TokenCommand::Revoke { id, store } => {
            with_auth(&store, |auth| async move {
                let token = auth.revoke_device_token(id).await?;
                println!("revoked token {id} of device {}", token.device_id);
                Ok(())
            })
            .await
        }
    }
}

/// `iothub api-token …`.
pub async fn api_token(command: ApiTokenCommand) -> anyhow::Result<()> {
    match command {
        ApiTokenCommand::Create {
            user,
            scope,
            label,
            expires_days,
            store,
        } => {
            with_auth(&store, |auth| async move {
                let expires_ms = expires_days
                    .map(|days| crate::now_ms().saturating_add(i64::from(days) * 86_400_000));
                let created = auth
                    .create_api_token(&user, &label, scope, expires_ms)
                    .await?;
                eprintln!(
                    "API token {} for {user} (scope {scope}); shown only now, keep it with the \
                     program that uses it (Authorization: Bearer <token>):",
                    created.token.id
                );
                println!("{}", created.secret);
                Ok(())
            })
            .await
        }
        ApiTokenCommand::List { store } => {
            with_auth(&store, |auth| async move {
                println!("id\tuser\tscope\tlabel\tcreated\texpires\tlast used\trevoked");
                for t in auth.api_tokens(None).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.user,
                        t.scope,
                        t.label.escape_debug(),
                        utc(t.created_ms),
                        t.expires_ms.map_or("never".into(), utc),
                        t.last_used_ms.map_or("never".into(), utc),
                        t.revoked_ms.map_or("-".into(), utc),
                    );
                }
                Ok(())
            })
            .await
        }
        ApiTokenCommand::Revoke { id, store } => {
            with_auth(&store, |auth| async move {
                let token = auth.revoke_api_token(id).await?;
                println!("revoked API token {id} of {}", token.user);
                Ok(())
            })
            .await
        }
    }
}

/// `iothub device …`.
pub async fn device(command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Remove {
            device,
            keep_readings,
            store: args,
        } => {
            crate::protocol::DeviceId::parse(&device)?;
            let store = open_store(&args).await?;
            let removed = store
                .remove_device(&device, keep_readings, crate::now_ms())
                .await;
            store.close().await;
            anyhow::ensure!(removed?, "there is no device {device:?}");
            if keep_readings {
                println!("removed device {device}; its readings are kept");
            } else {
                println!("removed device {device} and its readings");
            }
            Ok(())
        }
    }
}

/// The store of `args`, created if need be.
async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data folder {}", args.data_dir.display()))?;
    let database = Database::from_config(args.database_url.as_deref(), &args.data_dir)?;
    Ok(Store::open(StoreConfig {
        database,
        flush_interval: Duration::from_millis(250),
        flush_rows: 1,
    })
    .await?)
}

/// `iothub backup <destination>`.
pub async fn backup(destination: &std::path::Path, args: &StoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !destination.exists(),
        "{} exists already; choose a new file",
        destination.display()
    );
    let database = Database::from_config(args.database_url.as_deref(), &args.data_dir)?;
    anyhow::ensure!(
        matches!(database, Database::Sqlite(ref path) if path.exists()),
        "no SQLite store at {database} (for PostgreSQL use pg_dump)"
    );
    let store = Store::open(StoreConfig {
        database,
        flush_interval: Duration::from_millis(250),
        flush_rows: 1,
    })
    .await?;
    let result = store.backup(destination).await;
    store.close().await;
    result?;
    println!("backed up to {}", destination.display());
    Ok(())
}

/// Opens the store, runs `work`, and closes the store whatever happened.
async fn with_auth<F, Fut>(args: &StoreArgs, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Auth) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::auth::AuthError>>,
{
    let store = open_store(args).await?;
    // Sessions and device admission are not used here; only the stores' tables are.
    let auth = Auth::new(
        store.clone(),
        AuthConfig {
            session_lifetime: Duration::from_secs(3600),
            secure_cookies: true,
            allow_tokenless_devices: false,
            behind_proxy: false,
        },
    );
    let result = work(auth).await;
    store.close().await;
    Ok(result?)
}

/// A new password: from the terminal (asked twice, not echoed) or the first line of standard
/// input (for scripts: `echo "$PW" | iothub user add ada`).
fn read_password(user: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {user}: "))?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    crate::auth::password::check_policy(&password)?;
    Ok(password)
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}
