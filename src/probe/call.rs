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

fn peer_config(cfg: &ProbeConfig, client: &Client) -> PeerConfig {
    let ice_servers = client
        .welcome()
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .filter(|s| !s.urls.is_empty())
        .collect();
    let udp_bind = cfg.udp_bind.clone().unwrap_or_else(|| {
        if cfg.server.loopback {
            "127.0.0.1:0".to_owned()
        } else {
            "0.0.0.0:0".to_owned()
        }
    });
    PeerConfig {
        ice_servers,
        udp_bind,
    }
}

struct SideSpec {
    side: Side,
    client: Client,
    peer: PeerConfig,
    marks: mpsc::UnboundedSender<(Side, Mark)>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// The station waits for `completed` (the outcome is in the log).
    wait_for_completed: bool,
    /// How long the call may take from `call_start` to its end.
    limit: Duration,
}

async fn side_task(spec: SideSpec) {
    let side = spec.side;
    let marks = spec.marks.clone();
    let mark = |m| {
        let _ = marks.send((side, m));
    };
    match side_call(spec).await {
        Ok(()) => mark(Mark::Done),
        Err(e) => mark(Mark::Failed(e)),
    }
}

async fn side_call(spec: SideSpec) -> Result<()> {
    let SideSpec {
        side,
        mut client,
        peer: peer_cfg,
        marks,
        mut commands,
        wait_for_completed,
        limit,
    } = spec;
    let mark = |m| {
        let _ = marks.send((side, m));
    };
    let deadline = tokio::time::Instant::now() + limit;
    let ((call_id, offerer), _) = wait_for(&mut client, deadline, "call_start", |m| match m {
        ServerMessage::CallStart {
            call_id, offerer, ..
        } => Some((*call_id, *offerer)),
        _ => None,
    })
    .await?;
    mark(Mark::CallStart { call_id });
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut peer = Peer::new(&peer_cfg, events_tx.clone())
        .await
        .map_err(ProbeError::Peer)?;
    let result = call_loop(
        side,
        &mut client,
        &mut peer,
        &mut events,
        events_tx,
        &mut commands,
        &mark,
        CallLoop {
            call_id,
            offerer,
            wait_for_completed,
            deadline,
        },
    )
    .await;
    peer.close().await;
    if let Err(e) = &result {
        // Best effort, so the accounts are left clean for the next run.
        let clean = async {
            if side == Side::Clinician {
                let note = format!("Probe test call failed: {e}");
                let _ = client
                    .send(&record_outcome(call_id, Outcome::TechnicalFailure, note))
                    .await;
            }
            let _ = client.send(&ClientMessage::HangUp { call_id }).await;
            let _ = client.barrier().await;
        };
        let _ = tokio::time::timeout(CLEANUP_WAIT, clean).await;
    }
    let _ = client.close().await;
    result
}

struct CallLoop {
    call_id: CallId,
    offerer: bool,
    wait_for_completed: bool,
    deadline: tokio::time::Instant,
}

