//! The `miulink` command line. Every option of `serve` can also be given
//! as an environment variable (shown in `miulink serve --help`).

use crate::reports::settings::{self, ReportSettings};
use crate::settings::Settings;
use crate::startup::{self, Application};
use crate::store::Store;
use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use signalling::Role;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "miulink",
    version,
    about = "MIU Link: live video consults between a Minor Injuries Unit and A&E"
)]
pub struct Cli {
    /// The database: `sqlite://path/to/miulink.db` (created on first use),
    /// or `postgres://user:password@host:5432/database` (an existing, empty
    /// or MIU Link database; the schema is created on first use).
    #[arg(
        long = "database",
        global = true,
        env = "MIULINK_DATABASE_URL",
        default_value = "sqlite://miulink.db"
    )]
    pub database_url: String,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// `miulink` with no subcommand serves, with these options.
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Place a synthetic test call through a running server and time each
    /// step (for monitoring). Exit code 0 ok, 1 slow, 2 failed.
    #[cfg(feature = "probe")]
    Probe(crate::probe::ProbeArgs),
    /// Fill the log with realistic synthetic consult history (marked
    /// synthetic) to try the dashboard or measure it. Run it while the
    /// server is stopped: new consults take the next ids.
    Seed(SeedArgs),
    /// Move an installation to another database (say from SQLite on one
    /// machine to PostgreSQL for two instances): accounts, sessions, the
    /// whole log with its events and the presence log, with their ids.
    /// Stop the server first. The target must be empty (a new database);
    /// row counts are checked on both sides afterwards, and the report
    /// cache is rebuilt on the target.
    MigrateDb(MigrateDbArgs),
    /// Copy a running server's SQLite database to a file, consistently
    /// (every consult committed before the backup began, each whole). Safe
    /// while the server writes. For PostgreSQL use pg_dump.
    Backup(BackupArgs),
    /// Put a backup made by `miulink backup` back as the database given by
    /// --database. Stop the server first; the database it replaces is kept
    /// beside it (renamed, not deleted).
    Restore(RestoreArgs),
}

