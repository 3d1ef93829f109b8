//! `miulink probe`: a synthetic test call through a running MIU Link
//! server, with a real WebRTC call, for monitoring.
//!
//! * [`call`]: one run (log in, directed test consult, call, hang up).
//! * [`peer`]: the WebRTC peer (`webrtc` crate): video and data channel.
//! * [`video`]: the synthetic VP8 test card.
//! * [`client`]: `--server`, the HTTP client and the log API; login and
//!   the signalling WebSocket are the typed `miulink_client`.
//! * [`error`]: why a run stopped ([`error::ProbeError`]).
//! * [`report`]: steps, thresholds, exit codes, text and JSON output.
//!
//! Exit codes: 0 every step within its threshold, 1 some step slow,
//! 2 something failed (including bad configuration).

pub mod call;
pub mod client;
pub mod error;
pub mod peer;
pub mod report;
pub mod video;

use call::{Credentials, ProbeConfig, ProbeRole};
use clap::{Args, ValueEnum};
use report::{Step, Thresholds};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

pub const STATION_PASSWORD_ENV: &str = "MIULINK_PROBE_STATION_PASSWORD";
pub const CLINICIAN_PASSWORD_ENV: &str = "MIULINK_PROBE_CLINICIAN_PASSWORD";
pub const MANAGER_PASSWORD_ENV: &str = "MIULINK_PROBE_MANAGER_PASSWORD";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// The probe is the station and the clinician (unattended monitoring).
    Both,
    /// The probe is a station and calls a person: --clinician-user is a
    /// real clinician, who answers in their browser and sees the test card.
    StationOnly,
    /// The probe is a clinician and answers a test call that a nurse places
    /// from a real station to --clinician-user.
    ClinicianOnly,
}

/// `miulink probe`: place a test call through a running server and time it.
///
/// Passwords come from MIULINK_PROBE_STATION_PASSWORD,
/// MIULINK_PROBE_CLINICIAN_PASSWORD (and MIULINK_PROBE_MANAGER_PASSWORD),
/// or from --config FILE; never from the command line.
#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The server, e.g. https://miulink.example.nhs.uk (http:// only for
    /// this machine).
    #[arg(long, env = "MIULINK_PROBE_SERVER")]
    pub server: Option<String>,
    /// The probe's station account (a dedicated one, not a treatment
    /// room's: the probe's connection would replace the room's).
    #[arg(long, env = "MIULINK_PROBE_STATION_USER")]
    pub station_user: Option<String>,
    /// The probe's clinician account; with --role station-only, the real
    /// clinician to call.
    #[arg(long, env = "MIULINK_PROBE_CLINICIAN_USER")]
    pub clinician_user: Option<String>,
    /// Optional manager account: confirms with the log API that the
    /// consult is logged as a test call.
    #[arg(long, env = "MIULINK_PROBE_MANAGER_USER")]
    pub manager_user: Option<String>,
    /// Which side(s) of the call the probe plays.
    #[arg(long, value_enum, default_value = "both")]
    pub role: RoleArg,
    /// A TOML file with any of: server, station_user, clinician_user,
    /// manager_user, station_password, clinician_password,
    /// manager_password, timeout_seconds, [slow_ms] step = ms.
    /// Command-line options and environment variables win over it.
    #[arg(long, env = "MIULINK_PROBE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON (for monitoring systems).
    #[arg(long)]
    pub json: bool,
    /// A step's "slow" limit, e.g. --slow-ms accept_to_first_video=2000
    /// (repeatable). Steps: login, websocket_connect, request_to_ring,
    /// request_to_accept, accept_to_ice_connected, accept_to_dtls_connected,
    /// accept_to_first_video, data_channel_rtt, hangup_logged.
    #[arg(long = "slow-ms", value_parser = report::parse_threshold)]
    pub slow_ms: Vec<(Step, u64)>,
    /// Seconds each automatic step may take before the run fails.
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// One-side modes: seconds to wait for the person to answer (or, as a
    /// clinician, for the nurse's test call).
    #[arg(long, default_value_t = 120)]
    pub answer_wait_seconds: u64,
    /// One-side modes: seconds to keep the call up once it works, so the
    /// person can see the test card.
    #[arg(long, default_value_t = 10)]
    pub hold_seconds: u64,
    /// Local UDP address for WebRTC (default: 127.0.0.1:0 for a server on
    /// this machine, otherwise 0.0.0.0:0).
    #[arg(long)]
    pub udp_bind: Option<String>,
    /// Also write the result as Prometheus metrics to this file (written
    /// whole, then renamed), for node_exporter's textfile collector:
    /// miulink_probe_success, miulink_probe_exit_code,
    /// miulink_probe_last_run_timestamp_seconds and
    /// miulink_probe_step_seconds. See deploy/prometheus/.
    #[arg(long, env = "MIULINK_PROBE_PROMETHEUS_FILE")]
    pub prometheus_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    station_user: Option<String>,
    clinician_user: Option<String>,
    manager_user: Option<String>,
    station_password: Option<String>,
    clinician_password: Option<String>,
    manager_password: Option<String>,
    timeout_seconds: Option<u64>,
    #[serde(default)]
    slow_ms: BTreeMap<String, u64>,
}

