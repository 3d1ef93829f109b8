//! Passwords, session tokens and login throttling.
//!
//! Passwords are hashed with Argon2id (the `argon2` crate's defaults). Session
//! tokens are 32 random bytes; only their SHA-256 is stored, so a copy of the
//! database does not let anyone log in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub const MIN_PASSWORD_CHARS: usize = 12;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Constant-time with respect to the password; false on any malformed hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Common passwords and stems, shipped with the binary.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Runs of keys or characters people type as passwords (checked forwards
/// and backwards, from any starting point).
const SEQUENCES: &[&str] = &[
    "01234567890123456789012345678901234567890",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnmqwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
    "qazwsxedcrfvtgbyhnujmikolp",
];

fn is_common(candidate: &str) -> bool {
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|l| l == candidate)
}

/// [`verify_password`] with a caller's Argon2 work area (grown to the
/// hash's memory cost and kept for the next check).
pub fn verify_password_in(hash: &str, password: &str, area: &mut Vec<argon2::Block>) -> bool {
    use argon2::password_hash::Output;
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    // A hash asking for absurd memory is refused rather than obeyed.
    if params.block_count() > 256 * 1024 {
        return false;
    }
    area.resize(params.block_count(), argon2::Block::default());
    let mut out = vec![0u8; expected.len()];
    let ctx = Argon2::new(algorithm, version, params);
    if ctx
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut area[..])
        .is_err()
    {
        return false;
    }
    // Output's comparison takes the same time wherever they differ.
    Output::new(&out).is_ok_and(|o| o == expected)
}

/// Checks a new password against the local policy (NCSC guidance: length
/// over complexity, and no password from the list attackers try first);
/// says what is wrong.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "passwords must be at least {MIN_PASSWORD_CHARS} characters; three or four unrelated words work well"
        ));
    }
    let common = || {
        Err("that password is one of the first that attackers try; choose three or four unrelated words".to_owned())
    };
    let lower = password.to_lowercase();
    // One character, or a short piece, over and over ("aaaaaaaaaaaa", "abcabcabcabc").
    for unit in 1..=4 {
        let head: String = chars.iter().take(unit).collect();
        if chars.len().is_multiple_of(unit) && head.repeat(chars.len() / unit) == password {
            return Err("a password cannot be one character or a few characters repeated; choose three or four unrelated words".into());
        }
    }
    if is_common(&lower) {
        return common();
    }
    // A common stem with digits and symbols around it ("Password123!"), or
    // a stem repeated ("passwordpassword").
    let stem: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    let letters_only_apart_from_stem = lower
        .chars()
        .filter(|c| !c.is_alphabetic())
        .all(|c| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ');
    if letters_only_apart_from_stem {
        if stem.is_empty() {
            // Nothing but digits and symbols: a sequence or a date, mostly.
            if SEQUENCES.iter().any(|s| s.contains(lower.as_str())) {
                return common();
            }
        } else if is_common(&stem) {
            return common();
        } else {
            for parts in 2..=4 {
                if stem.len().is_multiple_of(parts)
                    && is_common(&stem[..stem.len() / parts])
                    && stem[..stem.len() / parts].repeat(parts) == stem
                {
                    return common();
                }
            }
        }
    }
    let reversed: String = lower.chars().rev().collect();
    if SEQUENCES
        .iter()
        .any(|s| s.contains(lower.as_str()) || s.contains(reversed.as_str()))
    {
        return Err(
            "a run of keys or letters is easy to guess; choose three or four unrelated words"
                .into(),
        );
    }
    Ok(())
}

pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A password that is easy to read aloud and type: 4 groups of 5 letters
/// and digits without look-alikes (no 0/O, 1/l/I).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..4)
        .map(|_| {
            (0..5)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Bounds the password checks running at once: Argon2 takes 19 MiB and
/// tens of milliseconds of a core each, so an unbounded burst of logins
/// would take the server's memory and every real user's login with it.
/// `slots` checks run at once, up to `16 * slots` wait for one (waiting
/// costs next to nothing; each address may have only
/// [`ThrottleConfig::in_flight_per_address`] in flight, so one attacker
/// cannot fill the queue), and beyond that the check is refused at once as
/// [`VerifyError::Busy`] (503 with Retry-After), as is a wait over 5 s.
///
/// Each running check uses one of `slots` Argon2 work areas kept for the
/// life of the server, so memory stays flat: allocating 19 MiB per check
/// on whichever thread ran it let the allocator keep a copy per thread.
pub struct Verifier {
    slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    work_areas: Mutex<Vec<Vec<argon2::Block>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("too many password checks at once")]
    Busy,
    #[error("the password check failed: {0}")]
    Failed(String),
}

impl Verifier {
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Verifier {
            slots: tokio::sync::Semaphore::new(slots),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: 16 * slots,
            work_areas: Mutex::new(Vec::new()),
        }
    }

    /// Checks `password` against `hash` on a blocking thread, once a slot
    /// is free.
    pub async fn verify(&self, hash: String, password: String) -> Result<bool, VerifyError> {
        use std::sync::atomic::Ordering;
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = if queued >= self.max_waiting {
            None
        } else {
            tokio::time::timeout(std::time::Duration::from_secs(5), self.slots.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Some(permit) = permit else {
            return Err(VerifyError::Busy);
        };
        // At most `slots` work areas exist: one per permit.
        let mut area = self
            .work_areas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let (ok, area) = tokio::task::spawn_blocking(move || {
            let ok = verify_password_in(&hash, &password, &mut area);
            (ok, area)
        })
        .await
        .map_err(|e| VerifyError::Failed(e.to_string()))?;
        self.work_areas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(area);
        drop(permit);
        Ok(ok)
    }
}

/// The longest username accepted anywhere.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Usernames are 1 to 64 letters, digits and `- _ . @`: checked before
/// anything else (the throttle's maps, the database, the log) sees one.
pub fn check_username(username: &str) -> Result<(), String> {
    let ok = !username.is_empty()
        && username.len() <= MAX_USERNAME_CHARS
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "usernames are 1 to {MAX_USERNAME_CHARS} letters, digits and - _ . @ (e.g. millom-room2)"
        ))
    }
}

/// How hard the login throttle pushes back.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// The window over which failures are counted.
    pub window_ms: i64,
    /// Failed logins one address may make in a window, whatever usernames
    /// it tries (a whole MIU behind one NAT address shares this).
    pub per_address: u32,
    /// Failures of one account from one address before each further try
    /// must wait (1 s, doubling, at most `max_backoff_ms`).
    pub free_tries: u32,
    pub max_backoff_ms: i64,
    /// Failed logins across the whole server in a window beyond which an
    /// address that has already failed in this window backs off between
    /// tries as a pair does (a distributed guess). Addresses with no
    /// failures, a real user's usually, are not held back.
    pub global: u32,
    /// Logins from one address in the password checks' queue at once;
    /// more wait their turn apart (up to 5 s), so that one address cannot
    /// fill the queue that every other user's login waits in.
    pub in_flight_per_address: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window_ms: 10 * 60_000,
            per_address: 30,
            free_tries: 3,
            max_backoff_ms: 60_000,
            global: 300,
            in_flight_per_address: 2,
        }
    }
}

#[derive(Clone, Copy)]
struct Window {
    count: u32,
    since: i64,
    /// The last counted attempt.
    last: i64,
}

impl Window {
    fn new(now: i64) -> Self {
        Window {
            count: 0,
            since: now,
            last: now,
        }
    }

    fn current(&mut self, now: i64, window_ms: i64) -> &mut Self {
        if now - self.since >= window_ms {
            *self = Window::new(now);
        }
        self
    }
}

/// 1 s doubling with each failure past `free`, at most `max_ms`.
fn backoff_ms(failures: u32, free: u32, max_ms: i64) -> i64 {
    if failures < free {
        return 0;
    }
    (1000i64 << (failures - free).min(20)).min(max_ms)
}

#[derive(Clone, Copy)]
struct Pair {
    failures: u32,
    last: i64,
}

#[derive(Default)]
struct ThrottleState {
    addresses: HashMap<IpAddr, Window>,
    in_flight: HashMap<IpAddr, std::sync::Arc<tokio::sync::Semaphore>>,
    /// Only for accounts that exist: an unknown username never gets state
    /// of its own (it cannot lock anybody out, nor fill memory).
    pairs: HashMap<(i64, IpAddr), Pair>,
    global: Option<Window>,
}

/// Slows password guessing down without locking the real user out.
///
/// Each attempt is counted before its password is checked (concurrent
/// guesses cannot all slip through), and taken back if it succeeds:
/// * per address: at most `per_address` failures per window;
/// * per account and address: after `free_tries` failures, a back-off
///   between tries, doubling to at most a minute (never a lock-out, and
///   only from that address: the real user elsewhere is not slowed);
/// * across the server: past `global` failures in a window, addresses that
///   have failed in it wait for the window to end.
///
/// Kept in memory: a restart clears it, which is fine.
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Mutex<ThrottleState>,
}