#[derive(Args, Debug, Clone)]
pub struct BackupArgs {
    /// The file to write, e.g. /var/backups/miulink/miulink-2026-12-08.db
    /// (never overwritten; owner-only).
    #[arg(long)]
    pub to: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct RestoreArgs {
    /// The backup to put back.
    #[arg(long)]
    pub from: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct MigrateDbArgs {
    /// The database to copy from, e.g. sqlite:///var/lib/miulink/miulink.db
    #[arg(long)]
    pub from: String,
    /// The new, empty database to copy into, e.g.
    /// postgres://miulink:PASSWORD@db.example.nhs.uk:5432/miulink
    #[arg(long)]
    pub to: String,
}

#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// How many consults to generate.
    #[arg(long, default_value_t = 10_000)]
    pub consults: u64,
    /// Over how many days, ending now.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// The random seed: the same seed, count and days give the same history.
    #[arg(long, default_value_t = 1)]
    pub rng_seed: u64,
    /// Local time zone for the evening and weekend peaks.
    #[arg(long, env = "MIULINK_TIMEZONE", default_value = "Europe/London", value_parser = settings::parse_timezone)]
    pub timezone: chrono_tz::Tz,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "MIULINK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Where first-start files go (the one-time admin password). Default:
    /// the SQLite database's directory, or the current directory with
    /// PostgreSQL.
    #[arg(long, env = "MIULINK_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// With PostgreSQL, several instances may run against one database:
    /// one leads, the others stand by. The leader's lease in seconds: a
    /// standby leads within about this long (plus a sixth) of the leader's
    /// death. Shorter means faster takeover but a leader steps down after
    /// a shorter database stall (at three quarters of the lease without a
    /// renewal); see deploy/README.md.
    #[arg(long, env = "MIULINK_LEASE_SECONDS", default_value_t = 3.0, value_parser = parse_lease_seconds)]
    pub lease_seconds: f64,
    /// Create clearly marked demo accounts (password "demo"). Never on a
    /// server that sees patients.
    #[arg(long, env = "MIULINK_DEMO")]
    pub demo: bool,
    /// Seconds a lost connection's request or call is held before it is
    /// ended as abandoned or disconnected.
    #[arg(long, env = "MIULINK_DISCONNECT_GRACE_SECONDS", default_value_t = 60)]
    pub disconnect_grace_seconds: u32,
    /// Hours a login lasts.
    #[arg(long, env = "MIULINK_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u32,
    /// A STUN server for clients (repeatable), e.g. stun:stun.example.nhs.uk:3478.
    #[arg(long = "stun-url", env = "MIULINK_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,
    /// Phone number shown to nurses when no clinician is available.
    #[arg(long, env = "MIULINK_FALLBACK_PHONE")]
    pub fallback_phone: Option<String>,
    /// The account that answers nurses' test calls (a monitoring clinician
    /// running `miulink probe --role clinician-only`); stations then offer
    /// a "Make a test call" button.
    #[arg(long, env = "MIULINK_TEST_CALL_CLINICIAN")]
    pub test_call_clinician: Option<String>,
    /// Serve the browser client from this directory (development) instead
    /// of the copy built into the binary.
    #[arg(long, env = "MIULINK_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Mark the session cookie Secure. Set this when users reach MIU Link
    /// over HTTPS (for example behind a TLS-terminating proxy).
    #[arg(long, env = "MIULINK_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// When nobody answers: seconds to re-alert every available clinician
    /// and to escalate to accounts with an escalation duty, per urgency.
    #[arg(
        long,
        env = "MIULINK_ESCALATION",
        default_value = "immediate=60/120,urgent=150/300,routine=450/900",
        value_parser = crate::settings::parse_escalation
    )]
    pub escalation: [signalling::EscalationPolicy; 3],
    /// A TURN server for clients (repeatable), e.g.
    /// turns:turn.example.nhs.uk:443?transport=tcp. Needs --turn-secret.
    #[arg(long = "turn-url", env = "MIULINK_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn static-auth-secret).
    /// Prefer the environment variable to keep it out of process listings.
    #[arg(long, env = "MIULINK_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Hours TURN credentials handed to a client stay valid (renewed at half).
    #[arg(long, env = "MIULINK_TURN_TTL_HOURS", default_value_t = 2)]
    pub turn_ttl_hours: u32,
    /// Messages one connection may send per second (after a burst of four
    /// times as many); the excess is dropped with a `rate_limited` error.
    #[arg(long, env = "MIULINK_MAX_MESSAGES_PER_SECOND", default_value_t = 50)]
    pub max_messages_per_second: u32,
    /// Which network paths calls may use: `all` (direct when possible,
    /// else TURN) or `relay` (only through the TURN servers; needs
    /// --turn-url and --turn-secret).
    #[arg(long, env = "MIULINK_ICE_TRANSPORT_POLICY", value_enum, default_value_t = IcePolicyArg::All)]
    pub ice_transport_policy: IcePolicyArg,
    /// Answer target for immediate requests, in minutes (decimals allowed).
    #[arg(long, env = "MIULINK_TARGET_IMMEDIATE_MINUTES", default_value = "2", value_parser = settings::parse_target_minutes)]
    pub target_immediate_minutes: f64,
    /// Answer target for urgent requests, in minutes.
    #[arg(long, env = "MIULINK_TARGET_URGENT_MINUTES", default_value = "5", value_parser = settings::parse_target_minutes)]
    pub target_urgent_minutes: f64,
    /// Answer target for routine requests, in minutes.
    #[arg(long, env = "MIULINK_TARGET_ROUTINE_MINUTES", default_value = "15", value_parser = settings::parse_target_minutes)]
    pub target_routine_minutes: f64,
    /// The share of requests (percent) the trust aims to answer within
    /// their target: the dashboard says whether it is met.
    #[arg(long, env = "MIULINK_TARGET_SHARE_PERCENT", default_value_t = 90)]
    pub target_share_percent: u8,
    /// Minutes each way from a site to A&E, as SITE=MINUTES (repeatable;
    /// list every site, the default is only Millom=50).
    #[arg(long = "travel-minutes", env = "MIULINK_TRAVEL_MINUTES", value_delimiter = ',', default_value = "Millom=50", value_parser = settings::parse_travel)]
    pub travel_minutes: Vec<(String, u32)>,
    /// The trust's time zone: days and hours in reports are local.
    #[arg(long, env = "MIULINK_TIMEZONE", default_value = "Europe/London", value_parser = settings::parse_timezone)]
    pub timezone: chrono_tz::Tz,
    /// Minutes a sign-in lasts unused (no open screen, no request) before it
    /// ends, so that a shared PC does not reopen the last user's session.
    #[arg(long, env = "MIULINK_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u32,
    /// Live sign-ins one account may hold; beyond that the least recently
    /// used ends.
    #[arg(long, env = "MIULINK_MAX_SESSIONS_PER_ACCOUNT", default_value_t = 10)]
    pub max_sessions_per_account: u32,
    /// Password checks that may run at once (each takes 19 MiB and tens of
    /// milliseconds); more logins at once wait briefly or get 503.
    #[arg(long, env = "MIULINK_LOGIN_CONCURRENCY", default_value_t = 2)]
    pub login_concurrency: usize,
    /// What a local reference must look like: a regular expression over
    /// the whole reference. The default is 1 to 4 letters then 4 to 10
    /// digits (e.g. MIU123456); a pattern that lets a name through is refused.
    #[arg(long, env = "MIULINK_PATIENT_REF_PATTERN", default_value = crate::settings::DEFAULT_PATIENT_REF_PATTERN)]
    pub patient_ref_pattern: String,
    /// A reverse proxy (its address) whose X-Forwarded-For header is
    /// believed for the client's address in the log and the login throttle
    /// (repeatable).
    #[arg(
        long = "trusted-proxy",
        env = "MIULINK_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Open connections (WebSockets included) beyond which new ones are
    /// refused with 503 and Retry-After.
    #[arg(long, env = "MIULINK_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; also how long an
    /// idle keep-alive connection is kept.
    #[arg(long, env = "MIULINK_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_timeout_seconds: u32,
    /// Serve HTTPS (and WSS) on --listen with this certificate chain (PEM,
    /// the server's certificate first). Reloaded on SIGHUP and when the
    /// file changes; a bad new one is refused and the old one kept.
    #[arg(long, env = "MIULINK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Keep it
    /// readable only by the service's user.
    #[arg(long, env = "MIULINK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// With --tls-cert: also listen on this address (e.g. 0.0.0.0:80) for
    /// plain HTTP and redirect every request to HTTPS.
    #[arg(long, env = "MIULINK_REDIRECT_HTTP", requires = "tls_cert")]
    pub redirect_http: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (and /healthz with
    /// every detail) on a listener of its own, e.g. 127.0.0.1:9464. Keep it
    /// off the public network. Default: off.
    #[arg(long, env = "MIULINK_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Delete consults (with their events) and presence records older than
    /// this many days, once a day. Default: keep everything. The session
    /// log is not the clinical record; see the README on retention.
    #[arg(long, env = "MIULINK_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,
    #[command(flatten)]
    pub sso: SsoArgs,
}

