//! Who may use the hub: people sign in to the dashboard (users, sessions), devices present a
//! token. [`Auth`] holds the rules; [`web`] puts them in front of every route.
//!
//! - [`password`]: argon2id hashes; [`secret`]: random session ids and device tokens, of which
//!   only a SHA-256 is stored; [`throttle`]: slowing down password guessing.
//! - The first start creates an `admin` user (password from `--admin-password`, or generated
//!   and logged once). More users: `iothub user add`.

pub mod password;
pub mod secret;
pub mod throttle;
pub mod web;

use crate::protocol::DeviceId;
use crate::storage::{SessionRow, StorageError, Store, UserRow};
use app::model::{DeviceToken, NewDeviceToken};
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
    /// Connections per stored token: a device (or a stolen token) reconnecting in a loop
    /// would cost a database write and a registry change each time.
    reconnects: Mutex<HashMap<i64, crate::limits::RateLimit>>,
}

/// A token may connect this often on average (one every 5 s)…
const RECONNECTS_PER_SEC: f64 = 0.2;
/// …after a burst of this many (a device rebooting a few times, a flaky network).
const RECONNECT_BURST: f64 = 10.0;

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
        self.add_user(FIRST_USER, &password).await?;
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

    pub async fn add_user(&self, name: &str, password: &str) -> Result<(), AuthError> {
        check_user_name(name)?;
        let hash = self.hash(password).await?;
        if !self
            .store()
            .create_user(name, &hash, crate::now_ms())
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

    /// The user a session cookie belongs to, if it is valid. Confirmed sessions are
    /// remembered for [`SESSION_RECHECK`]; if the database cannot be asked, a remembered,
    /// unexpired session still counts.
    pub async fn session_user(&self, session: &str) -> Result<Option<String>, AuthError> {
        let fingerprint = secret::fingerprint(session);
        let now_ms = crate::now_ms();
        let known = self.known_sessions().get(&fingerprint).cloned();
        let known = known.filter(|k| k.expires_ms > now_ms);
        if let Some(k) = known
            .as_ref()
            .filter(|k| k.checked.elapsed() < SESSION_RECHECK)
        {
            return Ok(Some(k.user.clone()));
        }
        match self.store().session_user(&fingerprint, now_ms).await {
            Ok(Some(SessionRow { user, expires_ms })) => {
                let mut sessions = self.known_sessions();
                if sessions.len() >= MAX_CACHED_SESSIONS {
                    sessions.clear();
                }
                sessions.insert(
                    fingerprint,
                    KnownSession {
                        user: user.clone(),
                        expires_ms,
                        checked: Instant::now(),
                    },
                );
                Ok(Some(user))
            }
            Ok(None) => {
                self.known_sessions().remove(&fingerprint);
                Ok(None)
            }
            Err(err) => match known {
                Some(k) => {
                    tracing::warn!(%err, "cannot check a session; trusting the last check");
                    Ok(Some(k.user))
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

    /// Creates a token for `device_id`; the secret is in the result and nowhere else.
    pub async fn create_device_token(
        &self,
        device_id: &str,
        label: &str,
    ) -> Result<NewDeviceToken, AuthError> {
        let device_id =
            DeviceId::parse(device_id).map_err(|e| AuthError::BadDeviceId(e.to_string()))?;
        let label = check_label(label)?;
        let secret = secret::new_device_token()?;
        let token = self
            .store()
            .create_device_token(
                device_id.as_str(),
                label,
                &secret::fingerprint(&secret),
                crate::now_ms(),
            )
            .await?;
        tracing::info!(device = %device_id, token = token.id, "device token created");
        Ok(NewDeviceToken { token, secret })
    }

    pub async fn revoke_device_token(&self, id: i64) -> Result<DeviceToken, AuthError> {
        let token = self
            .store()
            .revoke_device_token(id, crate::now_ms())
            .await?
            .ok_or(AuthError::NoSuchToken(id))?;
        tracing::info!(device = %token.device_id, token = id, "device token revoked");
        Ok(token)
    }

    pub async fn device_tokens(&self) -> Result<Vec<DeviceToken>, AuthError> {
        Ok(self.store().device_tokens().await?)
    }

    /// A token for `device_id` that is valid until the process ends (never stored).
    pub fn ephemeral_device_token(&self, device_id: DeviceId) -> Result<String, AuthError> {
        let secret = secret::new_device_token()?;
        self.inner
            .ephemeral_tokens
            .lock()
            .insert(secret::fingerprint(&secret), device_id);
        Ok(secret)
    }

    /// Whether a connection without a token may speak for `device`: not if the device has a
    /// token (stored and not revoked, or the bundled simulator's), whatever the transport.
    pub async fn tokenless_may_use(&self, device: &DeviceId) -> Result<(), DeviceRefusal> {
        let simulated = self
            .inner
            .ephemeral_tokens
            .lock()
            .values()
            .any(|id| id == device);
        let stored = self
            .store()
            .device_has_token(device.as_str())
            .await
            .map_err(|err| {
                tracing::error!(%err, "looking up device tokens failed");
                DeviceRefusal::Unavailable
            })?;
        if simulated || stored {
            return Err(DeviceRefusal::NeedsItsToken(device.to_string()));
        }
        Ok(())
    }

    /// Decides whether a device connection presenting `token` may proceed.
    pub async fn admit_device(&self, token: Option<&str>) -> Result<DeviceAccess, DeviceRefusal> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return if self.config().allow_tokenless_devices {
                Ok(DeviceAccess::Tokenless)
            } else {
                Err(DeviceRefusal::NoToken)
            };
        };
        // Real tokens are 68 characters; anything far longer is not worth hashing.
        if token.len() > 256 {
            return Err(DeviceRefusal::BadToken);
        }
        let fingerprint = secret::fingerprint(token);
        let ephemeral = self
            .inner
            .ephemeral_tokens
            .lock()
            .get(&fingerprint)
            .cloned();
        if let Some(device_id) = ephemeral {
            return Ok(DeviceAccess::Device {
                device_id,
                token_id: None,
            });
        }
        let stored = self
            .store()
            .device_token_by_hash(&fingerprint)
            .await
            .map_err(|err| {
                tracing::error!(%err, "looking up a device token failed");
                DeviceRefusal::Unavailable
            })?;
        let Some(stored) = stored.filter(|t| t.revoked_ms.is_none()) else {
            return Err(DeviceRefusal::BadToken);
        };
        let device_id = DeviceId::parse(&stored.device_id).map_err(|_| DeviceRefusal::BadToken)?;
        let now = Instant::now();
        let allowed = self
            .inner
            .reconnects
            .lock()
            .entry(stored.id)
            .or_insert_with(|| {
                crate::limits::RateLimit::with_burst(RECONNECTS_PER_SEC, RECONNECT_BURST, now)
            })
            .allow(now);
        if !allowed {
            return Err(DeviceRefusal::TooManyReconnects);
        }
        if let Err(err) = self
            .store()
            .touch_device_token(stored.id, crate::now_ms())
            .await
        {
            tracing::warn!(%err, "could not note the device token's last use");
        }
        Ok(DeviceAccess::Device {
            device_id,
            token_id: Some(stored.id),
        })
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
