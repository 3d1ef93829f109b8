//! One probe run: log in, place a directed test consult, make the WebRTC
//! call, measure each step, hang up, and confirm the log.
//!
//! The three roles share the run's shape: [`sign_in`] (log in, connect,
//! check the accounts, clear what an earlier run left), a consult placed
//! or answered (the part each role does its own way), then [`call`]: each
//! side of the call the probe plays is a task that owns its signalling
//! connection and its peer and reports [`Mark`]s (things that happened,
//! with when) to the run, which decides when to hang up.

use super::client::{self, Server};
use super::error::ProbeError;
use super::peer::{self, Peer, PeerConfig, PeerEvent};
use super::report::{Recorder, Report, Status, Step, Thresholds, VideoSeen};
use super::video;
use miulink_client::{login, Client};
use serde_json::{json, Value};
use signalling::{
    Availability, CallId, ClientMessage, EndReason, Engagement, ErrorCode, Outcome, RequestId,
    RequestState, Role, ServerMessage, Urgency,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout_at;
use webrtc::data_channel::DataChannel;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCIceServer, RTCSessionDescription};

/// Data-channel round trips per call; the median is reported. A side sends
/// `{"probe_ping": n}` and the other answers `{"probe_pong": n}`.
const PINGS: usize = 5;
/// How long to wait for the far side to echo before deciding it does not.
const ECHO_WAIT: Duration = Duration::from_secs(3);
/// The ping that follows `call_connected`.
const CONNECTED_NONCE: u64 = 7_001;
/// How long clean-up (hang up, record an outcome) may take after a failure.
const CLEANUP_WAIT: Duration = Duration::from_secs(3);

type Result<T, E = ProbeError> = std::result::Result<T, E>;

mod marks;
mod side;

use marks::*;
use side::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeRole {
    /// The probe is both the station and the clinician.
    Both,
    /// The probe is a station calling a person (a real clinician).
    StationOnly,
    /// The probe is a clinician answering a person's test call from a
    /// real station.
    ClinicianOnly,
}

impl ProbeRole {
    pub fn name(self) -> &'static str {
        match self {
            ProbeRole::Both => "both",
            ProbeRole::StationOnly => "station-only",
            ProbeRole::ClinicianOnly => "clinician-only",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub server: Server,
    pub role: ProbeRole,
    /// Logged in as, unless the role is clinician-only.
    pub station: Option<Credentials>,
    /// Logged in as, unless the role is station-only.
    pub clinician: Option<Credentials>,
    /// The clinician the test call is directed to.
    pub clinician_username: String,
    /// Optional: confirms through the log API that the consult is logged
    /// as a test call.
    pub manager: Option<Credentials>,
    pub thresholds: Thresholds,
    /// Limit for each automatic step (connecting, the call coming up).
    pub timeout: Duration,
    /// One-side modes: how long to wait for the person to answer or call.
    pub answer_wait: Duration,
    /// One-side modes: how long to keep the call up so the person sees it.
    pub hold: Duration,
    /// Local address for WebRTC; by default loopback for a server on this
    /// machine, every other interface otherwise.
    pub udp_bind: Option<String>,
}

impl ProbeConfig {
    fn expected_steps(&self) -> Vec<Step> {
        let mut steps = vec![Step::Login, Step::WebsocketConnect];
        match self.role {
            ProbeRole::Both => steps.push(Step::RequestToRing),
            ProbeRole::StationOnly => steps.push(Step::RequestToAccept),
            ProbeRole::ClinicianOnly => {}
        }
        steps.extend([
            Step::AcceptToIceConnected,
            Step::AcceptToDtlsConnected,
            Step::AcceptToFirstVideo,
            Step::DataChannelRtt,
            Step::HangupLogged,
        ]);
        steps
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Station,
    Clinician,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Station => "station",
            Side::Clinician => "clinician",
        }
    }

    fn role(self) -> Role {
        match self {
            Side::Station => Role::Station,
            Side::Clinician => Role::Clinician,
        }
    }
}

/// What a side reports.
#[derive(Debug)]
enum Mark {
    CallStart { call_id: CallId },
    IceConnected(Instant),
    DtlsConnected(Instant),
    FirstVideo(Instant, Option<(u16, u16)>),
    VideoPackets(u64),
    Rtt(Vec<f64>),
    RttUnavailable(String),
    HangUpSent(Instant),
    CallEnded(Instant, EndReason),
    Note(String),
    Done,
    Failed(ProbeError),
}

