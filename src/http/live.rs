//! Live sessions: which WebSockets are open under which session, so that a
//! session that ends also ends its sockets.
//!
//! * Signing out ends that session's sockets at once ([`LiveSessions::end`]).
//! * A session's expiry is known when its socket opens; the socket closes
//!   itself then.
//! * Disabling an account or setting a new password (perhaps from the
//!   command line, another process) deletes its sessions in the database;
//!   [`watch_sessions`] checks every live session against the database
//!   every `Settings::session_check_ms` (10 s by default) and ends the ones
//!   that are gone. The same check marks live sessions as used, so that a
//!   session with an open socket never ends for being idle.
//!
//! A socket whose session ended sends `error` `signed_out` and closes with
//! [`CLOSE_SIGNED_OUT`]; the page shows "You have been signed out".

use crate::clock::Clock;
use crate::store::Store;
use signalling::{Role, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// WebSocket close code: the session behind this socket has ended.
pub const CLOSE_SIGNED_OUT: u16 = 4001;

/// Why a session's sockets were closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The user signed out (this or another window of the same session).
    SignedOut,
    /// The session reached its expiry time.
    Expired,
    /// The account was disabled, its password changed, or the session was
    /// removed by an administrator (or it was idle too long).
    Revoked,
}

impl Ended {
    pub fn message(self) -> &'static str {
        match self {
            Ended::SignedOut => "You have been signed out.",
            Ended::Expired => "You have been signed out: your session has expired. Sign in again.",
            Ended::Revoked => {
                "You have been signed out: your access was changed or ended. Sign in again, or ask your administrator."
            }
        }
    }
}

#[derive(Default)]
pub struct LiveSessions {
    sockets: Mutex<HashMap<String, Session>>,
    /// When each session was last marked as used by an HTTP request, so
    /// that requests do not each write to the database.
    touched: Mutex<HashMap<String, i64>>,
    next_socket: std::sync::atomic::AtomicU64,
}

/// The open sockets of one session.
struct Session {
    user: UserId,
    tx: watch::Sender<Option<Ended>>,
    open: HashMap<u64, OpenSocket>,
}

/// One open socket, as the admin console's "who is on line" shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OpenSocket {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// When it opened (UTC ms).
    pub since: i64,
}

/// A socket's view of its session: [`SessionWatch::ended`] completes when
/// the session ends. Dropping it forgets the socket.
pub struct SessionWatch {
    live: Arc<LiveSessions>,
    token_hash: String,
    id: u64,
    rx: watch::Receiver<Option<Ended>>,
}

impl SessionWatch {
    /// Completes when the session ends, with why.
    pub async fn ended(&mut self) -> Ended {
        loop {
            if let Some(why) = *self.rx.borrow_and_update() {
                return why;
            }
            if self.rx.changed().await.is_err() {
                // The registry dropped the entry without ending it: only
                // on shutdown. Wait for the shutdown instead.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        let mut map = self.live.sockets();
        if let Some(session) = map.get_mut(&self.token_hash) {
            session.open.remove(&self.id);
            if session.open.is_empty() {
                map.remove(&self.token_hash);
            }
        }
    }
}

/// A session's short id for the admin console: the first 16 hex digits of
/// its token's hash (which itself never leaves the server).
pub fn session_id(token_hash: &str) -> String {
    token_hash.chars().take(16).collect()
}

impl LiveSessions {
    fn sockets(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        // A poisoned lock only means a panic elsewhere mid-update; the map
        // is still usable.
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a socket under its session.
    pub fn watch(self: &Arc<Self>, token_hash: &str, socket: OpenSocket) -> SessionWatch {
        let id = self
            .next_socket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.sockets();
        let session = map.entry(token_hash.to_owned()).or_insert_with(|| Session {
            user: socket.user_id,
            tx: watch::channel(None).0,
            open: HashMap::new(),
        });
        session.open.insert(id, socket);
        let rx = session.tx.subscribe();
        drop(map);
        SessionWatch {
            live: self.clone(),
            token_hash: token_hash.to_owned(),
            id,
            rx,
        }
    }

    /// Ends every socket of this session.
    pub fn end(&self, token_hash: &str, why: Ended) {
        if let Some(session) = self.sockets().remove(token_hash) {
            let _ = session.tx.send(Some(why));
        }
        self.touched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token_hash);
    }

    /// Ends every socket of every session of this account (disabled, a new
    /// password): how many sessions had sockets.
    pub fn end_user(&self, user: UserId, why: Ended) -> usize {
        let hashes: Vec<String> = self
            .sockets()
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(h, _)| h.clone())
            .collect();
        for h in &hashes {
            self.end(h, why);
        }
        hashes.len()
    }

    /// Ends the session whose [`session_id`] this is; its token hash.
    pub fn end_by_id(&self, id: &str, why: Ended) -> Option<String> {
        let hash = self
            .sockets()
            .keys()
            .find(|h| session_id(h) == id)
            .cloned()?;
        self.end(&hash, why);
        Some(hash)
    }

    /// The sessions that have a socket open.
    pub fn with_sockets(&self) -> Vec<String> {
        self.sockets().keys().cloned().collect()
    }

    /// Every open socket with its session's id, oldest first.
    pub fn open_sockets(&self) -> Vec<(String, OpenSocket)> {
        let mut all: Vec<(String, OpenSocket)> = self
            .sockets()
            .iter()
            .flat_map(|(h, s)| s.open.values().map(move |o| (session_id(h), o.clone())))
            .collect();
        all.sort_by_key(|(_, o)| o.since);
        all
    }

    /// Whether an HTTP request on this session should mark it as used (at
    /// most once a minute per session).
    pub fn should_touch(&self, token_hash: &str, now: i64) -> bool {
        let mut map = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, at| now - *at < 60_000);
        }
        match map.get(token_hash) {
            Some(at) if now - *at < 60_000 => false,
            _ => {
                map.insert(token_hash.to_owned(), now);
                true
            }
        }
    }
}