fn read_config(path: &Path) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 && text.contains("password") {
                eprintln!(
                    "warning: {} holds passwords and is readable by other users; \
                     run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

fn env_password(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|p| !p.is_empty())
}

/// Turns the arguments (and config file, and environment) into a run's
/// configuration, or says exactly what is missing.
pub fn config_from_args(args: &ProbeArgs) -> Result<ProbeConfig, String> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None => ConfigFile::default(),
    };
    let server = args
        .server
        .clone()
        .or(file.server)
        .ok_or("give --server URL (or MIULINK_PROBE_SERVER, or server in --config)")?;
    let server = client::Server::parse(&server)?;
    let role = match args.role {
        RoleArg::Both => ProbeRole::Both,
        RoleArg::StationOnly => ProbeRole::StationOnly,
        RoleArg::ClinicianOnly => ProbeRole::ClinicianOnly,
    };
    let account = |user: Option<String>,
                   password: Option<String>,
                   who: &str,
                   env: &str|
     -> Result<Credentials, String> {
        let username = user.ok_or_else(|| format!("give --{who}-user NAME"))?;
        let password = password.ok_or_else(|| {
            format!("no password for {username}: set {env} (or {who}_password in --config)")
        })?;
        Ok(Credentials { username, password })
    };
    let station_user = args.station_user.clone().or(file.station_user);
    let clinician_user = args.clinician_user.clone().or(file.clinician_user);
    let station_password = env_password(STATION_PASSWORD_ENV).or(file.station_password);
    let clinician_password = env_password(CLINICIAN_PASSWORD_ENV).or(file.clinician_password);
    let station = match role {
        ProbeRole::ClinicianOnly => None,
        _ => Some(account(
            station_user,
            station_password,
            "station",
            STATION_PASSWORD_ENV,
        )?),
    };
    let clinician_username = clinician_user
        .clone()
        .ok_or("give --clinician-user NAME (the clinician the test call is for)")?;
    let clinician = match role {
        ProbeRole::StationOnly => None,
        _ => Some(account(
            clinician_user,
            clinician_password,
            "clinician",
            CLINICIAN_PASSWORD_ENV,
        )?),
    };
    let manager = match args.manager_user.clone().or(file.manager_user) {
        Some(user) => Some(account(
            Some(user),
            env_password(MANAGER_PASSWORD_ENV).or(file.manager_password),
            "manager",
            MANAGER_PASSWORD_ENV,
        )?),
        None => None,
    };
    let mut thresholds = Thresholds::default();
    for (name, ms) in &file.slow_ms {
        let (step, ms) = report::parse_threshold(&format!("{name}={ms}"))
            .map_err(|e| format!("--config [slow_ms]: {e}"))?;
        thresholds.0.insert(step, ms);
    }
    for (step, ms) in &args.slow_ms {
        thresholds.0.insert(*step, *ms);
    }
    let timeout = args.timeout_seconds.or(file.timeout_seconds).unwrap_or(20);
    if timeout == 0 {
        return Err("--timeout-seconds must be at least 1".into());
    }
    Ok(ProbeConfig {
        server,
        role,
        station,
        clinician,
        clinician_username,
        manager,
        thresholds,
        timeout: Duration::from_secs(timeout),
        answer_wait: Duration::from_secs(args.answer_wait_seconds.max(1)),
        hold: Duration::from_secs(args.hold_seconds),
        udp_bind: args.udp_bind.clone(),
    })
}

/// `miulink probe`: runs once, prints the report, returns 0, 1 or 2.
pub async fn main(args: ProbeArgs) -> ExitCode {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let write_metrics = |text: String| {
        if let Some(path) = &args.prometheus_file {
            if let Err(e) = report::write_whole(path, &text) {
                eprintln!(
                    "error: cannot write --prometheus-file {}: {e}",
                    path.display()
                );
            }
        }
    };
    let cfg = match config_from_args(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            let server = args.server.clone().unwrap_or_default();
            write_metrics(report::prometheus_text(&server, 2, now(), &[]));
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"result": "failed", "exit_code": 2, "error": e})
                );
            } else {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let report = call::run(&cfg).await;
    write_metrics(report.to_prometheus(now()));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot write the report as JSON: {e}"),
        }
    } else {
        print!("{}", report.to_text());
    }
    ExitCode::from(report.exit_code)
}