/// What the run tells a side.
#[derive(Debug)]
enum Command {
    /// The outcome the clinician side records when the call ends.
    Outcome(Outcome, String),
    HangUp,
}

/// The state of a run, gathered into the report at the end.
#[derive(Default)]
struct Run {
    consult_id: Option<u64>,
    call_id: Option<u64>,
    notes: Vec<String>,
    video_at_station: Option<VideoSeen>,
    video_at_clinician: Option<VideoSeen>,
    logged_as_test_call: Option<bool>,
}

/// One probe run. Never panics on anything the network does; every problem
/// ends up in the report.
pub async fn run(cfg: &ProbeConfig) -> Report {
    let mut rec = Recorder::new(cfg.thresholds.clone());
    let mut run = Run::default();
    // Encode the test card before anything is timed (once per process).
    let encoded = tokio::task::spawn_blocking(|| video::frames().map(|_| ()))
        .await
        .unwrap_or_else(|e| Err(format!("encoding the test card: {e}")));
    let result = match encoded {
        Err(e) => Err(ProbeError::TestCard(e)),
        Ok(()) => match cfg.role {
            ProbeRole::Both => run_both(cfg, &mut rec, &mut run).await,
            ProbeRole::StationOnly => run_station_only(cfg, &mut rec, &mut run).await,
            ProbeRole::ClinicianOnly => run_clinician_only(cfg, &mut rec, &mut run).await,
        },
    };
    let error = result.err().map(|e| e.to_string());
    if error.is_some() {
        rec.fail_missing(
            &cfg.expected_steps(),
            "not reached: the run stopped at an earlier failure",
        );
    }
    let mut report = Report {
        server: cfg.server.base.clone(),
        role: cfg.role.name(),
        result: Status::Ok,
        exit_code: 0,
        consult_id: run.consult_id,
        call_id: run.call_id,
        steps: rec.into_steps(),
        video_at_station: run.video_at_station,
        video_at_clinician: run.video_at_clinician,
        logged_as_test_call: run.logged_as_test_call,
        notes: run.notes,
        error,
    };
    report.judge();
    report
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}

fn probe_reason() -> String {
    format!(
        "MIU Link monitoring probe (automated test call) {:08x}",
        rand::random::<u32>()
    )
}

/// The directed test consult the probe places.
fn test_request(reason: String, direct_to: &str) -> ClientMessage {
    ClientMessage::RequestConsult {
        urgency: Urgency::Routine,
        reason,
        patient_ref: None,
        test: true,
        direct_to: Some(direct_to.to_owned()),
    }
}

fn record_outcome(call_id: CallId, outcome: Outcome, note: String) -> ClientMessage {
    ClientMessage::RecordOutcome {
        call_id,
        outcome,
        note: Some(note),
    }
}

/// `request_update` `waiting`: the request's id, and how many clinicians
/// are available.
fn queued(m: &ServerMessage) -> Option<(RequestId, u32)> {
    match m {
        ServerMessage::RequestUpdate {
            state: RequestState::Waiting,
            request_id,
            clinicians_available,
            ..
        } => Some((*request_id, *clinicians_available)),
        _ => None,
    }
}

/// An `error` from the server, as a reason to stop.
fn refused(regarding: &Option<String>, message: &str, code: Option<ErrorCode>) -> ProbeError {
    ProbeError::Refused {
        regarding: regarding.clone(),
        message: message.to_owned(),
        code,
    }
}

/// A side of the call, signed in and connected, and what the server told
/// it right after clean-up (its state: a clinician's rings among it).
struct SignedIn {
    client: Client,
    state: Vec<ServerMessage>,
}

