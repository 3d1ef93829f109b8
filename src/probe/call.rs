//! One probe run: log in, place a directed test consult, make the WebRTC
//! call, measure each step, hang up, and confirm the log.
//!
//! Each side of the call (station, clinician) is a task that owns its
//! signalling connection and its peer, and reports [`Mark`]s (things that
//! happened, with when) to the run, which decides when to hang up.

use super::client::{self, Server, WsReceiver, WsSender};
use super::peer::{self, Peer, PeerConfig, PeerEvent};
use super::report::{Recorder, Report, Status, Step, Thresholds, VideoSeen};
use super::video;
use serde_json::{json, Value};
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
}

/// What a side reports.
#[derive(Debug)]
enum Mark {
    CallStart { call_id: u64 },
    IceConnected(Instant),
    DtlsConnected(Instant),
    FirstVideo(Instant, Option<(u16, u16)>),
    VideoPackets(u64),
    Rtt(Vec<f64>),
    RttUnavailable(String),
    HangUpSent(Instant),
    CallEnded(Instant, String),
    Note(String),
    Done,
    Failed(String),
}

/// What the run tells a side.
#[derive(Debug)]
enum Command {
    /// The outcome the clinician side records when the call ends.
    Outcome(&'static str, String),
    HangUp,
}

struct Conn {
    tx: WsSender,
    rx: WsReceiver,
    welcome: Value,
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
    let result = match (encoded, cfg.role) {
        (Err(e), _) => Err(e),
        (Ok(()), role) => match role {
            ProbeRole::Both => run_both(cfg, &mut rec, &mut run).await,
            ProbeRole::StationOnly => run_station_only(cfg, &mut rec, &mut run).await,
            ProbeRole::ClinicianOnly => run_clinician_only(cfg, &mut rec, &mut run).await,
        },
    };
    let error = result.err();
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

fn creds<'a>(c: &'a Option<Credentials>, who: &str) -> Result<&'a Credentials, String> {
    c.as_ref()
        .ok_or_else(|| format!("no {who} account given (--{who}-user and its password)"))
}

fn peer_config(cfg: &ProbeConfig, welcome: &Value) -> PeerConfig {
    let ice_servers = welcome["ice_servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: match &s["urls"] {
                        Value::String(u) => vec![u.clone()],
                        Value::Array(us) => us
                            .iter()
                            .filter_map(|u| u.as_str().map(str::to_owned))
                            .collect(),
                        _ => vec![],
                    },
                    username: s["username"].as_str().unwrap_or_default().to_owned(),
                    credential: s["credential"].as_str().unwrap_or_default().to_owned(),
                })
                .filter(|s| !s.urls.is_empty())
                .collect()
        })
        .unwrap_or_default();
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

