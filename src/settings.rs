//! Run-time settings of a server, independent of how they were given
//! (command line, environment, or a test building them directly).

use crate::reports::ReportSettings;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// `sqlite://path/to/miulink.db`
    pub database_url: String,
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
    /// Serve the browser client from this directory instead of the copy
    /// built into the binary (for development).
    pub web_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Answer targets, travel times and time zone of the dashboard.
    pub reports: ReportSettings,
}

impl Settings {
    /// Settings for a test or a local run: loopback, port 0, given database.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Settings {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.into(),
            demo: false,
            disconnect_grace_ms: 60_000,
            session_ttl_ms: 12 * 3_600_000,
            stun_urls: Vec::new(),
            fallback_phone: None,
            web_dir: None,
            secure_cookies: false,
            reports: ReportSettings::default(),
        }
    }
}
