//! What a probe run measured, judged against thresholds, printed for a
//! person or as JSON for a monitoring system.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The measured steps, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// `POST /api/login` (Argon2 makes this deliberately slow-ish).
    Login,
    /// Opening the signalling WebSocket until `welcome`.
    WebsocketConnect,
    /// Station's `request_consult` sent to the clinician's `ring`.
    RequestToRing,
    /// Station's request to a person's `accept` (station-only mode; their
    /// reaction time, so never "slow").
    RequestToAccept,
    AcceptToIceConnected,
    /// The peer connection is `connected`: ICE and the DTLS handshake done.
    AcceptToDtlsConnected,
    /// Accept to the first RTP packet of video received (both directions
    /// when the probe plays both sides: the later of the two).
    AcceptToFirstVideo,
    /// Median round trip of the probe's data channel echo.
    DataChannelRtt,
    /// `hang_up` sent to `call_end` received: the server writes the log
    /// entry before it tells anyone the call ended.
    HangupLogged,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Login,
        Step::WebsocketConnect,
        Step::RequestToRing,
        Step::RequestToAccept,
        Step::AcceptToIceConnected,
        Step::AcceptToDtlsConnected,
        Step::AcceptToFirstVideo,
        Step::DataChannelRtt,
        Step::HangupLogged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Login => "login",
            Step::WebsocketConnect => "websocket_connect",
            Step::RequestToRing => "request_to_ring",
            Step::RequestToAccept => "request_to_accept",
            Step::AcceptToIceConnected => "accept_to_ice_connected",
            Step::AcceptToDtlsConnected => "accept_to_dtls_connected",
            Step::AcceptToFirstVideo => "accept_to_first_video",
            Step::DataChannelRtt => "data_channel_rtt",
            Step::HangupLogged => "hangup_logged",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == s)
    }

    /// Above this a step is "slow" (exit code 1). Generous for a call
    /// across a trust's network; tighten with `--slow-ms STEP=MS`.
    pub fn default_slow_ms(self) -> Option<u64> {
        match self {
            Step::Login => Some(3_000),
            Step::WebsocketConnect => Some(2_000),
            Step::RequestToRing => Some(1_000),
            Step::RequestToAccept => None,
            Step::AcceptToIceConnected => Some(3_000),
            Step::AcceptToDtlsConnected => Some(4_000),
            Step::AcceptToFirstVideo => Some(5_000),
            Step::DataChannelRtt => Some(300),
            Step::HangupLogged => Some(2_000),
        }
    }
}

/// Per-step "slow" limits in milliseconds.
#[derive(Debug, Clone)]
pub struct Thresholds(pub BTreeMap<Step, u64>);

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds(
            Step::ALL
                .into_iter()
                .filter_map(|s| s.default_slow_ms().map(|ms| (s, ms)))
                .collect(),
        )
    }
}