/// Sign-in through the trust's identity provider (OpenID Connect: NHS Care
/// Identity Service 2, Entra ID). See README, "Single sign-on".
#[derive(Args, Debug, Clone, Default)]
pub struct SsoArgs {
    /// The address users reach MIU Link at, e.g. https://miulink.example.nhs.uk;
    /// the provider sends them back to {public-url}/auth/oidc/callback.
    #[arg(long, env = "MIULINK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The provider's issuer URL (its /.well-known/openid-configuration is
    /// read from there).
    #[arg(long, env = "MIULINK_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// MIU Link's client id at the provider.
    #[arg(long, env = "MIULINK_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// Client authentication by a shared secret (client_secret_post).
    /// Prefer the environment variable.
    #[arg(
        long,
        env = "MIULINK_OIDC_CLIENT_SECRET",
        hide_env_values = true,
        conflicts_with = "oidc_private_key"
    )]
    pub oidc_client_secret: Option<String>,
    /// Client authentication by a signed assertion (private_key_jwt, as CIS2
    /// requires): MIU Link's RSA private key (PEM, PKCS#1 or PKCS#8). Its
    /// public key is published at {public-url}/auth/oidc/jwks.json.
    #[arg(long, env = "MIULINK_OIDC_PRIVATE_KEY", requires = "oidc_key_id")]
    pub oidc_private_key: Option<PathBuf>,
    /// The key id (kid) of --oidc-private-key, as registered with the provider.
    #[arg(long, env = "MIULINK_OIDC_KEY_ID")]
    pub oidc_key_id: Option<String>,
    /// Scopes asked for. CIS2: "openid profile nhsperson nationalrbacaccess selectedrole".
    #[arg(long, env = "MIULINK_OIDC_SCOPES", default_value = "openid profile")]
    pub oidc_scopes: String,
    /// Authentication context asked for and required (space-separated; one
    /// must be in the token's acr), e.g. AAL2_OR_AAL3_ANY.
    #[arg(long, env = "MIULINK_OIDC_ACR_VALUES")]
    pub oidc_acr_values: Option<String>,
    /// The claim whose values give the role, e.g. nhsid_nrbac_roles (CIS2) or roles (Entra ID).
    #[arg(long, env = "MIULINK_OIDC_ROLE_CLAIM")]
    pub oidc_role_claim: Option<String>,
    /// VALUE=ROLE (repeatable): a claim value (an NHS RBAC role code such as
    /// R8000, an Entra app role) to clinician, manager or admin.
    #[arg(long = "oidc-role-map", env = "MIULINK_OIDC_ROLE_MAP", value_delimiter = ',', value_parser = crate::oidc::RoleMap::parse_entry)]
    pub oidc_role_map: Vec<(String, Role)>,
    /// The claim with the person's name as others see it.
    #[arg(long, env = "MIULINK_OIDC_DISPLAY_NAME_CLAIM", default_value = "name")]
    pub oidc_display_name_claim: String,
    /// The sign-in button's words.
    #[arg(
        long,
        env = "MIULINK_OIDC_LABEL",
        default_value = "Sign in with NHS Care Identity"
    )]
    pub oidc_label: String,
    /// Whom someone without access should ask, on the page that refuses them.
    #[arg(
        long,
        env = "MIULINK_OIDC_ACCESS_CONTACT",
        default_value = "your trust's IT service desk"
    )]
    pub oidc_access_contact: String,
    /// Who may still sign in with a password: all, stations (and break-glass
    /// admins) or off (break-glass admins only). Default: all without a
    /// provider, stations with one.
    #[arg(long, env = "MIULINK_LOCAL_LOGIN", value_enum)]
    pub local_login: Option<LocalLoginArg>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalLoginArg {
    All,
    Stations,
    Off,
}

