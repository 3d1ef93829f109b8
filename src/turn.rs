//! ICE servers for clients, with time-limited TURN credentials.
//!
//! The TURN REST scheme that coturn checks with `use-auth-secret`:
//! username = `<expiry unix seconds>:<account>`,
//! password = base64(HMAC-SHA1(shared secret, username)). The secret never
//! leaves the server; a leaked credential stops working at its expiry.

use base64::Engine;
use hmac::{Hmac, Mac};
use signalling::IceServer;

use crate::settings::Settings;

/// The secret in the example configuration in `deploy/`.
pub const EXAMPLE_SECRET: &str = "change-me";
pub const MIN_SECRET_CHARS: usize = 32;

/// Refuses a TURN secret that is short enough to guess or the example's.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret == EXAMPLE_SECRET || secret.chars().count() < MIN_SECRET_CHARS {
        return Err(format!(
            "--turn-secret must be at least {MIN_SECRET_CHARS} characters and not the example's \
             {EXAMPLE_SECRET:?}: generate one with `openssl rand -base64 32` and put the same \
             value in coturn's static-auth-secret"
        ));
    }
    Ok(())
}

/// The ICE server list for one account at time `now_ms`. TURN credentials
/// go only to the accounts that make calls (stations and clinicians).
pub fn ice_servers(
    settings: &Settings,
    role: signalling::Role,
    account: &str,
    now_ms: i64,
) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !settings.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: settings.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    let calls = matches!(
        role,
        signalling::Role::Station | signalling::Role::Clinician
    );
    if let (true, false, Some(secret)) =
        (calls, settings.turn_urls.is_empty(), &settings.turn_secret)
    {
        let expiry = (now_ms + settings.turn_ttl_ms) / 1000;
        let (username, credential) = credential(secret, account, expiry);
        servers.push(IceServer {
            urls: settings.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

/// (username, password) valid until `expiry` (Unix seconds).
pub fn credential(secret: &str, account: &str, expiry: i64) -> (String, String) {
    // A colon in the account would confuse the TURN server's parsing.
    let username = format!("{expiry}:{}", account.replace(':', "_"));
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let password = match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalling::Role;

    #[test]
    fn credential_matches_the_turn_rest_scheme() {
        // Worked out independently with Python's hmac module.
        let (user, pass) = credential("north-cumbria-turn", "dr-patel", 1_795_500_000);
        assert_eq!(user, "1795500000:dr-patel");
        assert_eq!(pass, "BfbPDlY+w6yaDexWC6w8lBKCcHY=");
    }

    #[test]
    fn ice_servers_carry_stun_and_expiring_turn() {
        let mut s = Settings::for_tests("sqlite::memory:");
        assert!(ice_servers(&s, Role::Clinician, "x", 0).is_empty());
        s.stun_urls = vec!["stun:stun.example:3478".into()];
        s.turn_urls = vec!["turns:turn.example:443?transport=tcp".into()];
        s.turn_secret = Some("k".into());
        s.turn_ttl_ms = 3_600_000;
        let list = ice_servers(&s, Role::Clinician, "dr-a", 1_000_000_000_000);
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].username.as_deref(), Some("1000003600:dr-a"));
        assert!(list[1].credential.as_ref().is_some_and(|c| c.len() == 28));
        assert_eq!(ice_servers(&s, Role::Station, "room1", 0).len(), 2);
        for role in [Role::Manager, Role::Admin] {
            let list = ice_servers(&s, role, "manager", 0);
            assert_eq!(list.len(), 1, "STUN only for {role:?}");
            assert!(list[0].credential.is_none());
        }
    }

    #[test]
    fn short_or_example_turn_secrets_are_refused() {
        assert!(check_secret(EXAMPLE_SECRET).is_err());
        assert!(check_secret("short-secret").is_err());
        assert!(check_secret(&"k".repeat(31)).is_err());
        assert!(check_secret("4m8Xy1ZqV0s3oJb7T2rWc9LnE5aKd6Hf").is_ok());
    }
}