/// `STEP=MS`, e.g. `accept_to_first_video=2000`.
pub fn parse_threshold(s: &str) -> Result<(Step, u64), String> {
    let (name, ms) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected STEP=MILLISECONDS, e.g. data_channel_rtt=200"))?;
    let step = Step::parse(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        format!("unknown step {name:?}; steps are {}", names.join(", "))
    })?;
    let ms = ms
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{s:?}: {ms:?} is not a whole number of milliseconds"))?;
    Ok((step, ms))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Slow,
    Failed,
    /// Not measurable in this mode or against this peer (said in `detail`).
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: Step,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_ms: Option<u64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct VideoSeen {
    /// `WIDTHxHEIGHT` of the key frame the first packet started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_key_frame: Option<String>,
    pub packets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub role: &'static str,
    /// `ok`, `slow` or `failed`.
    pub result: Status,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consult_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<u64>,
    pub steps: Vec<StepResult>,
    /// Video the station side received (from the clinician side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_at_station: Option<VideoSeen>,
    /// Video the clinician side received (from the station side).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_at_clinician: Option<VideoSeen>,
    /// Checked with the log API (when a manager account was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_as_test_call: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Collects step results while a run goes on.
#[derive(Debug)]
pub struct Recorder {
    thresholds: Thresholds,
    steps: BTreeMap<Step, StepResult>,
}

impl Recorder {
    pub fn new(thresholds: Thresholds) -> Self {
        Recorder {
            thresholds,
            steps: BTreeMap::new(),
        }
    }

    pub fn measured(&mut self, step: Step, ms: f64, detail: impl Into<String>) {
        let slow_ms = self.thresholds.0.get(&step).copied();
        let status = match slow_ms {
            Some(limit) if ms > limit as f64 => Status::Slow,
            _ => Status::Ok,
        };
        self.steps.insert(
            step,
            StepResult {
                step,
                status,
                ms: Some(ms),
                slow_ms,
                detail: detail.into(),
            },
        );
    }

    pub fn failed(&mut self, step: Step, detail: impl Into<String>) {
        self.steps.insert(
            step,
            StepResult {
                step,
                status: Status::Failed,
                ms: None,
                slow_ms: self.thresholds.0.get(&step).copied(),
                detail: detail.into(),
            },
        );
    }

    pub fn skipped(&mut self, step: Step, detail: impl Into<String>) {
        self.steps.insert(
            step,
            StepResult {
                step,
                status: Status::Skipped,
                ms: None,
                slow_ms: None,
                detail: detail.into(),
            },
        );
    }

    pub fn has(&self, step: Step) -> bool {
        self.steps.contains_key(&step)
    }

    pub fn ms(&self, step: Step) -> Option<f64> {
        self.steps.get(&step).and_then(|s| s.ms)
    }

    /// Marks every expected step that never happened as failed.
    pub fn fail_missing(&mut self, expected: &[Step], why: &str) {
        for &step in expected {
            if !self.has(step) {
                self.failed(step, why);
            }
        }
    }

    pub fn into_steps(self) -> Vec<StepResult> {
        self.steps.into_values().collect()
    }
}

impl Report {
    /// Sets `result` and `exit_code` from the steps: 2 if anything failed
    /// (or the run stopped with an error), else 1 if anything was slow.
    pub fn judge(&mut self) {
        let failed = self.error.is_some() || self.steps.iter().any(|s| s.status == Status::Failed);
        let slow = self.steps.iter().any(|s| s.status == Status::Slow);
        (self.result, self.exit_code) = if failed {
            (Status::Failed, 2)
        } else if slow {
            (Status::Slow, 1)
        } else {
            (Status::Ok, 0)
        };
    }

    /// The report in Prometheus text format, for node_exporter's textfile
    /// collector (`--prometheus-file`): whether it worked, its exit code,
    /// when it ran, and each measured step in seconds. `at` is the time of
    /// the run (seconds since 1970).
    pub fn to_prometheus(&self, at: f64) -> String {
        prometheus_text(&self.server, self.exit_code, at, &self.steps)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "MIU Link probe of {} (role: {}{})",
            self.server,
            self.role,
            match (self.consult_id, self.call_id) {
                (Some(c), Some(k)) => format!(", consult {c}, call {k}"),
                (Some(c), None) => format!(", consult {c}"),
                _ => String::new(),
            }
        );
        for s in &self.steps {
            let value = match s.ms {
                Some(ms) if ms < 10.0 => format!("{ms:>8.2} ms"),
                Some(ms) => format!("{ms:>8.0} ms"),
                None => format!("{:>11}", "-"),
            };
            let status = match s.status {
                Status::Ok => "ok",
                Status::Slow => "SLOW",
                Status::Failed => "FAILED",
                Status::Skipped => "skipped",
            };
            let limit = s
                .slow_ms
                .filter(|_| s.status == Status::Slow)
                .map(|l| format!(" (limit {l} ms)"))
                .unwrap_or_default();
            let detail = if s.detail.is_empty() {
                String::new()
            } else {
                format!("  {}", s.detail)
            };
            let _ = writeln!(
                out,
                "  {:<26} {value}  {status}{limit}{detail}",
                s.step.name()
            );
        }
        for (who, seen) in [
            ("station", &self.video_at_station),
            ("clinician", &self.video_at_clinician),
        ] {
            if let Some(v) = seen {
                let _ = writeln!(
                    out,
                    "  video received at the {who}: {} RTP packets{}",
                    v.packets,
                    v.first_key_frame
                        .as_deref()
                        .map(|k| format!(", first key frame {k}"))
                        .unwrap_or_default()
                );
            }
        }
        if let Some(t) = self.logged_as_test_call {
            let _ = writeln!(
                out,
                "  session log: {}",
                if t {
                    "consult logged as a test call"
                } else {
                    "NOT logged as a test call"
                }
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {e}");
        }
        let verdict = match self.result {
            Status::Ok => "OK",
            Status::Slow => "SLOW",
            _ => "FAILED",
        };
        let _ = writeln!(out, "result: {verdict} (exit code {})", self.exit_code);
        out
    }
}

/// Prometheus text for a probe run (also for a run that could not start:
/// no steps, exit code 2).
pub fn prometheus_text(server: &str, exit_code: u8, at: f64, steps: &[StepResult]) -> String {
    let server = server
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ");
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, values: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in values {
            let _ = writeln!(out, "{name}{{server=\"{server}\"{labels}}} {value}");
        }
    };
    gauge(
        "miulink_probe_success",
        "1 if the last probe's test call worked (exit code 0 or 1), 0 if it failed.",
        &[(String::new(), u8::from(exit_code < 2).to_string())],
    );
    gauge(
        "miulink_probe_exit_code",
        "The last probe's exit code: 0 ok, 1 slow, 2 failed.",
        &[(String::new(), exit_code.to_string())],
    );
    gauge(
        "miulink_probe_last_run_timestamp_seconds",
        "When the last probe ran.",
        &[(String::new(), format!("{at:.3}"))],
    );
    let measured: Vec<(String, String)> = steps
        .iter()
        .filter_map(|s| {
            let ms = s.ms?;
            Some((
                format!(",step=\"{}\"", s.step.name()),
                (ms / 1000.0).to_string(),
            ))
        })
        .collect();
    if !measured.is_empty() {
        gauge(
            "miulink_probe_step_seconds",
            "How long each step of the last probe took.",
            &measured,
        );
    }
    out
}