impl SsoArgs {
    /// The provider's settings, if one is configured; an error says what
    /// is missing or wrong.
    pub fn oidc(&self) -> anyhow::Result<Option<crate::oidc::OidcSettings>> {
        use crate::oidc::{ClientAuth, OidcSettings, RoleMap};
        let Some(issuer) = self.oidc_issuer.clone().filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let public_url = self
            .public_url
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--oidc-issuer needs --public-url (the address users reach MIU Link at)"
                )
            })?;
        let client_id = self
            .oidc_client_id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--oidc-issuer needs --oidc-client-id"))?;
        let client_auth = match (&self.oidc_client_secret, &self.oidc_private_key) {
            (Some(secret), None) if !secret.is_empty() => ClientAuth::Secret(secret.clone()),
            (None, Some(path)) => ClientAuth::PrivateKey {
                pem: std::fs::read_to_string(path)
                    .with_context(|| format!("reading --oidc-private-key {}", path.display()))?,
                key_id: self.oidc_key_id.clone().unwrap_or_default(),
            },
            _ => anyhow::bail!(
                "--oidc-issuer needs one way to authenticate MIU Link: --oidc-client-secret, \
                 or --oidc-private-key with --oidc-key-id (private_key_jwt, as CIS2 uses)"
            ),
        };
        if self.oidc_role_map.is_empty() {
            tracing::warn!("--oidc-issuer without --oidc-role-map: nobody signing in through the provider will be given access");
        }
        Ok(Some(OidcSettings {
            public_url: public_url.trim_end_matches('/').to_owned(),
            issuer: issuer.trim().to_owned(),
            client_id,
            client_auth,
            scopes: self
                .oidc_scopes
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            acr_values: self
                .oidc_acr_values
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            roles: RoleMap {
                claim: self.oidc_role_claim.clone().filter(|c| !c.is_empty()),
                map: self.oidc_role_map.clone(),
            },
            display_name_claim: self.oidc_display_name_claim.clone(),
            label: self.oidc_label.clone(),
            access_contact: self.oidc_access_contact.clone(),
        }))
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a password is generated
    /// and printed once.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The site of a station (e.g. Millom) or of a clinician's department.
        #[arg(long)]
        site: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Alert this clinician when a request is escalated, even when busy
        /// (for example the A&E nurse in charge).
        #[arg(long)]
        escalation_duty: bool,
        /// An account for `miulink probe`, not a person: never counted as
        /// an available clinician, only rung for test calls directed at it,
        /// and (as a station) only able to place test calls.
        #[arg(long)]
        monitoring: bool,
        /// An admin who may sign in with a password even when
        /// --local-login allows only stations: for when the identity
        /// provider is down. Keep its password sealed; every use is audited.
        #[arg(long)]
        break_glass: bool,
    },
    /// Set (or, without --site, clear) an account's site.
    Site {
        #[arg(long)]
        username: String,
        #[arg(long)]
        site: Option<String>,
    },
    /// Give or take away a clinician's escalation duty.
    Duty {
        #[arg(long)]
        username: String,
        /// Take the duty away instead of giving it.
        #[arg(long)]
        off: bool,
    },
    /// List accounts.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop an account from logging in, and log it out everywhere.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Allow a disabled account to log in again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Set a new password (logs the account out everywhere).
    Passwd {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcePolicyArg {
    /// Direct peer-to-peer paths when possible, TURN otherwise.
    All,
    /// Only through the TURN servers.
    Relay,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Station,
    Clinician,
    Manager,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Station => Role::Station,
            RoleArg::Clinician => Role::Clinician,
            RoleArg::Manager => Role::Manager,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn parse_lease_seconds(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds, e.g. 3 or 1.5"))?;
    if (0.5..=120.0).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "a lease of {secs} s is outside 0.5 to 120 s; the default is 3"
        ))
    }
}

