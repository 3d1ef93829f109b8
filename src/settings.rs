//! Run-time settings of a server, independent of how they were given
//! (command line, environment, or a test building them directly).

use crate::reports::ReportSettings;
use signalling::EscalationPolicy;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// `sqlite://path/to/miulink.db` or `postgres://user:pass@host:port/db`
    pub database_url: String,
    /// Where first-start files go (the one-time admin password). `None`:
    /// the SQLite file's directory, or the current one on PostgreSQL.
    pub data_dir: Option<PathBuf>,
    /// How long the leader's lease lasts (PostgreSQL): a standby leads at
    /// most about this long after the leader dies; see `src/leader.rs`.
    pub lease_ms: u64,
    /// Seed clearly marked demo accounts (password `demo`).
    pub demo: bool,
    /// How long a lost connection's request or call is kept.
    pub disconnect_grace_ms: i64,
    /// How long a login lasts.
    pub session_ttl_ms: i64,
    /// STUN servers handed to clients, e.g. `stun:stun.example.nhs.uk:3478`.
    pub stun_urls: Vec<String>,
    /// Shown to nurses when no clinician is available.
    pub fallback_phone: Option<String>,
    /// The account (username) that answers stations' test calls.
    pub test_call_clinician: Option<String>,
    /// Serve the browser client from this directory instead of the copy
    /// built into the binary (for development).
    pub web_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// When unanswered requests are re-alerted and escalated, per urgency
    /// (immediate, urgent, routine).
    pub escalation: [EscalationPolicy; 3],
    /// TURN servers, e.g. `turns:turn.example.nhs.uk:443?transport=tcp`.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn `static-auth-secret`).
    pub turn_secret: Option<String>,
    /// How long TURN credentials handed to a client are valid.
    pub turn_ttl_ms: i64,
    /// Messages a connection may send per second, after a burst of
    /// `rate_burst`; past that they are dropped with `rate_limited`.
    pub rate_per_second: f64,
    pub rate_burst: f64,
    /// Clients send media only through the TURN servers (the browser's
    /// `iceTransportPolicy: "relay"`): for networks that must not expose
    /// addresses peer to peer, and for testing the TURN path.
    pub relay_only: bool,
    /// Answer targets, travel times and time zone of the dashboard.
    pub reports: ReportSettings,
    /// How often open WebSockets' sessions are checked against the
    /// database (a disabled account or a new password set from the command
    /// line ends them within this time).
    pub session_check_ms: u64,
    /// A session nobody has used (no open socket, no request) for this
    /// long has ended: a shared PC does not reopen the last user's session.
    pub session_idle_ms: i64,
    /// Live sessions one account may hold; the least recently used end.
    pub max_sessions_per_account: u32,
    /// Password checks (Argon2, 19 MiB each) that may run at once; beyond
    /// them a few wait, and the rest are answered 503 with Retry-After.
    pub login_concurrency: usize,
    /// What a local reference must look like (a regular expression over
    /// the whole reference).
    pub patient_ref_pattern: String,
    /// Proxies whose `X-Forwarded-For` is believed for the client address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Open TCP connections (WebSockets included) beyond which new ones are
    /// refused with 503.
    pub max_connections: usize,
    /// A client must send a request's headers within this time of the
    /// connection becoming ready for one (which is also how long an idle
    /// keep-alive connection is kept).
    pub header_timeout_ms: u64,
    /// Serve HTTPS (and WSS) with this certificate and key (PEM), reloaded
    /// on SIGHUP and when the files change. Cookies are then Secure.
    pub tls: Option<crate::tls::TlsFiles>,
    /// With TLS: also listen here for plain HTTP and answer every request
    /// with a redirect to HTTPS.
    pub redirect_http: Option<String>,
    /// Serve Prometheus metrics (and `/healthz` with every detail) on this
    /// address, a listener of its own; off when `None`.
    pub metrics_listen: Option<String>,
    /// Delete consults, their events and presence rows older than this many
    /// days, once a day; keep everything when `None`.
    pub retention_days: Option<u32>,
    /// Sign-in through the trust's identity provider (OpenID Connect).
    pub oidc: Option<crate::oidc::OidcSettings>,
    /// Who may still sign in with a password; `None`: everyone without a
    /// provider, stations (and break-glass admins) with one.
    pub local_login: Option<LocalLogin>,
}

/// Who may sign in with a password (`--local-login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalLogin {
    All,
    /// Stations (devices in treatment rooms) and break-glass admins.
    Stations,
    /// Break-glass admins only.
    Off,
}

impl LocalLogin {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalLogin::All => "all",
            LocalLogin::Stations => "stations",
            LocalLogin::Off => "off",
        }
    }
}

impl Settings {
    pub fn local_login(&self) -> LocalLogin {
        self.local_login.unwrap_or(if self.oidc.is_some() {
            LocalLogin::Stations
        } else {
            LocalLogin::All
        })
    }
}

/// The default local reference: 1 to 4 letters, an optional `-`, then 4 to
/// 10 digits, as MIU attendance numbers look (e.g. `MIU123456`,
/// `MIU-0412`). No spaces and no `/`, so no names and no dates written the
/// usual ways.
/// The leader's lease: 3 s, so that a standby leads within about 3.5 s of
/// the leader's death (it looks every lease / 6).
pub const DEFAULT_LEASE_MS: u64 = 3_000;

pub const DEFAULT_PATIENT_REF_PATTERN: &str = "^[A-Za-z]{1,4}-?[0-9]{4,10}$";
pub const DEFAULT_PATIENT_REF_HINT: &str = "1 to 4 letters, an optional '-', then 4 to 10 digits, \
     e.g. MIU123456 or MIU-0412: no spaces, never a name or a date of birth";