/// Every `every`, checks the sessions with open sockets against the
/// database and ends those that are no longer valid. Runs until the
/// process stops.
pub async fn watch_sessions(
    live: Arc<LiveSessions>,
    store: Store,
    clock: Clock,
    every: Duration,
    idle_ms: i64,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = i64::MIN;
    loop {
        tick.tick().await;
        let now = clock.now_ms();
        // Every sixth check (a minute by default): sessions past their
        // expiry or idle too long are deleted, each with a
        // `session_expired` audit entry.
        let sweep_every = i64::try_from(every.as_millis().saturating_mul(6)).unwrap_or(i64::MAX);
        if now.saturating_sub(last_sweep) >= sweep_every {
            last_sweep = now;
            match store.expire_sessions(now, now - idle_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sessions = n, "sessions expired"),
                Err(e) => tracing::warn!(error = %e, "cannot sweep expired sessions; will retry"),
            }
        }
        let hashes = live.with_sockets();
        if hashes.is_empty() {
            continue;
        }
        match store.live_sessions(&hashes, now, now - idle_ms).await {
            Ok(still) => {
                for h in hashes.iter().filter(|h| !still.contains(*h)) {
                    tracing::info!("a session with open sockets has ended; closing them");
                    live.end(h, Ended::Revoked);
                }
            }
            // A database hiccup must not sign everybody out.
            Err(e) => tracing::warn!(error = %e, "cannot check live sessions; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ending_a_session_wakes_each_of_its_sockets_and_only_those() {
        let live = Arc::new(LiveSessions::default());
        let socket = |n| OpenSocket {
            user_id: UserId(n),
            username: format!("u{n}"),
            display_name: format!("U {n}"),
            role: Role::Clinician,
            since: 0,
        };
        let mut a1 = live.watch("a", socket(1));
        let mut a2 = live.watch("a", socket(1));
        let b = live.watch("b", socket(2));
        live.end("a", Ended::SignedOut);
        assert_eq!(a1.ended().await, Ended::SignedOut);
        assert_eq!(a2.ended().await, Ended::SignedOut);
        assert_eq!(live.with_sockets(), vec!["b".to_owned()]);
        assert_eq!(live.open_sockets().len(), 1);
        drop(b);
        assert!(
            live.with_sockets().is_empty(),
            "a closed socket is forgotten"
        );
        let mut c = live.watch("c", socket(3));
        let _d = live.watch("d", socket(4));
        assert_eq!(live.end_user(UserId(3), Ended::Revoked), 1);
        assert_eq!(c.ended().await, Ended::Revoked);
        assert_eq!(live.with_sockets(), vec!["d".to_owned()]);
    }
}