/// A `signal` about this call, its data carrying the negotiation's
/// `negotiation` (when there is one).
fn signal(call_id: CallId, negotiation: &Option<String>, mut data: Value) -> ClientMessage {
    if let (Some(s), Some(obj)) = (negotiation, data.as_object_mut()) {
        obj.insert("negotiation".into(), Value::String(s.clone()));
    }
    ClientMessage::Signal {
        call_id,
        data: data.into(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn call_loop(
    side: Side,
    client: &mut Client,
    peer: &mut Peer,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    mark: &impl Fn(Mark),
    spec: CallLoop,
) -> Result<()> {
    let CallLoop {
        call_id,
        offerer,
        wait_for_completed,
        deadline,
    } = spec;
    // The browser client names each peer connection's negotiation with a
    // `negotiation` id and ignores signals for any other one: the offerer picks
    // it, the answerer echoes it on everything it sends.
    let mut negotiation: Option<String> =
        offerer.then(|| format!("probe-{:016x}", rand::random::<u64>()));
    if offerer {
        peer.create_data_channel(events_tx)
            .await
            .map_err(ProbeError::Peer)?;
        let offer = peer.offer().await.map_err(ProbeError::Peer)?;
        client
            .send(&signal(
                call_id,
                &negotiation,
                json!({"description": offer}),
            ))
            .await?;
    } else {
        drop(events_tx);
    }
    let mut remote_set = false;
    let mut early_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    // The offerer sends its candidates only once the answer is applied:
    // connectivity checks that reach webrtc-rs before it has the answer
    // fail (a role conflict) and are retried about a second later.
    let mut held_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    let mut channel: Option<Arc<dyn DataChannel>> = None;
    let mut ping_sent: Vec<Instant> = Vec::new();
    let mut rtts: Vec<f64> = Vec::new();
    let mut echo_deadline = far_future();
    let mut outcome = (
        Outcome::TechnicalFailure,
        "Probe test call ended before it completed".to_owned(),
    );
    let mut ended = false;
    let mut first_video: Option<(Instant, Option<(u16, u16)>)> = None;
    loop {
        tokio::select! {
            m = client.recv() => match m? {
                ServerMessage::Signal { call_id: about, data } if about == call_id => {
                    let data: Value = serde_json::from_str(data.get()).unwrap_or_default();
                    if data["description"].is_object() {
                        if !offerer {
                            if let Some(s) = data["negotiation"].as_str() {
                                negotiation = Some(s.to_owned());
                            }
                        }
                        let desc: RTCSessionDescription =
                            serde_json::from_value(data["description"].clone())
                                .map_err(ProbeError::BadDescription)?;
                        if let Some(answer) = peer.remote_description(desc).await.map_err(ProbeError::Peer)? {
                            client.send(&signal(call_id, &negotiation, json!({"description": answer}))).await?;
                        }
                        remote_set = true;
                        for c in early_candidates.drain(..) {
                            peer.add_candidate(c).await.map_err(ProbeError::Peer)?;
                        }
                        for c in held_candidates.drain(..) {
                            client.send(&signal(call_id, &negotiation, json!({"candidate": c}))).await?;
                        }
                    } else if data["candidate"].is_object() {
                        match serde_json::from_value::<RTCIceCandidateInit>(data["candidate"].clone()) {
                            Ok(c) if c.candidate.is_empty() => {} // end of candidates
                            Ok(c) if remote_set => {
                                if let Err(e) = peer.add_candidate(c).await {
                                    mark(Mark::Note(format!("{}: {e}", side.name())));
                                }
                            }
                            Ok(c) => early_candidates.push(c),
                            Err(e) => mark(Mark::Note(format!("ignored a bad candidate: {e}"))),
                        }
                    }
                }
                ServerMessage::CallEnd { reason, .. } => {
                    mark(Mark::CallEnded(Instant::now(), reason));
                    ended = true;
                    if side == Side::Clinician {
                        client.send(&record_outcome(call_id, outcome.0, outcome.1.clone())).await?;
                    } else if !wait_for_completed {
                        return Ok(());
                    }
                }
                ServerMessage::OutcomeRecorded { .. } if side == Side::Clinician && ended => return Ok(()),
                ServerMessage::RequestUpdate { state: RequestState::Completed, .. }
                    if side == Side::Station && ended => return Ok(()),
                ServerMessage::Pong { nonce: Some(CONNECTED_NONCE), .. } => {
                    if let Some((at, size)) = first_video {
                        mark(Mark::FirstVideo(at, size));
                    }
                }
                ServerMessage::PeerStatus { connected: false, .. } => {
                    mark(Mark::Note(format!("the other side's signalling connection dropped during call {call_id}")));
                }
                ServerMessage::Error { code: ErrorCode::UnknownCall | ErrorCode::NotInCall, in_reply_to, .. }
                    if matches!(in_reply_to.as_deref(), Some("hang_up" | "call_connected")) => {
                    // The other side hung up at the same moment: the
                    // call is over either way, and call_end follows.
                }
                ServerMessage::Error { message, in_reply_to, .. } => {
                    return Err(refused(&in_reply_to, &message, None));
                }
                _ => {}
            },
            Some(ev) = events.recv() => match ev {
                PeerEvent::LocalCandidate(c) => {
                    if offerer && !remote_set {
                        held_candidates.push(c);
                    } else {
                        client.send(&signal(call_id, &negotiation, json!({"candidate": c}))).await?;
                    }
                }
                PeerEvent::IceConnected(at) => mark(Mark::IceConnected(at)),
                PeerEvent::Connected(at) => {
                    mark(Mark::DtlsConnected(at));
                    peer.start_video().await.map_err(ProbeError::Peer)?;
                    if !offerer && channel.is_none() {
                        // The answerer only learns of a probe data channel
                        // if the offerer opened one (a browser does not).
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                    }
                }
                PeerEvent::IceFailed => return Err(ProbeError::IceFailed),
                PeerEvent::Failed => return Err(ProbeError::PeerFailed),
                PeerEvent::FirstVideoPacket(at, size) => {
                    if first_video.is_none() {
                        // Tell the server media is flowing, and report the
                        // packet only once the server has handled that (its
                        // pong follows): the other side may hang up as soon
                        // as it hears of it.
                        first_video = Some((at, size));
                        client.send(&ClientMessage::CallConnected { call_id }).await?;
                        client.send(&ClientMessage::Ping { nonce: Some(CONNECTED_NONCE) }).await?;
                    }
                }
                PeerEvent::VideoPackets(n) => mark(Mark::VideoPackets(n)),
                PeerEvent::DataChannelOpen(dc) => {
                    if channel.is_none() {
                        // Both sides ping and both answer pings, so each
                        // can time the round trip itself.
                        peer::send_text(&dc, &json!({"probe_ping": 0}).to_string()).await.map_err(ProbeError::Peer)?;
                        ping_sent.push(Instant::now());
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                        channel = Some(dc);
                    }
                }
                PeerEvent::DataChannelMessage(at, data) => {
                    let Some(dc) = &channel else { continue };
                    let message = serde_json::from_slice::<Value>(&data).unwrap_or_default();
                    if let Some(n) = message["probe_ping"].as_u64() {
                        peer::send_text(dc, &json!({"probe_pong": n}).to_string()).await.map_err(ProbeError::Peer)?;
                        continue;
                    }
                    let seq = message["probe_pong"].as_u64()
                        .and_then(|s| usize::try_from(s).ok());
                    if let Some(sent) = seq.and_then(|s| ping_sent.get(s).copied()) {
                        if seq == Some(rtts.len()) {
                            rtts.push(ms(at - sent));
                            if rtts.len() == PINGS {
                                mark(Mark::Rtt(rtts.clone()));
                                echo_deadline = far_future();
                            } else {
                                peer::send_text(dc, &json!({"probe_ping": rtts.len()}).to_string()).await.map_err(ProbeError::Peer)?;
                                ping_sent.push(Instant::now());
                                echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                            }
                        }
                    }
                }
                PeerEvent::DataChannelClosed => {}
            },
            Some(cmd) = commands.recv() => match cmd {
                Command::Outcome(o, note) => outcome = (o, note),
                Command::HangUp => {
                    client.send(&ClientMessage::HangUp { call_id }).await?;
                    mark(Mark::HangUpSent(Instant::now()));
                }
            },
            _ = tokio::time::sleep_until(echo_deadline) => {
                echo_deadline = far_future();
                mark(Mark::RttUnavailable(if offerer {
                    format!("no echo on the {} data channel within {} s (a browser client does not echo)",
                        peer::DATA_CHANNEL_LABEL, ECHO_WAIT.as_secs())
                } else {
                    format!("the other side opened no {} data channel (a browser client does not)",
                        peer::DATA_CHANNEL_LABEL)
                }));
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(if ended {
                    ProbeError::EndNotConfirmed
                } else {
                    ProbeError::CallNotUp
                });
            }
        }
    }
}

/// The call's milestones, per side.
#[derive(Default)]
struct CallMarks {
    ice: [Option<Instant>; 2],
    dtls: [Option<Instant>; 2],
    video: [Option<Instant>; 2],
    rtt: Option<Result<Vec<f64>, String>>,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Station => 0,
        Side::Clinician => 1,
    }
}

impl CallMarks {
    fn record(&mut self, side: Side, mark: Mark, run: &mut Run) {
        let i = idx(side);
        fn seen(run: &mut Run, side: Side) -> &mut VideoSeen {
            match side {
                Side::Station => run.video_at_station.get_or_insert_with(VideoSeen::default),
                Side::Clinician => run
                    .video_at_clinician
                    .get_or_insert_with(VideoSeen::default),
            }
        }
        match mark {
            Mark::CallStart { call_id } => run.call_id = Some(call_id.0),
            Mark::IceConnected(at) => self.ice[i] = Some(at),
            Mark::DtlsConnected(at) => self.dtls[i] = Some(at),
            Mark::FirstVideo(at, size) => {
                self.video[i] = Some(at);
                let v = seen(run, side);
                v.packets = v.packets.max(1);
                v.first_key_frame = size.map(|(w, h)| format!("{w}x{h}"));
            }
            Mark::VideoPackets(n) => {
                let v = seen(run, side);
                v.packets = v.packets.max(n);
            }
            Mark::Rtt(samples) => self.rtt = Some(Ok(samples)),
            // A measured round trip wins over the other side's "none came".
            Mark::RttUnavailable(why) if !matches!(self.rtt, Some(Ok(_))) => {
                self.rtt = Some(Err(why));
            }
            Mark::Note(n) => run.notes.push(n),
            _ => {}
        }
    }

    /// Everything measured (both sides, or the probe's one side).
    fn complete(&self, both: bool) -> bool {
        let have = |a: &[Option<Instant>; 2]| {
            if both {
                a.iter().all(Option::is_some)
            } else {
                a.iter().any(Option::is_some)
            }
        };
        have(&self.ice) && have(&self.dtls) && have(&self.video) && self.rtt.is_some()
    }

    fn report(&self, rec: &mut Recorder, accepted: Instant, both: bool, failed: bool) {
        let why_missing = if failed {
            "did not happen before the call failed"
        } else {
            "did not happen"
        };
        for (step, marks) in [
            (Step::AcceptToIceConnected, &self.ice),
            (Step::AcceptToDtlsConnected, &self.dtls),
            (Step::AcceptToFirstVideo, &self.video),
        ] {
            let present: Vec<(usize, Instant)> = marks
                .iter()
                .enumerate()
                .filter_map(|(i, m)| m.map(|t| (i, t)))
                .collect();
            let needed = if both { 2 } else { 1 };
            if present.len() < needed {
                rec.failed(step, why_missing);
                continue;
            }
            let latest = present.iter().map(|(_, t)| *t).max().unwrap_or(accepted);
            let detail = if both {
                present
                    .iter()
                    .map(|(i, t)| {
                        let who = if *i == 0 {
                            if step == Step::AcceptToFirstVideo {
                                "at station"
                            } else {
                                "station"
                            }
                        } else if step == Step::AcceptToFirstVideo {
                            "at clinician"
                        } else {
                            "clinician"
                        };
                        format!("{who} {:.0} ms", ms(t.saturating_duration_since(accepted)))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                String::new()
            };
            rec.measured(step, ms(latest.saturating_duration_since(accepted)), detail);
        }
        match &self.rtt {
            Some(Ok(samples)) if !samples.is_empty() => {
                let mut s = samples.clone();
                s.sort_by(f64::total_cmp);
                let median = s[s.len() / 2];
                rec.measured(
                    Step::DataChannelRtt,
                    median,
                    format!("median of {} round trips", s.len()),
                );
            }
            Some(Err(why)) if !both => rec.skipped(Step::DataChannelRtt, why.clone()),
            Some(Err(why)) => rec.failed(Step::DataChannelRtt, why.clone()),
            _ => rec.failed(Step::DataChannelRtt, why_missing),
        }
        if !rec.has(Step::HangupLogged) {
            rec.failed(Step::HangupLogged, "the end of the call was not confirmed");
        }
    }
}