impl Settings {
    /// Settings for a test or a local run: loopback, port 0, given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            data_dir: None,
            lease_ms: DEFAULT_LEASE_MS,
            demo: false,
            disconnect_grace_ms: 60_000,
            session_ttl_ms: 12 * 3_600_000,
            stun_urls: Vec::new(),
            fallback_phone: None,
            test_call_clinician: None,
            web_dir: None,
            secure_cookies: false,
            escalation: signalling::Config::default().escalation,
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_ms: 2 * 3_600_000,
            rate_per_second: 50.0,
            rate_burst: 200.0,
            relay_only: false,
            reports: ReportSettings::default(),
            session_check_ms: 10_000,
            session_idle_ms: 30 * 60_000,
            max_sessions_per_account: 10,
            login_concurrency: 2,
            patient_ref_pattern: DEFAULT_PATIENT_REF_PATTERN.to_owned(),
            trusted_proxies: Vec::new(),
            max_connections: 20_000,
            header_timeout_ms: 10_000,
            tls: None,
            redirect_http: None,
            metrics_listen: None,
            retention_days: None,
            oidc: None,
            local_login: None,
        }
    }
}

/// Parses `immediate=60/120,urgent=150/300,routine=450/900`: for each
/// urgency, seconds to the re-alert and to the escalation. Urgencies left
/// out keep their defaults.
pub fn parse_escalation(spec: &str) -> Result<[EscalationPolicy; 3], String> {
    let mut out = signalling::Config::default().escalation;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let err = || {
            format!(
                "cannot read {part:?}; write urgency=REALERT/ESCALATE in seconds, \
                 e.g. immediate=60/120,urgent=150/300,routine=450/900"
            )
        };
        let (name, times) = part.split_once('=').ok_or_else(err)?;
        let urgency = signalling::Urgency::parse(name.trim()).ok_or_else(err)?;
        let (a, b) = times.split_once('/').ok_or_else(err)?;
        let a: f64 = a.trim().parse().map_err(|_| err())?;
        let b: f64 = b.trim().parse().map_err(|_| err())?;
        if !(a > 0.0 && b >= a && b.is_finite()) {
            return Err(format!(
                "{part:?}: the escalation must come after the re-alert, both above zero"
            ));
        }
        let index = signalling::Urgency::ALL
            .iter()
            .position(|u| *u == urgency)
            .unwrap_or(0);
        out[index] = EscalationPolicy {
            realert_after_ms: (a * 1000.0) as i64,
            escalate_after_ms: (b * 1000.0) as i64,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalation_spec_parses_and_refuses_nonsense() {
        let p = parse_escalation("urgent=10/20.5").unwrap();
        assert_eq!(
            p[1],
            EscalationPolicy {
                realert_after_ms: 10_000,
                escalate_after_ms: 20_500
            }
        );
        assert_eq!(p[0], signalling::Config::default().escalation[0]);
        assert!(parse_escalation("urgent=20/10").is_err());
        assert!(parse_escalation("soon=1/2").is_err());
        assert!(parse_escalation("urgent=1").is_err());
    }
}

/// What a local reference must look like: the trust's pattern (or the
/// default), matched against the whole reference.
#[derive(Debug)]
pub struct PatientRefRule {
    regex: regex::Regex,
    source: String,
}

impl PatientRefRule {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            format!("--patient-ref-pattern {pattern:?} is not a regular expression: {e}")
        })?;
        for name_like in [
            "SMITH JOHN 1970",
            "J SMITH 12/03/1970",
            "Smith 1",
            "John Smith",
        ] {
            if regex.is_match(name_like) && pattern != DEFAULT_PATIENT_REF_PATTERN {
                return Err(format!(
                    "--patient-ref-pattern {pattern:?} accepts {name_like:?}, which looks like a name; \
                     a reference must not be able to carry one (allow no spaces)"
                ));
            }
        }
        Ok(PatientRefRule {
            regex,
            source: pattern.to_owned(),
        })
    }

    pub fn accepts(&self, reference: &str) -> bool {
        self.regex.is_match(reference)
    }

    /// What the station shows under the field, and the error says.
    pub fn hint(&self) -> String {
        if self.source == DEFAULT_PATIENT_REF_PATTERN {
            DEFAULT_PATIENT_REF_HINT.to_owned()
        } else {
            format!(
                "as the trust's local references look (pattern {}): never a name or a date of birth",
                self.source
            )
        }
    }
}

#[cfg(test)]
mod patient_ref_tests {
    use super::*;

    #[test]
    fn the_default_reference_pattern_refuses_names_and_dates() {
        let rule = PatientRefRule::new(DEFAULT_PATIENT_REF_PATTERN).unwrap();
        for bad in [
            "SMITH JOHN 1970",
            "J SMITH 12/03/1970",
            "Smith 1",
            "Smith1",
            "12/03/1970",
            "SMITHJ1970",
            "MIU 123456",
            "MIU-2026/77",
            "S-12/03/1970",
        ] {
            assert!(!rule.accepts(bad), "{bad:?} was accepted");
        }
        for good in ["MIU123456", "M20261234", "AB0042", "MIU-0412"] {
            assert!(rule.accepts(good), "{good:?}");
        }
        assert!(
            PatientRefRule::new("[A-Z ]+[0-9]+").is_err(),
            "a pattern that lets names through"
        );
        assert!(PatientRefRule::new("(").is_err());
        assert!(PatientRefRule::new("[0-9]{6,8}")
            .unwrap()
            .accepts("1234567"));
    }
}
