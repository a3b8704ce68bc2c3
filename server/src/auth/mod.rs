//! Who may use the hub: people sign in to the dashboard (users, sessions), devices present a
//! token. [`Auth`] holds the rules; [`web`] puts them in front of every route.
//!
//! - [`password`]: argon2id hashes; [`secret`]: random session ids and device tokens, of which
//!   only a SHA-256 is stored; [`throttle`]: slowing down password guessing.
//! - The first start creates an `admin` user (password from `--admin-password`, or generated
//!   and logged once). More users: `iothub user add`.

mod api_tokens;
mod device_tokens;
pub mod password;
pub mod policy;
pub mod secret;
pub mod throttle;
pub mod web;

use crate::protocol::DeviceId;
use crate::storage::{SessionRow, StorageError, Store, UserRow};
use app::model::Role;
use parking_lot::{Mutex, MutexGuard};
use password::PasswordError;
use secret::RandomError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::LoginThrottle;

/// The user the first start creates.
pub const FIRST_USER: &str = "admin";
/// Longest label of a device token.
pub const MAX_LABEL_CHARS: usize = 100;
/// Longest user name.
pub const MAX_USER_NAME_CHARS: usize = 64;
/// A sign-in with a longer name (in bytes) cannot be anyone's and is refused before any work.
const MAX_USER_NAME_BYTES: usize = 4 * MAX_USER_NAME_CHARS;
/// How long a sign-in may wait for a free password check before it is told to come back.
const HASH_QUEUE_DEADLINE: Duration = Duration::from_secs(5);
/// What such a sign-in is told (`Retry-After`).
const HASH_BUSY_RETRY: Duration = Duration::from_secs(2);
/// A session found valid is trusted this long before the database is asked again. Sessions
/// ended by this process (logout) end at once; by `iothub user` in another process, within
/// this time. It also keeps the dashboard usable while the database is away.
const SESSION_RECHECK: Duration = Duration::from_secs(60);
/// Sessions remembered at most (beyond, the memory is cleared and rebuilt from the database).
const MAX_CACHED_SESSIONS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("user name: {0}")]
    BadUserName(String),
    #[error("there is already a user called {0:?}")]
    UserExists(String),
    #[error("there is no user called {0:?}")]
    NoSuchUser(String),
    #[error("device id: {0}")]
    BadDeviceId(String),
    #[error("label: {0}")]
    BadLabel(String),
    #[error("there is no active device token {0}")]
    NoSuchToken(i64),
    #[error("there is no active API token {0}")]
    NoSuchApiToken(i64),
    #[error("an API token's expiry must lie in the future")]
    ExpiryInThePast,
}

/// Who a request acts for: a signed-in person, or a program with one of their API tokens
/// (then `role` is the lower of theirs and the token's scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub session_lifetime: Duration,
    /// Session cookies get `Secure` (the dashboard is reached over HTTPS).
    pub secure_cookies: bool,
    /// Devices may connect without a token (a trusted LAN only).
    pub allow_tokenless_devices: bool,
    /// Requests from 127.0.0.1 or ::1 come through a reverse proxy: sign-in throttling counts
    /// the address it appended to `X-Forwarded-For` (`--behind-proxy`).
    pub behind_proxy: bool,
}

/// What a login attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    /// Signed in: `session` is the cookie's secret.
    SignedIn { user: String, session: String },
    /// Wrong name or password (which of the two is not said).
    Refused,
    /// Too many failures from this address: try again after this long.
    Throttled(Duration),
    /// Every password check is busy (sign-ins from many places at once): try again after this
    /// long. Nothing was checked or counted.
    Busy(Duration),
}

/// Why a device connection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRefusal {
    #[error("this hub needs a device token: send `Authorization: Bearer <token>` or connect with ?token=<token>")]
    NoToken,
    #[error("unknown or revoked device token")]
    BadToken,
    #[error("the device token is for device {0:?}")]
    OtherDevice(String),
    #[error("device {0:?} has a device token: only a connection with that token may speak for it")]
    NeedsItsToken(String),
    #[error("this device token connected too often lately; wait a little before reconnecting")]
    TooManyReconnects,
    #[error("the token store is not answering; try again")]
    Unavailable,
}

/// What a device connection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAccess {
    /// Exactly this device id (its token's).
    Device {
        device_id: DeviceId,
        /// The stored token's id (`None` for the bundled simulator's in-memory tokens).
        token_id: Option<i64>,
    },
    /// No token, allowed by `--allow-tokenless-devices`: any id.
    Tokenless,
}

#[derive(Debug, Clone)]
struct KnownSession {
    user: String,
    role: Role,
    expires_ms: i64,
    checked: Instant,
}