/// Logs in (each given account, at the same time) and records the step.
async fn login_all(
    cfg: &ProbeConfig,
    http: &reqwest::Client,
    rec: &mut Recorder,
    accounts: &[(&'static str, &Credentials)],
) -> Result<Vec<String>, String> {
    let started = Instant::now();
    let attempts = futures_util::future::join_all(accounts.iter().map(|(who, c)| async move {
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            cfg.timeout,
            client::login(http, &cfg.server, &c.username, &c.password),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer to the login of {}", c.username)));
        (*who, r, t0.elapsed())
    }))
    .await;
    let mut tokens = Vec::new();
    let mut detail = Vec::new();
    for (who, r, took) in attempts {
        match r {
            Ok(token) => {
                tokens.push(token);
                detail.push(format!("{who} {:.0} ms", ms(took)));
            }
            Err(e) => {
                rec.failed(Step::Login, e.clone());
                return Err(e);
            }
        }
    }
    rec.measured(Step::Login, ms(started.elapsed()), detail.join(", "));
    Ok(tokens)
}

async fn connect_all(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    tokens: &[(&'static str, String)],
) -> Result<Vec<Conn>, String> {
    let started = Instant::now();
    let attempts = futures_util::future::join_all(tokens.iter().map(|(who, token)| async move {
        let t0 = Instant::now();
        let r = tokio::time::timeout(cfg.timeout, client::connect(&cfg.server, token))
            .await
            .unwrap_or_else(|_| Err("no welcome from the signalling WebSocket".into()));
        (*who, r, t0.elapsed())
    }))
    .await;
    let mut conns = Vec::new();
    let mut detail = Vec::new();
    for (who, r, took) in attempts {
        match r {
            Ok((tx, rx, welcome)) => {
                conns.push(Conn { tx, rx, welcome });
                detail.push(format!("{who} {:.0} ms", ms(took)));
            }
            Err(e) => {
                rec.failed(Step::WebsocketConnect, format!("{who}: {e}"));
                return Err(e);
            }
        }
    }
    rec.measured(
        Step::WebsocketConnect,
        ms(started.elapsed()),
        detail.join(", "),
    );
    Ok(conns)
}

/// Reads messages until one matches, or the deadline passes. `error`
/// messages end the wait with their text.
async fn wait_for(
    rx: &mut WsReceiver,
    deadline: tokio::time::Instant,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<(Value, Instant), String> {
    loop {
        let m = timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| format!("timed out waiting for {what}"))??;
        let at = Instant::now();
        if pred(&m) {
            return Ok((m, at));
        }
        if m["type"] == "error" {
            return Err(format!(
                "the server refused {}: {} ({})",
                m["in_reply_to"].as_str().unwrap_or("a message"),
                m["message"].as_str().unwrap_or_default(),
                m["code"].as_str().unwrap_or_default()
            ));
        }
    }
}

/// Sends a ping and returns every message that arrived before its pong:
/// the whole state the server had queued for this connection.
async fn barrier(conn: &mut Conn, nonce: u64, wait: Duration) -> Result<Vec<Value>, String> {
    conn.tx
        .send(json!({"type": "ping", "nonce": nonce}))
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let m = timeout_at(deadline, conn.rx.recv())
            .await
            .map_err(|_| "the server did not answer a ping".to_owned())??;
        if m["type"] == "pong" && m["nonce"] == nonce {
            return Ok(seen);
        }
        seen.push(m);
    }
}

/// Clears what an interrupted earlier run may have left on the probe's own
/// accounts (a waiting request, a call, an owed outcome, "away"), so that
/// this run starts clean. Says what it did in the notes. Returns the
/// messages of the clean state (a clinician's rings for requests already
/// waiting are among them).
async fn clean_up_leftovers(
    conn: &mut Conn,
    side: Side,
    wait: Duration,
    notes: &mut Vec<String>,
) -> Result<Vec<Value>, String> {
    for pass in 0..3u64 {
        let state = barrier(conn, 9_000 + pass, wait).await?;
        let mut acted = false;
        for m in &state {
            match (side, m["type"].as_str().unwrap_or_default()) {
                (Side::Station, "request_update") if m["state"] == "waiting" => {
                    conn.tx
                        .send(json!({"type": "cancel_request", "request_id": m["request_id"]}))
                        .await?;
                    notes.push(format!(
                        "cancelled request {} left waiting by an earlier run",
                        m["request_id"]
                    ));
                    acted = true;
                }
                (_, "call_start") => {
                    conn.tx
                        .send(json!({"type": "hang_up", "call_id": m["call_id"]}))
                        .await?;
                    notes.push(format!(
                        "hung up call {} left by an earlier run",
                        m["call_id"]
                    ));
                    acted = true;
                }
                (Side::Clinician, "presence") => {
                    let engaged = &m["engaged"];
                    if engaged.is_object() {
                        conn.tx
                            .send(json!({"type": "record_outcome", "call_id": engaged["call_id"],
                                "outcome": "technical_failure",
                                "note": "Probe test call left unfinished by an interrupted probe run"}))
                            .await?;
                        if engaged["state"] == "in_call" {
                            conn.tx
                                .send(json!({"type": "hang_up", "call_id": engaged["call_id"]}))
                                .await?;
                        }
                        notes.push(format!(
                            "closed call {} left by an earlier run (outcome technical_failure)",
                            engaged["call_id"]
                        ));
                        acted = true;
                    } else if m["status"] != "available" {
                        conn.tx
                            .send(json!({"type": "set_availability", "status": "available"}))
                            .await?;
                        acted = true;
                    }
                }
                _ => {}
            }
        }
        if !acted {
            return Ok(state);
        }
    }
    Err(format!(
        "the {} account still has an unfinished consult after clean-up; \
         check it in the browser client",
        side.name()
    ))
}

fn probe_reason() -> String {
    format!(
        "MIU Link monitoring probe (automated test call) {:08x}",
        rand::random::<u32>()
    )
}

async fn run_both(cfg: &ProbeConfig, rec: &mut Recorder, run: &mut Run) -> Result<(), String> {
    let station = creds(&cfg.station, "station")?;
    let clinician = creds(&cfg.clinician, "clinician")?;
    let http = client::http_client(cfg.timeout)?;
    let tokens = login_all(
        cfg,
        &http,
        rec,
        &[("station", station), ("clinician", clinician)],
    )
    .await?;
    let mut conns = connect_all(
        cfg,
        rec,
        &[
            ("clinician", tokens[1].clone()),
            ("station", tokens[0].clone()),
        ],
    )
    .await?;
    let mut st = conns.pop().ok_or("no station connection")?;
    let mut cl = conns.pop().ok_or("no clinician connection")?;
    for (conn, side, role) in [
        (&st, Side::Station, "station"),
        (&cl, Side::Clinician, "clinician"),
    ] {
        if conn.welcome["role"] != role {
            return Err(format!(
                "the {} account is a {} account, not a {role}",
                side.name(),
                conn.welcome["role"]
            ));
        }
    }
    clean_up_leftovers(&mut cl, Side::Clinician, cfg.timeout, &mut run.notes).await?;
    clean_up_leftovers(&mut st, Side::Station, cfg.timeout, &mut run.notes).await?;

    // The test consult, directed at the probe's clinician only.
    let reason = probe_reason();
    st.tx
        .send(
            json!({"type": "request_consult", "urgency": "routine", "reason": reason,
            "test": true, "direct_to": clinician.username}),
        )
        .await?;
    let requested = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.timeout;
    let (waiting, ring) = tokio::join!(
        wait_for(&mut st.rx, deadline, "the request to be queued", |m| {
            m["type"] == "request_update" && m["state"] == "waiting"
        }),
        wait_for(&mut cl.rx, deadline, "the clinician to be rung", |m| {
            m["type"] == "ring" && m["request"]["reason"] == reason.as_str()
        }),
    );
    let request_id = match (waiting, ring) {
        (Ok((w, _)), Ok((r, rung_at))) => {
            rec.measured(Step::RequestToRing, ms(rung_at - requested), "");
            let id = r["request"]["request_id"].as_u64();
            if id != w["request_id"].as_u64() {
                return Err("the ring was for a different request".into());
            }
            id.ok_or("the ring had no request id")?
        }
        (waiting, ring) => {
            let e = match (&waiting, &ring) {
                (Err(e), _) | (_, Err(e)) => e.clone(),
                _ => "the request was not rung".to_owned(),
            };
            rec.failed(Step::RequestToRing, e.clone());
            if let Ok((w, _)) = waiting {
                let _ = st
                    .tx
                    .send(json!({"type": "cancel_request", "request_id": w["request_id"]}))
                    .await;
            }
            return Err(e);
        }
    };
    run.consult_id = Some(request_id);
    cl.tx
        .send(json!({"type": "accept", "request_id": request_id}))
        .await?;
    let accepted = Instant::now();

    let (marks_tx, mut marks) = mpsc::unbounded_channel();
    let (st_cmd, st_cmd_rx) = mpsc::unbounded_channel();
    let (cl_cmd, cl_cmd_rx) = mpsc::unbounded_channel();
    let station_peer = peer_config(cfg, &st.welcome);
    let station_task = tokio::spawn(side_task(SideSpec {
        side: Side::Station,
        conn: st,
        peer: station_peer,
        marks: marks_tx.clone(),
        commands: st_cmd_rx,
        wait_for_completed: true,
        limit: cfg.timeout,
    }));
    let clinician_peer = peer_config(cfg, &cl.welcome);
    let clinician_task = tokio::spawn(side_task(SideSpec {
        side: Side::Clinician,
        conn: cl,
        peer: clinician_peer,
        marks: marks_tx,
        commands: cl_cmd_rx,
        wait_for_completed: false,
        limit: cfg.timeout,
    }));

    let mut call = CallMarks::default();
    let deadline = tokio::time::Instant::now() + cfg.timeout * 2;
    let mut hung_up_at = None;
    let mut failure: Option<String> = None;
    let mut done = 0;
    while done < 2 {
        let Ok(Some((side, mark))) = timeout_at(deadline, marks.recv()).await else {
            failure.get_or_insert_with(|| "the call did not finish in time".into());
            break;
        };
        match mark {
            Mark::Done => done += 1,
            Mark::Failed(e) => {
                failure.get_or_insert(format!("{}: {e}", side.name()));
                done += 1;
                if hung_up_at.is_none() {
                    let _ = cl_cmd.send(Command::Outcome(
                        "technical_failure",
                        format!("Probe test call failed: {e}"),
                    ));
                    let _ = st_cmd.send(Command::HangUp);
                    hung_up_at = Some(Instant::now());
                }
            }
            Mark::HangUpSent(at) => hung_up_at = Some(at),
            Mark::CallEnded(at, reason) if side == Side::Station => {
                if let Some(h) = hung_up_at {
                    rec.measured(Step::HangupLogged, ms(at - h), reason);
                }
            }
            other => call.record(side, other, run),
        }
        if hung_up_at.is_none() && call.complete(true) {
            let _ = cl_cmd.send(Command::Outcome(
                "managed_locally",
                "Automated probe test call (no patient): call completed".into(),
            ));
            let _ = st_cmd.send(Command::HangUp);
            hung_up_at = Some(Instant::now());
        }
    }
    let _ = station_task.await;
    let _ = clinician_task.await;
    call.report(rec, accepted, true, failure.is_some());
    if let Some(manager) = &cfg.manager {
        match check_log(cfg, &http, manager, request_id).await {
            Ok(is_test) => run.logged_as_test_call = Some(is_test),
            Err(e) => run.notes.push(format!("could not check the log: {e}")),
        }
    }
    match failure {
        Some(e) => Err(e),
        None if run.logged_as_test_call == Some(false) => {
            Err("the consult was not logged as a test call".into())
        }
        None => Ok(()),
    }
}

async fn run_station_only(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    run: &mut Run,
) -> Result<(), String> {
    let station = creds(&cfg.station, "station")?;
    let http = client::http_client(cfg.timeout)?;
    let tokens = login_all(cfg, &http, rec, &[("station", station)]).await?;
    let mut st = connect_all(cfg, rec, &[("station", tokens[0].clone())])
        .await?
        .pop()
        .ok_or("no station connection")?;
    if st.welcome["role"] != "station" {
        return Err(format!(
            "{} is a {} account, not a station",
            station.username, st.welcome["role"]
        ));
    }
    clean_up_leftovers(&mut st, Side::Station, cfg.timeout, &mut run.notes).await?;
    st.tx
        .send(
            json!({"type": "request_consult", "urgency": "routine", "reason": probe_reason(),
            "test": true, "direct_to": cfg.clinician_username}),
        )
        .await?;
    let requested = Instant::now();
    let deadline = tokio::time::Instant::now() + cfg.answer_wait;
    let (waiting, _) = wait_for(&mut st.rx, deadline, "the request to be queued", |m| {
        m["type"] == "request_update" && m["state"] == "waiting"
    })
    .await?;
    let request_id = waiting["request_id"].as_u64().ok_or("no request id")?;
    run.consult_id = Some(request_id);
    if waiting["clinicians_available"] == 0 {
        run.notes.push(format!(
            "{} is not available yet (not signed in, set busy or away, in a call, or owing the outcome of its last call); waiting up to {} s",
            cfg.clinician_username,
            cfg.answer_wait.as_secs()
        ));
    }
    let accepted = match wait_for(
        &mut st.rx,
        deadline,
        &format!("{} to answer the test call", cfg.clinician_username),
        |m| m["type"] == "request_update" && m["state"] == "accepted",
    )
    .await
    {
        Ok((_, at)) => at,
        Err(e) => {
            rec.failed(Step::RequestToAccept, e.clone());
            let _ = st
                .tx
                .send(json!({"type": "cancel_request", "request_id": request_id}))
                .await;
            return Err(e);
        }
    };
    rec.measured(
        Step::RequestToAccept,
        ms(accepted - requested),
        "the person's reaction time",
    );
    one_side_call(cfg, rec, run, Side::Station, st, accepted).await
}

async fn run_clinician_only(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    run: &mut Run,
) -> Result<(), String> {
    let clinician = creds(&cfg.clinician, "clinician")?;
    let http = client::http_client(cfg.timeout)?;
    let tokens = login_all(cfg, &http, rec, &[("clinician", clinician)]).await?;
    let mut cl = connect_all(cfg, rec, &[("clinician", tokens[0].clone())])
        .await?
        .pop()
        .ok_or("no clinician connection")?;
    if cl.welcome["role"] != "clinician" {
        return Err(format!(
            "{} is a {} account, not a clinician",
            clinician.username, cl.welcome["role"]
        ));
    }
    let state = clean_up_leftovers(&mut cl, Side::Clinician, cfg.timeout, &mut run.notes).await?;
    // Only ever a test call: a real patient's request is never answered
    // by the probe, however long it waits.
    let is_test_ring = |m: &Value| m["type"] == "ring" && m["request"]["test"] == true;
    let ring = match state.into_iter().find(is_test_ring) {
        Some(ring) => ring,
        None => {
            let deadline = tokio::time::Instant::now() + cfg.answer_wait;
            wait_for(
                &mut cl.rx,
                deadline,
                &format!(
                    "a test call to {} from a station (the nurse chooses \"test call\")",
                    clinician.username
                ),
                is_test_ring,
            )
            .await?
            .0
        }
    };
    let request_id = ring["request"]["request_id"]
        .as_u64()
        .ok_or("the ring had no request id")?;
    run.consult_id = Some(request_id);
    run.notes.push(format!(
        "answered a test call from {}",
        ring["request"]["station"].as_str().unwrap_or("a station")
    ));
    cl.tx
        .send(json!({"type": "accept", "request_id": request_id}))
        .await?;
    let accepted = Instant::now();
    one_side_call(cfg, rec, run, Side::Clinician, cl, accepted).await
}

/// The call part of a one-side run: the person is the other side.
async fn one_side_call(
    cfg: &ProbeConfig,
    rec: &mut Recorder,
    run: &mut Run,
    side: Side,
    conn: Conn,
    accepted: Instant,
) -> Result<(), String> {
    let (marks_tx, mut marks) = mpsc::unbounded_channel();
    let (cmd, cmd_rx) = mpsc::unbounded_channel();
    let peer = peer_config(cfg, &conn.welcome);
    let task = tokio::spawn(side_task(SideSpec {
        side,
        conn,
        peer,
        marks: marks_tx,
        commands: cmd_rx,
        wait_for_completed: false,
        limit: cfg.timeout + cfg.hold,
    }));
    let mut call = CallMarks::default();
    let deadline = tokio::time::Instant::now() + cfg.timeout * 2 + cfg.hold;
    let mut hang_up_due: Option<tokio::time::Instant> = None;
    let mut hung_up_at = None;
    let mut failure = None;
    loop {
        let wake = match (hang_up_due, hung_up_at) {
            (Some(due), None) => due.min(deadline),
            _ => deadline,
        };
        let next = timeout_at(wake, marks.recv()).await;
        let (_, mark) = match next {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) if hang_up_due.is_some() && hung_up_at.is_none() => {
                let _ = cmd.send(Command::HangUp);
                hung_up_at = Some(Instant::now());
                continue;
            }
            Err(_) => {
                failure = Some("the call did not finish in time".to_owned());
                break;
            }
        };
        match mark {
            Mark::Done => break,
            Mark::Failed(e) => {
                failure = Some(e);
                break;
            }
            Mark::HangUpSent(at) => hung_up_at = Some(at),
            Mark::CallEnded(at, reason) => {
                match hung_up_at {
                    Some(h) => rec.measured(Step::HangupLogged, ms(at - h), reason),
                    None => {
                        rec.skipped(
                            Step::HangupLogged,
                            format!("the person ended the call first ({reason})"),
                        );
                    }
                }
                hung_up_at.get_or_insert(at);
            }
            other => call.record(side, other, run),
        }
        if hang_up_due.is_none() && call.complete(false) {
            let _ = cmd.send(Command::Outcome(
                "managed_locally",
                "Automated probe test call (no patient): call completed".into(),
            ));
            hang_up_due = Some(tokio::time::Instant::now() + cfg.hold);
        }
    }
    if failure.is_some() && hung_up_at.is_none() {
        let _ = cmd.send(Command::Outcome(
            "technical_failure",
            "Probe test call failed".into(),
        ));
        let _ = cmd.send(Command::HangUp);
    }
    let _ = tokio::time::timeout(CLEANUP_WAIT, task).await;
    call.report(rec, accepted, false, failure.is_some());
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
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
            Mark::CallStart { call_id } => run.call_id = Some(call_id),
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

/// Confirms with the log API that the consult is a test call, kept out of
/// the managers' default view.
async fn check_log(
    cfg: &ProbeConfig,
    http: &reqwest::Client,
    manager: &Credentials,
    consult_id: u64,
) -> Result<bool, String> {
    let token = client::login(http, &cfg.server, &manager.username, &manager.password).await?;
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
    let row = find(&with).ok_or_else(|| format!("consult {consult_id} is not in the log"))?;
    Ok(row["test_call"] == true && find(&without).is_none())
}

struct SideSpec {
    side: Side,
    conn: Conn,
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

async fn side_call(spec: SideSpec) -> Result<(), String> {
    let SideSpec {
        side,
        mut conn,
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
    let (start, _) = wait_for(&mut conn.rx, deadline, "call_start", |m| {
        m["type"] == "call_start"
    })
    .await?;
    let call_id = start["call_id"]
        .as_u64()
        .ok_or("call_start had no call id")?;
    mark(Mark::CallStart { call_id });
    let offerer = start["offerer"] == true;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut peer = Peer::new(&peer_cfg, events_tx.clone()).await?;
    let result = call_loop(
        side,
        &mut conn,
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
                let _ = conn
                    .tx
                    .send(json!({"type": "record_outcome", "call_id": call_id,
                        "outcome": "technical_failure", "note": format!("Probe test call failed: {e}")}))
                    .await;
            }
            let _ = conn
                .tx
                .send(json!({"type": "hang_up", "call_id": call_id}))
                .await;
            let _ = barrier(&mut conn, 9_999, CLEANUP_WAIT).await;
        };
        let _ = tokio::time::timeout(CLEANUP_WAIT, clean).await;
    }
    conn.tx.close().await;
    result
}

struct CallLoop {
    call_id: u64,
    offerer: bool,
    wait_for_completed: bool,
    deadline: tokio::time::Instant,
}

#[allow(clippy::too_many_arguments)]
async fn call_loop(
    side: Side,
    conn: &mut Conn,
    peer: &mut Peer,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    mark: &impl Fn(Mark),
    spec: CallLoop,
) -> Result<(), String> {
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
    let signal = |negotiation: &Option<String>, mut data: Value| {
        if let (Some(s), Some(obj)) = (negotiation, data.as_object_mut()) {
            obj.insert("negotiation".into(), Value::String(s.clone()));
        }
        json!({"type": "signal", "call_id": call_id, "data": data})
    };
    if offerer {
        peer.create_data_channel(events_tx).await?;
        let offer = peer.offer().await?;
        conn.tx
            .send(signal(&negotiation, json!({"description": offer})))
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
    let far_future = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut echo_deadline = far_future;
    let mut outcome: (&'static str, String) = (
        "technical_failure",
        "Probe test call ended before it completed".into(),
    );
    let mut ended = false;
    let mut first_video: Option<(Instant, Option<(u16, u16)>)> = None;
    loop {
        tokio::select! {
            m = conn.rx.recv() => {
                let m = m?;
                match m["type"].as_str().unwrap_or_default() {
                    "signal" if m["call_id"].as_u64() == Some(call_id) => {
                        let data = &m["data"];
                        if data["description"].is_object() {
                            if !offerer {
                                if let Some(s) = data["negotiation"].as_str() {
                                    negotiation = Some(s.to_owned());
                                }
                            }
                            let desc: RTCSessionDescription =
                                serde_json::from_value(data["description"].clone())
                                    .map_err(|e| format!("the other side sent a bad description: {e}"))?;
                            if let Some(answer) = peer.remote_description(desc).await? {
                                conn.tx.send(signal(&negotiation, json!({"description": answer}))).await?;
                            }
                            remote_set = true;
                            for c in early_candidates.drain(..) {
                                peer.add_candidate(c).await?;
                            }
                            for c in held_candidates.drain(..) {
                                conn.tx.send(signal(&negotiation, json!({"candidate": c}))).await?;
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
                    "call_end" => {
                        let reason = m["reason"].as_str().unwrap_or_default().to_owned();
                        mark(Mark::CallEnded(Instant::now(), reason));
                        ended = true;
                        if side == Side::Clinician {
                            conn.tx.send(json!({"type": "record_outcome", "call_id": call_id,
                                "outcome": outcome.0, "note": outcome.1})).await?;
                        } else if !wait_for_completed {
                            return Ok(());
                        }
                    }
                    "outcome_recorded" if side == Side::Clinician && ended => return Ok(()),
                    "request_update" if side == Side::Station && ended
                        && m["state"] == "completed" => return Ok(()),
                    "pong" if m["nonce"] == CONNECTED_NONCE => {
                        if let Some((at, size)) = first_video {
                            mark(Mark::FirstVideo(at, size));
                        }
                    }
                    "peer_status" if m["connected"] == false => {
                        mark(Mark::Note(format!("the other side's signalling connection dropped during call {call_id}")));
                    }
                    "error" if matches!(m["in_reply_to"].as_str(), Some("hang_up" | "call_connected"))
                        && matches!(m["code"].as_str(), Some("unknown_call" | "not_in_call")) => {
                        // The other side hung up at the same moment: the
                        // call is over either way, and call_end follows.
                    }
                    "error" => {
                        return Err(format!("the server refused {}: {}",
                            m["in_reply_to"].as_str().unwrap_or("a message"),
                            m["message"].as_str().unwrap_or_default()));
                    }
                    _ => {}
                }
            }
            Some(ev) = events.recv() => match ev {
                PeerEvent::LocalCandidate(c) => {
                    if offerer && !remote_set {
                        held_candidates.push(c);
                    } else {
                        conn.tx.send(signal(&negotiation, json!({"candidate": c}))).await?;
                    }
                }
                PeerEvent::IceConnected(at) => mark(Mark::IceConnected(at)),
                PeerEvent::Connected(at) => {
                    mark(Mark::DtlsConnected(at));
                    peer.start_video().await?;
                    if !offerer && channel.is_none() {
                        // The answerer only learns of a probe data channel
                        // if the offerer opened one (a browser does not).
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                    }
                }
                PeerEvent::IceFailed => return Err("ICE failed: no network path between the two sides".into()),
                PeerEvent::Failed => return Err("the peer connection failed".into()),
                PeerEvent::FirstVideoPacket(at, size) => {
                    if first_video.is_none() {
                        // Tell the server media is flowing, and report the
                        // packet only once the server has handled that (its
                        // pong follows): the other side may hang up as soon
                        // as it hears of it.
                        first_video = Some((at, size));
                        conn.tx.send(json!({"type": "call_connected", "call_id": call_id})).await?;
                        conn.tx.send(json!({"type": "ping", "nonce": CONNECTED_NONCE})).await?;
                    }
                }
                PeerEvent::VideoPackets(n) => mark(Mark::VideoPackets(n)),
                PeerEvent::DataChannelOpen(dc) => {
                    if channel.is_none() {
                        // Both sides ping and both answer pings, so each
                        // can time the round trip itself.
                        peer::send_text(&dc, &json!({"probe_ping": 0}).to_string()).await?;
                        ping_sent.push(Instant::now());
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                        channel = Some(dc);
                    }
                }
                PeerEvent::DataChannelMessage(at, data) => {
                    let Some(dc) = &channel else { continue };
                    let message = serde_json::from_slice::<Value>(&data).unwrap_or_default();
                    if let Some(n) = message["probe_ping"].as_u64() {
                        peer::send_text(dc, &json!({"probe_pong": n}).to_string()).await?;
                        continue;
                    }
                    let seq = message["probe_pong"].as_u64()
                        .and_then(|s| usize::try_from(s).ok());
                    if let Some(sent) = seq.and_then(|s| ping_sent.get(s).copied()) {
                        if seq == Some(rtts.len()) {
                            rtts.push(ms(at - sent));
                            if rtts.len() == PINGS {
                                mark(Mark::Rtt(rtts.clone()));
                                echo_deadline = far_future;
                            } else {
                                peer::send_text(dc, &json!({"probe_ping": rtts.len()}).to_string()).await?;
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
                    conn.tx.send(json!({"type": "hang_up", "call_id": call_id})).await?;
                    mark(Mark::HangUpSent(Instant::now()));
                }
            },
            _ = tokio::time::sleep_until(echo_deadline) => {
                echo_deadline = far_future;
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
                    "the server did not confirm the end of the call in time".into()
                } else {
                    "the call did not come up and end in time".into()
                });
            }
        }
    }
}