/// What the three roles share before the consult: log each side's account
/// in (at the same time) and time it, connect them (timed too), check each
/// account's role, and clear what an earlier run left. `sides` in the order
/// their accounts are logged in; connecting and clean-up go the other way
/// round (the clinician first, so it is there before the station asks).
async fn sign_in(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    run: &mut Run,
    sides: &[Side],
) -> Result<(reqwest::Client, Vec<SignedIn>)> {
    let mut accounts = Vec::new();
    for &side in sides {
        let creds = match side {
            Side::Station => &cfg.station,
            Side::Clinician => &cfg.clinician,
        };
        accounts.push((
            side,
            creds.as_ref().ok_or(ProbeError::NoAccount(side.name()))?,
        ));
    }
    let http = client::http_client(cfg.timeout)?;
    let logins = accounts.iter().map(|&(side, c)| {
        let login = login(&http, &cfg.server.base, &c.username, &c.password);
        let attempt = async move {
            match tokio::time::timeout(cfg.timeout, login).await {
                Ok(login) => Ok(login?.token),
                Err(_) => Err(ProbeError::LoginTimeout(c.username.clone())),
            }
        };
        (side, attempt)
    });
    let tokens = timed_all(rec, Step::Login, logins.collect()).await?;
    let connects = sides.iter().zip(&tokens).rev().map(|(&side, token)| {
        let attempt = async move {
            match tokio::time::timeout(cfg.timeout, Client::connect(&cfg.server.ws_url, token))
                .await
            {
                Ok(client) => Ok(client?),
                Err(_) => Err(ProbeError::ConnectTimeout),
            }
        };
        (side, attempt)
    });
    let mut clients = timed_all(rec, Step::WebsocketConnect, connects.collect()).await?;
    clients.reverse();
    let both = sides.len() > 1;
    for ((side, creds), client) in accounts.iter().zip(&clients) {
        let is = client.welcome().role;
        if is != side.role() {
            return Err(ProbeError::WrongRole {
                account: if both {
                    format!("the {} account", side.name())
                } else {
                    creds.username.clone()
                },
                is: is.as_str(),
                wanted: side.name(),
            });
        }
    }
    let mut signed_in = Vec::new();
    for (&side, mut client) in sides.iter().zip(clients).rev() {
        let state = clean_up_leftovers(&mut client, side, cfg.timeout, &mut run.notes).await?;
        signed_in.push(SignedIn { client, state });
    }
    signed_in.reverse();
    Ok((http, signed_in))
}

/// Runs each side's attempt at the same time and records `step`: the
/// whole time, and each side's in the detail. The first failure (in the
/// attempts' order) fails the step.
async fn timed_all<T, F>(rec: &mut Recorder, step: Step, attempts: Vec<(Side, F)>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let done =
        futures_util::future::join_all(attempts.into_iter().map(|(side, attempt)| async move {
            let t0 = Instant::now();
            (side, attempt.await, t0.elapsed())
        }))
        .await;
    let mut values = Vec::new();
    let mut detail = Vec::new();
    for (side, r, took) in done {
        match r {
            Ok(value) => {
                values.push(value);
                detail.push(format!("{} {:.0} ms", side.name(), ms(took)));
            }
            Err(e) => {
                // A refused login names its account itself.
                rec.failed(
                    step,
                    match step {
                        Step::Login => e.to_string(),
                        _ => format!("{}: {e}", side.name()),
                    },
                );
                return Err(e);
            }
        }
    }
    rec.measured(step, ms(started.elapsed()), detail.join(", "));
    Ok(values)
}

/// Reads messages until `pick` takes one, or the deadline passes. `error`
/// messages end the wait with their text.
async fn wait_for<T>(
    client: &mut Client,
    deadline: tokio::time::Instant,
    what: &str,
    pick: impl Fn(&ServerMessage) -> Option<T>,
) -> Result<(T, Instant)> {
    loop {
        let m = timeout_at(deadline, client.recv())
            .await
            .map_err(|_| ProbeError::Timeout(what.to_owned()))??;
        let at = Instant::now();
        if let Some(picked) = pick(&m) {
            return Ok((picked, at));
        }
        if let ServerMessage::Error {
            code,
            message,
            in_reply_to,
        } = &m
        {
            return Err(refused(in_reply_to, message, Some(*code)));
        }
    }
}

/// Every message the server had queued for this connection (a ping's
/// `pong` follows them), within `wait`.
async fn barrier(client: &mut Client, wait: Duration) -> Result<Vec<ServerMessage>> {
    tokio::time::timeout(wait, client.barrier())
        .await
        .map_err(|_| ProbeError::NoPong)?
        .map_err(ProbeError::from)
}