impl ServeArgs {
    pub fn settings(&self, database_url: &str) -> anyhow::Result<Settings> {
        Ok(Settings {
            listen: self.listen.clone(),
            database_url: database_url.to_owned(),
            data_dir: self.data_dir.clone(),
            lease_ms: (self.lease_seconds * 1000.0).round() as u64,
            demo: self.demo,
            disconnect_grace_ms: i64::from(self.disconnect_grace_seconds) * 1000,
            session_ttl_ms: i64::from(self.session_hours.max(1)) * 3_600_000,
            stun_urls: self
                .stun_urls
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            // A demo shows where the number appears, with a made-up one.
            fallback_phone: self
                .fallback_phone
                .clone()
                .filter(|s| !s.trim().is_empty())
                .or_else(|| self.demo.then(|| "0000 000 0000 (demo number)".to_owned())),
            test_call_clinician: self
                .test_call_clinician
                .clone()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            web_dir: self.web_dir.clone(),
            // Served over HTTPS: the cookie is Secure without being told.
            secure_cookies: self.secure_cookies || self.tls_cert.is_some(),
            escalation: self.escalation,
            turn_urls: self
                .turn_urls
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            turn_secret: self.turn_secret.clone().filter(|s| !s.is_empty()),
            turn_ttl_ms: i64::from(self.turn_ttl_hours.max(1)) * 3_600_000,
            rate_per_second: f64::from(self.max_messages_per_second.max(1)),
            rate_burst: 4.0 * f64::from(self.max_messages_per_second.max(1)),
            relay_only: self.ice_transport_policy == IcePolicyArg::Relay,
            reports: ReportSettings {
                targets_ms: [
                    self.target_immediate_minutes,
                    self.target_urgent_minutes,
                    self.target_routine_minutes,
                ]
                .map(settings::minutes_to_ms),
                travel_minutes: self.travel_minutes.iter().cloned().collect(),
                timezone: self.timezone,
                target_share: f64::from(self.target_share_percent.clamp(1, 100)) / 100.0,
            },
            session_check_ms: 10_000,
            session_idle_ms: i64::from(self.session_idle_minutes.max(1)) * 60_000,
            max_sessions_per_account: self.max_sessions_per_account.max(1),
            login_concurrency: self.login_concurrency.max(1),
            patient_ref_pattern: self.patient_ref_pattern.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            max_connections: self.max_connections.max(1),
            header_timeout_ms: u64::from(self.header_timeout_seconds.max(1)) * 1000,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            redirect_http: self.redirect_http.clone().filter(|s| !s.is_empty()),
            metrics_listen: self.metrics_listen.clone().filter(|s| !s.is_empty()),
            retention_days: self.retention_days,
            oidc: self.sso.oidc()?,
            local_login: self.sso.local_login.map(|l| match l {
                LocalLoginArg::All => crate::settings::LocalLogin::All,
                LocalLoginArg::Stations => crate::settings::LocalLogin::Stations,
                LocalLoginArg::Off => crate::settings::LocalLogin::Off,
            }),
        })
    }
}