#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: AuthConfig,
    throttle: Mutex<LoginThrottle>,
    /// Password hashes computed at once, one per core: argon2 holds 19 MiB while it works, so a
    /// burst of sign-ins costs at most this many times that (and the cores it has).
    hashing: tokio::sync::Semaphore,
    /// Fingerprint → recently confirmed session.
    sessions: Mutex<HashMap<String, KnownSession>>,
    /// Fingerprint → device id of tokens that live only as long as this process (the bundled
    /// simulator's), so a demo run leaves no tokens behind in the database.
    ephemeral_tokens: Mutex<HashMap<String, DeviceId>>,
    /// API token id → when its last use was written (at most once a minute per token).
    api_tokens_touched: Mutex<HashMap<i64, Instant>>,
    /// Connections per stored token: a device (or a stolen token) reconnecting in a loop
    /// would cost a database write and a registry change each time.
    reconnects: Mutex<HashMap<i64, crate::limits::RateLimit>>,
}

impl Auth {
    pub fn new(store: Store, config: AuthConfig) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                store,
                config,
                throttle: Mutex::new(LoginThrottle::default()),
                hashing: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                ),
                sessions: Mutex::new(HashMap::new()),
                ephemeral_tokens: Mutex::new(HashMap::new()),
                reconnects: Mutex::new(HashMap::new()),
                api_tokens_touched: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A new password's hash, computed when a password check is free.
    async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let _permit = self.inner.hashing.acquire().await;
        Ok(password::hash_async(password.to_string()).await?)
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// On the first start (no users yet) creates [`FIRST_USER`] with `password`, or with a
    /// generated one that is logged once. Returns the generated password, if any.
    pub async fn create_first_user(
        &self,
        password: Option<&str>,
    ) -> Result<Option<String>, AuthError> {
        if self.store().user_count().await? > 0 {
            if password.is_some() {
                tracing::info!(
                    "--admin-password is only used on the first start; users exist already \
                     (change a password with `iothub user passwd`)"
                );
            }
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(given) => (given.to_string(), false),
            None => (secret::new_password()?, true),
        };
        self.add_user(FIRST_USER, &password, Role::Admin).await?;
        if generated {
            tracing::warn!(
                user = FIRST_USER,
                password = %password,
                "created the first user with this generated password; it is shown only this \
                 once (change it with `iothub user passwd {FIRST_USER}`)"
            );
            Ok(Some(password))
        } else {
            tracing::info!(user = FIRST_USER, "created the first user");
            Ok(None)
        }
    }

    pub async fn add_user(&self, name: &str, password: &str, role: Role) -> Result<(), AuthError> {
        check_user_name(name)?;
        let hash = self.hash(password).await?;
        if !self
            .store()
            .create_user(name, &hash, role.as_str(), crate::now_ms())
            .await?
        {
            return Err(AuthError::UserExists(name.to_string()));
        }
        Ok(())
    }

    /// Sets a new password; the user's sessions end.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        let hash = self.hash(password).await?;
        if !self.store().set_password(name, &hash).await? {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        self.forget_sessions_of(name);
        Ok(())
    }

    /// Gives a user another role; their open sessions have it at their next request here
    /// (within [`SESSION_RECHECK`] when changed by another process, `iothub user role`).
    pub async fn set_role(&self, name: &str, role: Role) -> Result<(), AuthError> {
        if !self.store().set_role(name, role.as_str()).await? {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        self.forget_sessions_of(name);
        Ok(())
    }

    pub async fn remove_user(&self, name: &str) -> Result<(), AuthError> {
        if !self.store().remove_user(name).await? {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        self.forget_sessions_of(name);
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, AuthError> {
        Ok(self.store().users().await?)
    }

    /// Checks a password, applying the throttle (see [`throttle`]) for `client`.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Login, AuthError> {
        let delay = {
            let mut throttle = self.throttle();
            let now = Instant::now();
            if let Err(wait) = throttle.check_address(client, now) {
                return Ok(Login::Throttled(wait));
            }
            if name.len() > MAX_USER_NAME_BYTES {
                throttle.address_failed(client, now);
                tracing::warn!(%client, "failed sign-in: no such user name is possible");
                return Ok(Login::Refused);
            }
            let delay = throttle.account_delay(name, now);
            // Counted as failed now, before the check, and cleared if it succeeds: attempts
            // sent all at once are counted as they come, not after their hashes, so no more
            // of them reach the check than the free ones.
            throttle.failed(client, name, now);
            delay
        };
        tokio::time::sleep(delay).await;
        let Ok(Ok(_permit)) =
            tokio::time::timeout(HASH_QUEUE_DEADLINE, self.inner.hashing.acquire()).await
        else {
            tracing::warn!(%client, "sign-in refused: every password check is busy");
            return Ok(Login::Busy(HASH_BUSY_RETRY));
        };
        // Unknown names are checked against a decoy hash: the same work, the same answer.
        let stored = self.store().password_hash(name).await?;
        if !password::verify_async(password.to_string(), stored).await {
            self.throttle().refused(client, name, Instant::now());
            tracing::warn!(%client, "failed sign-in");
            return Ok(Login::Refused);
        }
        self.throttle().succeeded(client, name);
        let session = secret::random_hex()?;
        let now = crate::now_ms();
        let expires = now.saturating_add(self.config().session_lifetime.as_millis() as i64);
        self.store()
            .create_session(&secret::fingerprint(&session), name, now, expires)
            .await?;
        tracing::info!(%client, user = name, "signed in");
        Ok(Login::SignedIn {
            user: name.to_string(),
            session,
        })
    }

    /// Who a session cookie belongs to, if it is valid. Confirmed sessions are remembered for
    /// [`SESSION_RECHECK`]; if the database cannot be asked, a remembered, unexpired session
    /// still counts.
    pub async fn session_principal(&self, session: &str) -> Result<Option<Principal>, AuthError> {
        let fingerprint = secret::fingerprint(session);
        let now_ms = crate::now_ms();
        let known = self.known_sessions().get(&fingerprint).cloned();
        let known = known.filter(|k| k.expires_ms > now_ms);
        if let Some(k) = known
            .as_ref()
            .filter(|k| k.checked.elapsed() < SESSION_RECHECK)
        {
            return Ok(Some(Principal {
                user: k.user.clone(),
                role: k.role,
            }));
        }
        match self.store().session_user(&fingerprint, now_ms).await {
            Ok(Some(SessionRow {
                user,
                role,
                expires_ms,
            })) => {
                // Written only from a `Role`; anything else is the least it can be.
                let role = Role::parse(&role).unwrap_or(Role::Viewer);
                let mut sessions = self.known_sessions();
                if sessions.len() >= MAX_CACHED_SESSIONS {
                    sessions.clear();
                }
                sessions.insert(
                    fingerprint,
                    KnownSession {
                        user: user.clone(),
                        role,
                        expires_ms,
                        checked: Instant::now(),
                    },
                );
                Ok(Some(Principal { user, role }))
            }
            Ok(None) => {
                self.known_sessions().remove(&fingerprint);
                Ok(None)
            }
            Err(err) => match known {
                Some(k) => {
                    tracing::warn!(%err, "cannot check a session; trusting the last check");
                    Ok(Some(Principal {
                        user: k.user,
                        role: k.role,
                    }))
                }
                None => Err(err.into()),
            },
        }
    }

    pub async fn logout(&self, session: &str) -> Result<(), AuthError> {
        let fingerprint = secret::fingerprint(session);
        self.known_sessions().remove(&fingerprint);
        Ok(self.store().delete_session(&fingerprint).await?)
    }

    fn known_sessions(&self) -> MutexGuard<'_, HashMap<String, KnownSession>> {
        self.inner.sessions.lock()
    }

    /// Forgets the remembered sessions of `user` (their password changed or they were removed).
    fn forget_sessions_of(&self, user: &str) {
        self.known_sessions().retain(|_, k| k.user != user);
    }

    pub async fn forget_expired_sessions(&self) -> Result<u64, AuthError> {
        Ok(self
            .store()
            .delete_expired_sessions(crate::now_ms())
            .await?)
    }

    fn throttle(&self) -> MutexGuard<'_, LoginThrottle> {
        self.inner.throttle.lock()
    }
}