/// Clears what an interrupted earlier run may have left on the probe's own
/// accounts (a waiting request, a call, an owed outcome, "away"), so that
/// this run starts clean. Says what it did in the notes. Returns the
/// messages of the clean state (a clinician's rings for requests already
/// waiting are among them).
async fn clean_up_leftovers(
    client: &mut Client,
    side: Side,
    wait: Duration,
    notes: &mut Vec<String>,
) -> Result<Vec<ServerMessage>> {
    for _pass in 0..3 {
        let state = barrier(client, wait).await?;
        let mut acted = false;
        for m in &state {
            let (fixes, note) = match (side, m) {
                (
                    Side::Station,
                    ServerMessage::RequestUpdate {
                        state: RequestState::Waiting,
                        request_id,
                        ..
                    },
                ) => (
                    vec![ClientMessage::CancelRequest {
                        request_id: *request_id,
                    }],
                    Some(format!(
                        "cancelled request {request_id} left waiting by an earlier run"
                    )),
                ),
                (_, ServerMessage::CallStart { call_id, .. }) => (
                    vec![ClientMessage::HangUp { call_id: *call_id }],
                    Some(format!("hung up call {call_id} left by an earlier run")),
                ),
                (
                    Side::Clinician,
                    ServerMessage::Presence {
                        engaged: Some(engaged),
                        ..
                    },
                ) => {
                    let (Engagement::InCall { call_id } | Engagement::OutcomePending { call_id }) =
                        *engaged;
                    let why = "Probe test call left unfinished by an interrupted probe run";
                    let mut fixes = vec![record_outcome(
                        call_id,
                        Outcome::TechnicalFailure,
                        why.into(),
                    )];
                    if let Engagement::InCall { .. } = engaged {
                        fixes.push(ClientMessage::HangUp { call_id });
                    }
                    let note = format!(
                        "closed call {call_id} left by an earlier run (outcome technical_failure)"
                    );
                    (fixes, Some(note))
                }
                (Side::Clinician, ServerMessage::Presence { status, .. })
                    if *status != Availability::Available =>
                {
                    let available = ClientMessage::SetAvailability {
                        status: Availability::Available,
                    };
                    (vec![available], None)
                }
                _ => continue,
            };
            for fix in &fixes {
                client.send(fix).await?;
            }
            notes.extend(note);
            acted = true;
        }
        if !acted {
            return Ok(state);
        }
    }
    Err(ProbeError::Unfinished(side.name()))
}

async fn run_both(cfg: &ProbeConfig, rec: &mut Recorder, run: &mut Run) -> Result<()> {
    let (http, signed_in) = sign_in(cfg, rec, run, &[Side::Station, Side::Clinician]).await?;
    let mut clients = signed_in.into_iter().map(|s| s.client);
    let (Some(mut st), Some(mut cl)) = (clients.next(), clients.next()) else {
        return Err(ProbeError::MissingConnection("station or clinician"));
    };

    // The test consult, directed at the probe's clinician only.
    let reason = probe_reason();
    st.send(&test_request(reason.clone(), &cfg.clinician_username))
        .await?;
    let requested = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let (waiting, ring) = tokio::join!(
        wait_for(&mut st, deadline, "the request to be queued", queued),
        wait_for(&mut cl, deadline, "the clinician to be rung", |m| match m {
            ServerMessage::Ring { request } if request.reason == reason => {
                Some(request.request_id)
            }
            _ => None,
        }),
    );
    let request_id = match (waiting, ring) {
        (Ok(((waiting, _), _)), Ok((rung, rung_at))) => {
            rec.measured(Step::RequestToRing, ms(rung_at - requested), "");
            if rung != waiting {
                return Err(ProbeError::WrongRing);
            }
            rung
        }
        (waiting, ring) => {
            let waiting_id = waiting.as_ref().ok().map(|((id, _), _)| *id);
            let e = match (waiting, ring) {
                (Err(e), _) | (_, Err(e)) => e,
                _ => ProbeError::Timeout("the clinician to be rung".into()),
            };
            rec.failed(Step::RequestToRing, e.to_string());
            if let Some(request_id) = waiting_id {
                let _ = st.send(&ClientMessage::CancelRequest { request_id }).await;
            }
            return Err(e);
        }
    };
    run.consult_id = Some(request_id.0);
    cl.send(&ClientMessage::Accept { request_id }).await?;
    let accepted = Instant::now();

    let result = call(
        cfg,
        rec,
        run,
        vec![(Side::Station, st), (Side::Clinician, cl)],
        accepted,
    )
    .await;
    if let Some(manager) = &cfg.manager {
        match check_log(cfg, &http, manager, request_id.0).await {
            Ok(is_test) => run.logged_as_test_call = Some(is_test),
            Err(e) => run.notes.push(format!("could not check the log: {e}")),
        }
    }
    result?;
    if run.logged_as_test_call == Some(false) {
        return Err(ProbeError::NotLoggedAsTest);
    }
    Ok(())
}