/// Writes `text` to `path` whole (a new file renamed into place, as the
/// textfile collector expects, so it never reads half a file).
pub fn write_whole(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_refuse_bad_input() {
        assert_eq!(
            parse_threshold("data_channel_rtt=200"),
            Ok((Step::DataChannelRtt, 200))
        );
        assert!(parse_threshold("rtt=200")
            .unwrap_err()
            .contains("steps are"));
        assert!(parse_threshold("login").is_err());
        assert!(parse_threshold("login=fast").is_err());
    }

    #[test]
    fn verdicts() {
        let mut rec = Recorder::new(Thresholds::default());
        rec.measured(Step::Login, 10.0, "");
        let mut report = Report {
            server: "x".into(),
            role: "both",
            result: Status::Ok,
            exit_code: 0,
            consult_id: None,
            call_id: None,
            steps: rec.into_steps(),
            video_at_station: None,
            video_at_clinician: None,
            logged_as_test_call: None,
            notes: vec![],
            error: None,
        };
        report.judge();
        assert_eq!(report.exit_code, 0);
        report.steps[0].status = Status::Slow;
        report.judge();
        assert_eq!((report.result, report.exit_code), (Status::Slow, 1));
        report.error = Some("boom".into());
        report.judge();
        assert_eq!((report.result, report.exit_code), (Status::Failed, 2));
        assert!(report.to_text().contains("FAILED (exit code 2)"));
    }
}