/// An attempt the throttle let through; [`LoginThrottle::succeeded`] takes
/// it back.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    address: IpAddr,
    account: Option<i64>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        LoginThrottle {
            config,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        // A poisoned lock only means another request panicked mid-update;
        // the maps are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts an attempt from `address` for `account` (None: no such
    /// username), or says how many milliseconds to wait first.
    pub fn attempt(&self, address: IpAddr, account: Option<i64>, now: i64) -> Result<Attempt, i64> {
        let c = self.config;
        let mut st = self.state();
        if st.addresses.len() > 50_000 {
            st.addresses.retain(|_, w| now - w.since < c.window_ms);
        }
        if st.pairs.len() > 50_000 {
            st.pairs
                .retain(|_, p| now - p.last < c.max_backoff_ms.max(c.window_ms));
        }
        let global = st
            .global
            .get_or_insert(Window::new(now))
            .current(now, c.window_ms)
            .to_owned();
        let addr = *st
            .addresses
            .entry(address)
            .or_insert(Window::new(now))
            .current(now, c.window_ms);
        if addr.count >= c.per_address {
            return Err(addr.since + c.window_ms - now);
        }
        if global.count >= c.global && addr.count > 0 {
            let left = addr.last + backoff_ms(addr.count, 1, c.max_backoff_ms) - now;
            if left > 0 {
                return Err(left);
            }
        }
        if let Some(id) = account {
            if let Some(p) = st.pairs.get(&(id, address)) {
                let left = p.last + backoff_ms(p.failures, c.free_tries, c.max_backoff_ms) - now;
                if left > 0 {
                    return Err(left);
                }
            }
            let p = st.pairs.entry((id, address)).or_insert(Pair {
                failures: 0,
                last: now,
            });
            p.failures += 1;
            p.last = now;
        }
        if let Some(w) = st.addresses.get_mut(&address) {
            w.count += 1;
            w.last = now;
        }
        if let Some(g) = st.global.as_mut() {
            g.count += 1;
        }
        Ok(Attempt { address, account })
    }

    /// Waits (up to 5 s) for this attempt's turn among its address's
    /// attempts to enter the password checks' queue; None if it did not come.
    pub async fn address_turn(
        &self,
        attempt: &Attempt,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let slots = {
            let mut st = self.state();
            if st.in_flight.len() > 10_000 {
                // Addresses with nothing in flight or waiting.
                st.in_flight
                    .retain(|_, sem| std::sync::Arc::strong_count(sem) > 1);
            }
            let per = self.config.in_flight_per_address.max(1) as usize;
            st.in_flight
                .entry(attempt.address)
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(per)))
                .clone()
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), slots.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The attempt was a good password: it does not count.
    pub fn succeeded(&self, attempt: Attempt) {
        self.take_back(attempt);
        if let Some(id) = attempt.account {
            self.state().pairs.remove(&(id, attempt.address));
        }
    }

    /// The password was never checked (the server was too busy): the
    /// attempt does not count against anybody.
    pub fn take_back(&self, attempt: Attempt) {
        let mut st = self.state();
        if let Some(id) = attempt.account {
            if let Some(p) = st.pairs.get_mut(&(id, attempt.address)) {
                p.failures = p.failures.saturating_sub(1);
            }
        }
        if let Some(w) = st.addresses.get_mut(&attempt.address) {
            w.count = w.count.saturating_sub(1);
        }
        if let Some(g) = st.global.as_mut() {
            g.count = g.count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checking_in_a_kept_work_area_agrees_with_the_library() {
        let h = hash_password("correct horse battery").unwrap();
        let mut area = Vec::new();
        assert!(verify_password_in(&h, "correct horse battery", &mut area));
        assert!(!verify_password_in(&h, "correct horse batterz", &mut area));
        assert!(!verify_password_in("not a hash", "x", &mut area));
        let blocks = area.len();
        assert!(verify_password_in(&h, "correct horse battery", &mut area));
        assert_eq!(area.len(), blocks, "the same area is used again");
        assert_eq!(blocks * 1024, 19 * 1024 * 1024, "19 MiB, the default cost");
    }

    #[test]
    fn hashes_verify_and_tokens_differ() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(new_token(), new_token());
        assert_eq!(token_hash("a").len(), 64);
        assert_eq!(random_password().len(), 23);
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn backoff_slows_one_address_for_one_account_and_never_locks_the_real_user_out() {
        let t = LoginThrottle::new(ThrottleConfig::default());
        for _ in 0..3 {
            t.attempt(A, Some(7), 0).expect("free tries");
        }
        assert_eq!(t.attempt(A, Some(7), 10).unwrap_err(), 990, "then 1 s");
        t.attempt(A, Some(7), 1000).expect("after the wait");
        assert_eq!(t.attempt(A, Some(7), 1000).unwrap_err(), 2000, "doubling");
        // The same account from another address (the real user) is not held back.
        let real = t
            .attempt(B, Some(7), 1001)
            .expect("the real user gets through");
        t.succeeded(real);
        // Unknown usernames never build state of their own.
        for i in 0..20 {
            t.attempt(B, None, 2000 + i)
                .expect("unknown usernames only count per address");
        }
        assert!(t.state().pairs.keys().all(|(id, _)| *id == 7));
    }

    #[test]
    fn attempts_are_counted_before_checking_so_a_burst_is_bounded_per_address() {
        let t = LoginThrottle::new(ThrottleConfig::default());
        // 100 guesses at once, none finished: only `per_address` get through.
        let through = (0..100).filter(|_| t.attempt(A, None, 0).is_ok()).count();
        assert_eq!(through, 30);
        assert!(
            t.attempt(B, None, 0).is_ok(),
            "another address is unaffected"
        );
        assert!(t.attempt(A, None, 10 * 60_000).is_ok(), "the window ends");
    }

    #[test]
    fn past_the_global_bound_only_addresses_that_failed_wait() {
        let t = LoginThrottle::new(ThrottleConfig {
            global: 5,
            ..ThrottleConfig::default()
        });
        let addrs: Vec<IpAddr> = (0..5u8)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i)))
            .collect();
        for a in &addrs {
            t.attempt(*a, None, 0).unwrap();
        }
        assert_eq!(
            t.attempt(addrs[0], None, 1).unwrap_err(),
            999,
            "a guessing address backs off"
        );
        assert!(
            t.attempt(addrs[0], None, 1000).is_ok(),
            "for a second, not the window"
        );
        assert!(
            t.attempt(B, Some(1), 1).is_ok(),
            "a fresh address does not wait"
        );
        // A check that never ran (the server was busy) counts against nobody.
        let c = ThrottleConfig::default();
        let t = LoginThrottle::new(c);
        for _ in 0..c.per_address + 5 {
            let a = t.attempt(A, Some(7), 0).unwrap();
            t.take_back(a);
        }
        assert!(t.attempt(A, Some(7), 0).is_ok());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason_and_good_ones_pass() {
        for weak in [
            "aaaaaaaaaa",
            "          ",
            "password12",
            "aaaaaaaaaaaa",
            "            ",
            "password1234",
            "Password123!",
            "passwordpassword",
            "qwertyuiop12",
            "123456789012",
            "abcabcabcabc",
            "abcdefghijklm",
            "0987654321098",
            "Millom2026!!",
            "welcome12345",
        ] {
            assert!(
                check_password_policy(weak).is_err(),
                "{weak:?} was accepted"
            );
        }
        for good in [
            "correct horse battery",
            "test-password-123",
            "kettle-orchard-piano",
            "Tyre swing on the fells",
        ] {
            assert_eq!(check_password_policy(good), Ok(()), "{good:?}");
        }
        assert!(check_password_policy(&random_password()).is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_password_checks_is_bounded_and_the_excess_refused_at_once() {
        let v = std::sync::Arc::new(Verifier::new(2));
        let hash = hash_password("correct horse battery").unwrap();
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let (v, hash) = (v.clone(), hash.clone());
                tokio::spawn(async move { v.verify(hash, "wrong".into()).await })
            })
            .collect();
        let mut busy = 0;
        let mut checked = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(VerifyError::Busy) => busy += 1,
                Ok(false) => checked += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(busy + checked, 60);
        assert!(
            busy >= 60 - 2 - 32,
            "at most 2 running and 32 waiting: {checked} checked"
        );
        assert!(
            v.verify(hash, "correct horse battery".into())
                .await
                .unwrap(),
            "free again afterwards"
        );
    }

    #[test]
    fn usernames_are_short_and_plain() {
        assert!(check_username("millom-room2").is_ok());
        assert!(check_username(&"a".repeat(64)).is_ok());
        assert!(check_username(&"a".repeat(65)).is_err());
        assert!(check_username("dr\nINFO forged").is_err());
        assert!(check_username("dr patel").is_err());
        assert!(check_username("").is_err());
    }
}