pub fn init_tracing() {
    init_tracing_with("info,sqlx=warn");
}

/// Logging to standard error, filtered by `MIULINK_LOG` or else `default`.
/// Only the first call takes effect.
pub fn init_tracing_with(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIULINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "probe")]
    if matches!(cli.command, Some(Command::Probe(_))) {
        // The probe's report is its output; keep library chatter out of it.
        // webrtc-rs warns about normal events of a call set-up; only its
        // errors are worth showing next to the report.
        init_tracing_with("error,miulink=warn");
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(feature = "probe")]
    if let Some(Command::Probe(args)) = cli.command {
        return runtime.block_on(crate::probe::main(args));
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve.settings(&cli.database_url)?).await,
        Some(Command::Serve(args)) => serve(args.settings(&cli.database_url)?).await,
        Some(Command::User(cmd)) => user(&cli.database_url, cmd).await,
        Some(Command::Seed(args)) => seed(&cli.database_url, args).await,
        Some(Command::MigrateDb(args)) => migrate_db(args).await,
        Some(Command::Backup(args)) => backup(&cli.database_url, args).await,
        Some(Command::Restore(args)) => restore(&cli.database_url, args).await,
        #[cfg(feature = "probe")]
        Some(Command::Probe(_)) => anyhow::bail!("the probe runs from main()"),
    }
}

async fn migrate_db(args: MigrateDbArgs) -> anyhow::Result<()> {
    use crate::store::redact_url;
    let (from_shown, to_shown) = (redact_url(&args.from), redact_url(&args.to));
    if args.from == args.to {
        anyhow::bail!("--from and --to are the same database ({from_shown})");
    }
    let source = Store::open(&args.from)
        .await
        .with_context(|| format!("opening the source database {from_shown}"))?;
    let target = Store::open(&args.to)
        .await
        .with_context(|| format!("opening the target database {to_shown}"))?;
    let started = std::time::Instant::now();
    let counts = source
        .copy_into(&target)
        .await
        .with_context(|| format!("copying {from_shown} into {to_shown}"))?;
    let days = crate::reports::refresh_cache(&target)
        .await
        .map_err(|e| anyhow::anyhow!("the copy is complete, but rebuilding the report cache failed ({e}); the dashboard rebuilds it on first use"))?;
    source.close().await;
    target.close().await;
    println!(
        "copied {from_shown} into {to_shown} in {:.1} s; row counts match on both sides:",
        started.elapsed().as_secs_f64()
    );
    for (table, n) in counts {
        println!("  {table:<15} {n}");
    }
    println!("report cache rebuilt: {days} days. Start the server with --database {to_shown}");
    Ok(())
}