async fn run_station_only(cfg: &ProbeConfig, rec: &mut Recorder, run: &mut Run) -> Result<()> {
    let (_, signed_in) = sign_in(cfg, rec, run, &[Side::Station]).await?;
    let Some(SignedIn { client: mut st, .. }) = signed_in.into_iter().next() else {
        return Err(ProbeError::MissingConnection("station"));
    };
    st.send(&test_request(probe_reason(), &cfg.clinician_username))
        .await?;
    let requested = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.answer_wait;
    let ((request_id, available), _) =
        wait_for(&mut st, deadline, "the request to be queued", queued).await?;
    run.consult_id = Some(request_id.0);
    if available == 0 {
        run.notes.push(format!(
            "{} is not available yet (not signed in, set busy or away, in a call, or owing the outcome of its last call); waiting up to {} s",
            cfg.clinician_username,
            cfg.answer_wait.as_secs()
        ));
    }
    let answered = wait_for(
        &mut st,
        deadline,
        &format!("{} to answer the test call", cfg.clinician_username),
        |m| {
            matches!(
                m,
                ServerMessage::RequestUpdate {
                    state: RequestState::Accepted,
                    ..
                }
            )
            .then_some(())
        },
    )
    .await;
    let accepted = match answered {
        Ok(((), at)) => at,
        Err(e) => {
            rec.failed(Step::RequestToAccept, e.to_string());
            let _ = st.send(&ClientMessage::CancelRequest { request_id }).await;
            return Err(e);
        }
    };
    rec.measured(
        Step::RequestToAccept,
        ms(accepted - requested),
        "the person's reaction time",
    );
    call(cfg, rec, run, vec![(Side::Station, st)], accepted).await
}

async fn run_clinician_only(cfg: &ProbeConfig, rec: &mut Recorder, run: &mut Run) -> Result<()> {
    let (_, signed_in) = sign_in(cfg, rec, run, &[Side::Clinician]).await?;
    let Some(SignedIn {
        client: mut cl,
        state,
    }) = signed_in.into_iter().next()
    else {
        return Err(ProbeError::MissingConnection("clinician"));
    };
    // Only ever a test call: a real patient's request is never answered
    // by the probe, however long it waits.
    let test_ring = |m: &ServerMessage| match m {
        ServerMessage::Ring { request } if request.test => {
            Some((request.request_id, request.station.clone()))
        }
        _ => None,
    };
    let (request_id, station) = match state.iter().find_map(test_ring) {
        Some(ring) => ring,
        None => {
            let deadline = tokio::time::Instant::now() + cfg.answer_wait;
            let username = cfg
                .clinician
                .as_ref()
                .map_or(cfg.clinician_username.as_str(), |c| c.username.as_str());
            let what = format!(
                "a test call to {username} from a station (the nurse chooses \"test call\")"
            );
            wait_for(&mut cl, deadline, &what, test_ring).await?.0
        }
    };
    run.consult_id = Some(request_id.0);
    run.notes
        .push(format!("answered a test call from {station}"));
    cl.send(&ClientMessage::Accept { request_id }).await?;
    let accepted = Instant::now();
    call(cfg, rec, run, vec![(Side::Clinician, cl)], accepted).await
}

