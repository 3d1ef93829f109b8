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
use std::sync::Mutex;

pub const MIN_PASSWORD_CHARS: usize = 10;

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

/// Checks a new password against the local policy; says what is wrong.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "passwords must be at least {MIN_PASSWORD_CHARS} characters; a few unrelated words work well"
        ));
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

/// Slows down password guessing: after `max_failures` failed logins for one
/// username within `window_ms`, further attempts are refused until the
/// window has passed. Kept in memory: a restart clears it, which is fine.
pub struct LoginLimiter {
    max_failures: u32,
    window_ms: i64,
    failures: Mutex<HashMap<String, (u32, i64)>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window_ms: i64) -> Self {
        LoginLimiter {
            max_failures,
            window_ms,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Milliseconds to wait before trying again, if locked out.
    pub fn locked_for(&self, username: &str, now: i64) -> Option<i64> {
        // A poisoned lock only means another request panicked mid-update;
        // the map is still usable.
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = map.get(&username.to_lowercase()).copied()?;
        let left = since + self.window_ms - now;
        (count >= self.max_failures && left > 0).then_some(left)
    }

    pub fn failed(&self, username: &str, now: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            let window = self.window_ms;
            map.retain(|_, (_, since)| *since + window > now);
        }
        let entry = map.entry(username.to_lowercase()).or_insert((0, now));
        if entry.1 + self.window_ms <= now {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&username.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn limiter_locks_after_failures_and_unlocks_later() {
        let l = LoginLimiter::new(3, 1000);
        for _ in 0..3 {
            assert!(l.locked_for("Dr", 0).is_none());
            l.failed("dr", 0);
        }
        assert_eq!(l.locked_for("DR", 100), Some(900));
        assert!(l.locked_for("dr", 1000).is_none());
        l.succeeded("dr");
        assert!(l.locked_for("dr", 100).is_none());
    }
}