fn check_user_name(name: &str) -> Result<(), AuthError> {
    let bad = |why: &str| Err(AuthError::BadUserName(why.to_string()));
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().count() > MAX_USER_NAME_CHARS {
        return bad(&format!("longer than {MAX_USER_NAME_CHARS} characters"));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("spaces and control characters are not allowed");
    }
    Ok(())
}

fn check_label(label: &str) -> Result<&str, AuthError> {
    let label = label.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(AuthError::BadLabel(format!(
            "longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(AuthError::BadLabel(
            "control characters are not allowed".into(),
        ));
    }
    Ok(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_and_labels_are_checked() {
        assert!(check_user_name("ada").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name("a\u{7}").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
        assert_eq!(check_label("  kitchen ").unwrap(), "kitchen");
        assert!(check_label("a\nb").is_err());
        assert!(check_label(&"x".repeat(101)).is_err());
    }

    #[tokio::test]
    async fn a_name_no_user_can_have_is_refused_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(crate::storage::StoreConfig {
            database: crate::storage::Database::Sqlite(dir.path().join("hub.db")),
            flush_interval: Duration::from_millis(50),
            flush_rows: 100,
        })
        .await
        .unwrap();
        let auth = Auth::new(
            store.clone(),
            AuthConfig {
                session_lifetime: Duration::from_secs(60),
                secure_cookies: false,
                allow_tokenless_devices: false,
                behind_proxy: false,
            },
        );
        // With the store closed, any attempt that asks it fails: one that is refused
        // without asking is told so.
        store.close().await;
        let client = IpAddr::from([192, 0, 2, 1]);
        let long = "x".repeat(MAX_USER_NAME_BYTES + 1);
        assert_eq!(
            auth.login(&long, "guess", client).await.unwrap(),
            Login::Refused
        );
        assert!(auth.login("admin", "guess", client).await.is_err());
        // It counted against the address.
        for _ in 0..throttle::FREE_PER_ADDRESS {
            let _ = auth.login(&long, "guess", client).await;
        }
        assert!(matches!(
            auth.login(&long, "guess", client).await.unwrap(),
            Login::Throttled(_)
        ));
    }
}