/// The call, from the accept to the confirmed end: a task per side the
/// probe plays (`sides`: the station first when it plays both; the first
/// side hangs up). Playing one side, the person is the other: the call is
/// held for `--hold-seconds` once it works, and the person may hang up
/// first.
async fn call(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    run: &mut Run,
    sides: Vec<(Side, Client)>,
    accepted: Instant,
) -> Result<()> {
    let both = sides.len() > 1;
    let hold = if both { Duration::ZERO } else { cfg.hold };
    let (marks_tx, mut marks) = mpsc::unbounded_channel();
    let mut commands = Vec::new();
    let mut tasks = Vec::new();
    let hangs_up = sides.first().map_or(Side::Station, |(side, _)| *side);
    for (side, client) in sides {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        commands.push(cmd);
        tasks.push(tokio::spawn(side_task(SideSpec {
            side,
            peer: peer_config(cfg, &client),
            client,
            marks: marks_tx.clone(),
            commands: cmd_rx,
            // Playing both, the station waits for `completed` (the
            // outcome is in the log).
            wait_for_completed: both && side == Side::Station,
            limit: cfg.timeout + hold,
        })));
    }
    drop(marks_tx);
    // Every side is told the outcome (only a clinician records it); the
    // first side hangs up.
    let outcome = |outcome: Outcome, note: String| {
        for cmd in &commands {
            let _ = cmd.send(Command::Outcome(outcome, note.clone()));
        }
    };
    let hang_up = || {
        if let Some(cmd) = commands.first() {
            let _ = cmd.send(Command::HangUp);
        }
    };

    let mut call = CallMarks::default();
    let deadline = tokio::time::Instant::now() + cfg.timeout * 2 + hold;
    let mut live = tasks.len();
    let mut hang_up_due: Option<tokio::time::Instant> = None;
    let mut hung_up_at: Option<Instant> = None;
    let mut failure: Option<ProbeError> = None;
    while live > 0 {
        let wake = match (hang_up_due, hung_up_at) {
            (Some(due), None) => due.min(deadline),
            _ => deadline,
        };
        let (side, mark) = match timeout_at(wake, marks.recv()).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) if hang_up_due.is_some() && hung_up_at.is_none() => {
                hang_up();
                hung_up_at = Some(Instant::now());
                continue;
            }
            Err(_) => {
                failure.get_or_insert(ProbeError::CallTimeout);
                break;
            }
        };
        match mark {
            Mark::Done => live -= 1,
            Mark::Failed(e) => {
                live -= 1;
                let note = format!("Probe test call failed: {e}");
                failure.get_or_insert(if both {
                    ProbeError::Side {
                        side: side.name(),
                        source: Box::new(e),
                    }
                } else {
                    e
                });
                // The other side (if the probe plays it) hangs up.
                if hung_up_at.is_none() {
                    outcome(Outcome::TechnicalFailure, note);
                    hang_up();
                    hung_up_at = Some(Instant::now());
                }
            }
            Mark::HangUpSent(at) => hung_up_at = Some(at),
            Mark::CallEnded(at, reason) if side == hangs_up => match hung_up_at {
                Some(h) => rec.measured(Step::HangupLogged, ms(at - h), reason.as_str()),
                None if !both => {
                    rec.skipped(
                        Step::HangupLogged,
                        format!("the person ended the call first ({})", reason.as_str()),
                    );
                    hung_up_at = Some(at);
                }
                None => {}
            },
            other => call.record(side, other, run),
        }
        if hang_up_due.is_none() && hung_up_at.is_none() && call.complete(both) {
            outcome(
                Outcome::ManagedLocally,
                "Automated probe test call (no patient): call completed".into(),
            );
            if hold.is_zero() {
                hang_up();
                hung_up_at = Some(Instant::now());
            } else {
                hang_up_due = Some(tokio::time::Instant::now() + hold);
            }
        }
    }
    if failure.is_some() && hung_up_at.is_none() {
        outcome(Outcome::TechnicalFailure, "Probe test call failed".into());
        hang_up();
    }
    // Each side has its own deadline, and then at most the clean-up.
    for task in tasks {
        let _ = tokio::time::timeout(cfg.timeout + CLEANUP_WAIT, task).await;
    }
    call.report(rec, accepted, both, failure.is_some());
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Confirms with the log API that the consult is a test call, kept out of
/// the managers' default view.
async fn check_log(
    cfg: &ProbeConfig,
    http: &reqwest::Client,
    manager: &Credentials,
    consult_id: u64,
) -> Result<bool> {
    let token = login(http, &cfg.server.base, &manager.username, &manager.password)
        .await?
        .token;
    let since = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let with = client::get_json(
        http,
        &cfg.server,
        &format!("/api/consults?include_test_calls=true&from={since}"),
        &token,
    )
    .await?;
    let without = client::get_json(
        http,
        &cfg.server,
        &format!("/api/consults?from={since}"),
        &token,
    )
    .await?;
    let find = |v: &Value| -> Option<Value> {
        v["consults"]
            .as_array()?
            .iter()
            .find(|c| c["id"].as_u64() == Some(consult_id))
            .cloned()
    };
    let row = find(&with).ok_or(ProbeError::NotInLog(consult_id))?;
    Ok(row["test_call"] == true && find(&without).is_none())
}