fn print_rows(rows: &[(&'static str, i64)]) {
    for (table, n) in rows {
        println!("  {table:<15} {n}");
    }
}

async fn backup(database_url: &str, args: BackupArgs) -> anyhow::Result<()> {
    let store = Store::open(database_url).await.with_context(|| {
        format!(
            "opening the database {}",
            crate::store::redact_url(database_url)
        )
    })?;
    let started = std::time::Instant::now();
    let summary = store.backup_to(&args.to).await;
    store.close().await;
    let summary = summary.with_context(|| format!("backing up to {}", args.to.display()))?;
    println!(
        "backed up {} to {} ({:.1} MB, {:.1} s; checked: integrity ok):",
        crate::store::redact_url(database_url),
        summary.path.display(),
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    print_rows(&summary.rows);
    println!(
        "restore it with: miulink --database URL restore --from {}",
        summary.path.display()
    );
    Ok(())
}

async fn restore(database_url: &str, args: RestoreArgs) -> anyhow::Result<()> {
    use crate::store::{check_copy, ensure_unused, sqlite_companions, sqlite_path};
    let Some(target) = sqlite_path(database_url) else {
        anyhow::bail!(
            "miulink restore puts back an SQLite backup; for PostgreSQL use pg_restore or \
             point-in-time recovery (deploy/README.md, \"Backups\")"
        );
    };
    let rows = check_copy(&args.from)
        .await
        .with_context(|| format!("checking the backup {}", args.from.display()))?;
    ensure_unused(&target).await?;
    if target.exists() {
        // Kept, not deleted: a restore must never lose the only copy of
        // something.
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let mut aside = target.as_os_str().to_owned();
        aside.push(format!(".replaced-{stamp}"));
        let aside = PathBuf::from(aside);
        for (from, to) in std::iter::once((target.clone(), aside.clone())).chain(
            sqlite_companions(&target)
                .into_iter()
                .zip(sqlite_companions(&aside)),
        ) {
            if from.exists() {
                std::fs::rename(&from, &to).with_context(|| {
                    format!("moving {} aside to {}", from.display(), to.display())
                })?;
            }
        }
        println!("the database it replaces is kept as {}", aside.display());
    }
    let mut partial = target.as_os_str().to_owned();
    partial.push(".restoring");
    let partial = PathBuf::from(partial);
    copy_private(&args.from, &partial)
        .with_context(|| format!("copying {} to {}", args.from.display(), partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("renaming {} to {}", partial.display(), target.display()))?;
    // Brings an older backup's schema up to date, as a start would.
    let store = Store::open(database_url).await?;
    let now = store.row_counts().await?;
    store.close().await;
    println!(
        "restored {} as {} (rows as in the backup):",
        args.from.display(),
        target.display()
    );
    print_rows(&now);
    if now != rows {
        tracing::warn!(?rows, ?now, "row counts differ from the backup's");
    }
    println!("start the server again (systemctl start miulink)");
    Ok(())
}

/// Copies a file to a new one only its owner may read, synced to disk.
fn copy_private(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(to);
    let mut source = std::fs::File::open(from)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut dest = options.open(to)?;
    std::io::copy(&mut source, &mut dest)?;
    dest.sync_all()
}

async fn seed(database_url: &str, args: SeedArgs) -> anyhow::Result<()> {
    let store = Store::open(database_url).await?;
    let started = std::time::Instant::now();
    let summary = crate::seed::seed(
        &store,
        &crate::seed::SeedOptions {
            consults: args.consults,
            days: args.days,
            end: crate::clock::Clock::new().now_ms(),
            rng_seed: args.rng_seed,
            timezone: args.timezone,
        },
    )
    .await?;
    store.close().await;
    println!(
        "wrote {} synthetic consults over {} days (ids {} to {}): {} answered, {} cancelled, {} abandoned, in {:.1} s",
        summary.consults,
        args.days,
        summary.first_id,
        summary.last_id,
        summary.answered,
        summary.cancelled,
        summary.abandoned,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let scheme = if app.is_tls() { "https" } else { "http" };
    println!("MIU Link is running at {scheme}://{}/", app.local_addr());
    app.run_until_stopped(startup::shutdown_signal()).await
}

/// A password from the first line of standard input (`--password-stdin`),
/// or none (one is generated).
fn read_password(from_stdin: bool) -> anyhow::Result<Option<String>> {
    if !from_stdin {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

async fn user(database_url: &str, cmd: UserCommand) -> anyhow::Result<()> {
    use crate::accounts::{self, ChangedBy, NewAccount};
    let store = Store::open(database_url).await?;
    // The same rules and audit trail as the admin console; the author is
    // the person at this command line.
    let by = ChangedBy {
        actor: crate::store::Actor::command_line(),
        client: None,
        now: crate::clock::Clock::new().now_ms(),
    };
    let no_such =
        |username: &str| anyhow::anyhow!("no account named {username:?} (see `miulink user list`)");
    let fail = |e: accounts::AccountError| match e {
        accounts::AccountError::NoSuchAccount(name) => no_such(&name),
        other => anyhow::Error::new(other),
    };
    match cmd {
        UserCommand::Add {
            username,
            display_name,
            role,
            site,
            password_stdin,
            escalation_duty,
            monitoring,
            break_glass,
        } => {
            let role = Role::from(role);
            if role == Role::Station && site.is_none() {
                anyhow::bail!("a station needs --site (e.g. --site Millom)");
            }
            let (user, generated) = accounts::add(
                &store,
                &by,
                NewAccount {
                    username,
                    display_name,
                    role: role.as_str().to_owned(),
                    site,
                    escalation_duty,
                    monitoring,
                    break_glass,
                    password: read_password(password_stdin)?,
                },
            )
            .await
            .map_err(fail)?;
            println!(
                "created {} account {:?} (id {})",
                role.as_str(),
                user.username,
                user.id
            );
            if let Some(password) = generated {
                println!("password (shown once): {password}");
                if user.must_change_password {
                    println!("(they choose their own at their first sign-in)");
                }
            }
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                println!(
                    "{:<20} {:<10} {:<16} {:<9} NAME",
                    "USERNAME", "ROLE", "SITE", "STATE"
                );
                for u in users {
                    let state = if u.disabled {
                        "disabled"
                    } else if u.demo {
                        "demo"
                    } else if u.oidc_subject.is_some() {
                        "sso"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<20} {:<10} {:<16} {:<9} {}",
                        u.username,
                        u.role.as_str(),
                        u.site.unwrap_or_default(),
                        state,
                        u.display_name
                    );
                }
            }
        }
        UserCommand::Duty { username, off } => {
            accounts::set_escalation_duty(&store, &by, &username, !off)
                .await
                .map_err(fail)?;
            println!(
                "{username:?} {} alerted on escalation",
                if off {
                    "will no longer be"
                } else {
                    "will now be"
                }
            );
        }
        UserCommand::Site { username, site } => {
            let user = accounts::set_site(&store, &by, &username, site.as_deref())
                .await
                .map_err(fail)?;
            println!(
                "{username:?} is now at {}",
                user.site.as_deref().unwrap_or("no site")
            );
        }
        UserCommand::Disable { username } => {
            accounts::set_disabled(&store, &by, &username, true)
                .await
                .map_err(fail)?;
            println!("disabled {username:?} and ended its sessions");
        }
        UserCommand::Enable { username } => {
            accounts::set_disabled(&store, &by, &username, false)
                .await
                .map_err(fail)?;
            println!("enabled {username:?}");
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let (_, generated) =
                accounts::reset_password(&store, &by, &username, read_password(password_stdin)?)
                    .await
                    .map_err(fail)?;
            println!("password changed for {username:?}; its sessions were ended");
            if let Some(password) = generated {
                println!("new password (shown once): {password}");
            }
        }
    }
    store.close().await;
    Ok(())
}
