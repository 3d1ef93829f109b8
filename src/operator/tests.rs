//! The durability rule, both ways: what reveals a transition waits for
//! its commit, what depends on nothing unlogged does not.
//!
//! First through the real operator task with a log whose commits are held open
//! or failed on cue; then a property test that drives the switchboard and
//! [`Dispatch`] (the operator's own routing) through random sessions with random
//! commit delays and failures, checking every delivered message.

use super::dispatch::{Dispatch, LogBatch};
use super::*;
use signalling::sim::{self, ops_from_bytes, Op};
use signalling::{CallId, Config, RequestId, Role, Urgency, UserId};
use std::collections::VecDeque;
use std::sync::Mutex;

// ---------------------------------------------------------------- the operator

/// A session log that keeps events in memory; its commits can be held
/// open (they wait until released) or made to fail (the database is
/// unreachable) on cue.
#[derive(Clone)]
struct CueLog {
    hold: watch::Sender<bool>,
    fail: Arc<AtomicBool>,
    written: Arc<Mutex<Vec<Event>>>,
    /// Commits started so far (counted before holding or failing).
    started: Arc<AtomicUsize>,
}

impl CueLog {
    fn new() -> CueLog {
        CueLog {
            hold: watch::channel(false).0,
            fail: Arc::new(AtomicBool::new(false)),
            written: Arc::new(Mutex::new(Vec::new())),
            started: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    fn kinds(&self) -> Vec<String> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written
            .iter()
            .filter_map(|e| match e {
                Event::Consult { event, .. } => Some(event.kind().to_owned()),
                Event::Presence { .. } => None,
            })
            .collect()
    }
}

impl SessionLog for CueLog {
    async fn record(&self, events: &[Event]) -> Result<(), StoreError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let mut hold = self.hold.subscribe();
        let _ = hold.wait_for(|held| !*held).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        }
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.extend_from_slice(events);
        Ok(())
    }
}

struct Client {
    conn: ConnId,
    rx: mpsc::Receiver<Outbound>,
}

/// Long enough for a message that is going to arrive to arrive.
const SETTLE: Duration = Duration::from_millis(300);

impl Client {
    /// The next message of this type (others before it are skipped).
    async fn expect(&mut self, kind: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let out = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no {kind} within 5 s", self.conn))
                .unwrap_or_else(|| panic!("{}: closed while waiting for {kind}", self.conn));
            let v = parse(&out);
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Every message that arrives within [`SETTLE`], by type.
    async fn arrivals(&mut self) -> Vec<String> {
        let mut kinds = Vec::new();
        while let Ok(Some(out)) = tokio::time::timeout(SETTLE, self.rx.recv()).await {
            kinds.push(parse(&out)["type"].as_str().unwrap_or("?").to_owned());
        }
        kinds
    }
}

fn parse(out: &Outbound) -> serde_json::Value {
    let text = match out {
        Outbound::Text(t) => t.as_str(),
        Outbound::Close { text, .. } => text.as_str(),
    };
    serde_json::from_str(text).unwrap_or_default()
}

struct Rig {
    operator: OperatorHandle,
    log: CueLog,
}

impl Rig {
    fn new() -> Rig {
        let log = CueLog::new();
        let sb = Switchboard::new(Config::default(), Clock::new().now_ms());
        let operator = spawn(
            sb,
            log.clone(),
            Clock::new(),
            Arc::new(OperatorStats::new()),
        );
        Rig { operator, log }
    }

    async fn connect(&self, user: i64, role: Role) -> Client {
        let conn = self.operator.next_conn_id();
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let identity = Identity {
            user_id: UserId(user),
            username: format!("user{user}"),
            display_name: format!("User {user}"),
            role,
            site: None,
            escalation_duty: false,
            monitoring: false,
        };
        self.send(OperatorCommand::Connect {
            conn,
            identity,
            ice_servers: vec![],
            outbox,
        })
        .await;
        let mut client = Client { conn, rx };
        client.expect("welcome").await;
        client
    }

    async fn send(&self, cmd: OperatorCommand) {
        self.operator.send(cmd).await.expect("operator running");
    }

    async fn say(&self, client: &Client, message: ClientMessage) {
        self.send(OperatorCommand::Message {
            conn: client.conn,
            message,
        })
        .await;
    }

    async fn request(&self, station: &Client) {
        self.say(
            station,
            ClientMessage::RequestConsult {
                urgency: Urgency::Urgent,
                reason: "wrist".into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            },
        )
        .await;
    }

    /// A station and a clinician in a call, everything durable.
    async fn call(&self) -> (Client, Client, CallId) {
        let mut station = self.connect(1, Role::Station).await;
        let mut clinician = self.connect(10, Role::Clinician).await;
        self.request(&station).await;
        let ring = clinician.expect("ring").await;
        let request_id = RequestId(ring["request"]["request_id"].as_u64().expect("id"));
        self.say(&clinician, ClientMessage::Accept { request_id })
            .await;
        let start = station.expect("call_start").await;
        clinician.expect("call_start").await;
        let call_id = CallId(start["call_id"].as_u64().expect("call id"));
        station.arrivals().await;
        clinician.arrivals().await;
        (station, clinician, call_id)
    }

    /// Waits until a commit has started (and is being held).
    async fn commit_started(&self, before: usize) {
        for _ in 0..500 {
            if self.log.started.load(Ordering::SeqCst) > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no commit started");
    }
}

/// Both kinds arrived, `first` before `then`.
fn assert_arrive_in_order(kinds: &[String], first: &str, then: &str) {
    let a = kinds.iter().position(|k| k == first);
    let b = kinds.iter().position(|k| k == then);
    assert!(
        a.is_some() && b.is_some() && a < b,
        "expected {first} then {then}, got {kinds:?}"
    );
}

fn signal(call_id: CallId, n: u32) -> ClientMessage {
    ClientMessage::Signal {
        call_id,
        data: serde_json::json!({ "candidate": n }).into(),
    }
}

#[tokio::test]
async fn a_transition_reaches_nobody_until_its_commit() {
    let rig = Rig::new();
    let mut station = rig.connect(1, Role::Station).await;
    let mut clinician = rig.connect(10, Role::Clinician).await;
    clinician.arrivals().await;
    rig.log.hold(true);
    let before = rig.log.started.load(Ordering::SeqCst);
    rig.request(&station).await;
    rig.commit_started(before).await;
    assert_eq!(station.arrivals().await, Vec::<String>::new());
    assert_eq!(clinician.arrivals().await, Vec::<String>::new());
    assert!(!rig.log.kinds().contains(&"requested".to_owned()));
    rig.log.hold(false);
    station.expect("request_update").await;
    clinician.expect("ring").await;
    assert!(rig.log.kinds().contains(&"requested".to_owned()));
}

#[tokio::test]
async fn a_signal_goes_at_once_while_another_consult_commits() {
    let rig = Rig::new();
    let (mut station, mut clinician, call_id) = rig.call().await;
    let mut other = rig.connect(2, Role::Station).await;
    rig.log.hold(true);
    let before = rig.log.started.load(Ordering::SeqCst);
    // Another unit asks for help: its request is being written...
    rig.request(&other).await;
    rig.commit_started(before).await;
    // ...while the call's parties exchange candidates, both ways.
    rig.say(&clinician, signal(call_id, 1)).await;
    rig.say(&station, signal(call_id, 2)).await;
    assert_eq!(station.arrivals().await, ["signal"]);
    // The clinician's queue update about the other request waits; the
    // signal of their own call does not wait behind it.
    assert_eq!(clinician.arrivals().await, ["signal"]);
    assert_eq!(other.arrivals().await, Vec::<String>::new());
    rig.log.hold(false);
    other.expect("request_update").await;
    clinician.expect("queue").await;
}

#[tokio::test]
async fn a_signal_never_overtakes_its_call_start() {
    let rig = Rig::new();
    let mut station = rig.connect(1, Role::Station).await;
    let mut clinician = rig.connect(10, Role::Clinician).await;
    rig.request(&station).await;
    let ring = clinician.expect("ring").await;
    let request_id = RequestId(ring["request"]["request_id"].as_u64().expect("id"));
    station.arrivals().await;
    clinician.arrivals().await;
    rig.log.hold(true);
    let before = rig.log.started.load(Ordering::SeqCst);
    rig.say(&clinician, ClientMessage::Accept { request_id })
        .await;
    rig.commit_started(before).await;
    // A client that signals before it has heard of the call (the call id
    // is the next one: the first call of this switchboard).
    rig.say(&clinician, signal(CallId(1), 1)).await;
    assert_eq!(station.arrivals().await, Vec::<String>::new());
    rig.log.hold(false);
    assert_arrive_in_order(&station.arrivals().await, "call_start", "signal");
}

#[tokio::test]
async fn nothing_overtakes_a_call_end() {
    let rig = Rig::new();
    let (mut station, clinician, call_id) = rig.call().await;
    rig.log.hold(true);
    let before = rig.log.started.load(Ordering::SeqCst);
    rig.say(&clinician, ClientMessage::HangUp { call_id }).await;
    rig.commit_started(before).await;
    // The station pings: its pong depends on nothing, but the call's end
    // is ahead of it.
    rig.say(&station, ClientMessage::Ping { nonce: Some(7) })
        .await;
    assert_eq!(station.arrivals().await, Vec::<String>::new());
    rig.log.hold(false);
    assert_arrive_in_order(&station.arrivals().await, "call_end", "pong");
    // With nothing held, a pong goes at once.
    rig.say(&station, ClientMessage::Ping { nonce: Some(8) })
        .await;
    station.expect("pong").await;
}

#[tokio::test]
async fn while_the_log_cannot_be_written_no_transition_is_delivered() {
    let rig = Rig::new();
    let (mut station, mut clinician, call_id) = rig.call().await;
    rig.log.fail.store(true, Ordering::SeqCst);
    rig.say(&clinician, ClientMessage::HangUp { call_id }).await;
    // Retried, and failing: nobody hears of the hang-up...
    for _ in 0..100 {
        if rig.operator.stats.log_failures.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rig.operator.stats.log_ok.load(Ordering::SeqCst));
    assert_eq!(station.arrivals().await, Vec::<String>::new());
    assert_eq!(clinician.arrivals().await, Vec::<String>::new());
    assert!(!rig.log.kinds().contains(&"call_ended".to_owned()));
    // ...and once the database is back, everyone does, once.
    rig.log.fail.store(false, Ordering::SeqCst);
    station.expect("call_end").await;
    clinician.expect("call_end").await;
    assert!(rig.operator.stats.log_ok.load(Ordering::SeqCst));
    let ended = rig
        .log
        .kinds()
        .iter()
        .filter(|k| *k == "call_ended")
        .count();
    assert_eq!(ended, 1);
}

#[tokio::test]
async fn a_call_in_progress_keeps_its_signals_through_a_log_outage() {
    let rig = Rig::new();
    let (mut station, clinician, call_id) = rig.call().await;
    rig.log.fail.store(true, Ordering::SeqCst);
    let mut other = rig.connect(2, Role::Station).await;
    rig.request(&other).await;
    rig.say(&clinician, signal(call_id, 3)).await;
    assert_eq!(station.arrivals().await, ["signal"]);
    assert_eq!(other.arrivals().await, Vec::<String>::new());
    rig.log.fail.store(false, Ordering::SeqCst);
    other.expect("request_update").await;
}

#[tokio::test]
async fn shutdown_waits_for_the_log_and_delivers_first() {
    let rig = Rig::new();
    let (mut station, clinician, call_id) = rig.call().await;
    rig.log.hold(true);
    rig.say(&clinician, ClientMessage::HangUp { call_id }).await;
    let operator = rig.operator.clone();
    let shutdown = tokio::spawn(async move { operator.shutdown().await });
    tokio::time::sleep(SETTLE).await;
    assert!(!shutdown.is_finished(), "shut down with a commit open");
    rig.log.hold(false);
    shutdown.await.expect("shutdown");
    station.expect("call_end").await;
    assert!(rig.log.kinds().contains(&"call_ended".to_owned()));
}

/// A session log whose writes panic: a bug in the writer's path.
struct PanickingLog;

impl SessionLog for PanickingLog {
    async fn record(&self, _events: &[Event]) -> Result<(), StoreError> {
        panic!("a bug in the session log");
    }
}

#[tokio::test]
async fn an_operator_that_dies_says_so_instead_of_sitting_there() {
    let stats = Arc::new(OperatorStats::new());
    let sb = Switchboard::new(Config::default(), Clock::new().now_ms());
    let operator = spawn(sb, PanickingLog, Clock::new(), stats.clone());
    let (outbox, mut rx) = mpsc::channel(OUTBOX_CAPACITY);
    let conn = operator.next_conn_id();
    // The first connection's welcome waits for the log: the writer panics.
    operator
        .send(OperatorCommand::Connect {
            conn,
            identity: Identity {
                user_id: UserId(10),
                username: "dr".into(),
                display_name: "Dr".into(),
                role: Role::Clinician,
                site: None,
                escalation_duty: false,
                monitoring: false,
            },
            ice_servers: vec![],
            outbox,
        })
        .await
        .expect("operator running");
    let mut dead = stats.dead.subscribe();
    tokio::time::timeout(Duration::from_secs(5), dead.wait_for(|d| *d))
        .await
        .expect("the death is reported within 5 s")
        .expect("stats kept");
    assert!(operator.is_stopped(), "the operator takes no more commands");
    // The client was not told anything that is not in the log; it was
    // closed so that it reconnects (to the restarted server).
    match rx.recv().await {
        Some(Outbound::Close { code, .. }) => assert_eq!(code, 1012),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn an_operator_shut_down_on_purpose_is_not_reported_dead() {
    let rig = Rig::new();
    rig.connect(10, Role::Clinician).await;
    rig.operator.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!*rig.operator.stats.dead.borrow());
}

// ------------------------------------------------- the property test

use proptest::prelude::*;

/// One message as the switchboard produced it.
struct Produced {
    conn: ConnId,
    key: String,
    /// Log events produced up to the end of its turn: all must be durable
    /// before a message that reveals a transition is delivered.
    events_before: usize,
    immediate: bool,
    /// For the overtaking rule: "queue", "call:N", "pong" or "barrier".
    about: String,
    delivered: bool,
}

/// The spec of what may overtake what, written out apart from
/// `dispatch::classify` so that the two check each other.
fn spec(message: &ServerMessage) -> (bool, String) {
    let v: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap_or_default();
    let kind = v["type"].as_str().unwrap_or("");
    let call = |v: &serde_json::Value| format!("call:{}", v["call_id"]);
    match kind {
        "signal" => (true, call(&v)),
        "pong" => (true, "pong".into()),
        "queue" | "ring" | "escalation" => (false, "queue".into()),
        "presence" if v["engaged"].is_null() => (false, "queue".into()),
        "presence" => (false, call(&v["engaged"])),
        "call_start" | "peer_status" | "outcome_recorded" => (false, call(&v)),
        _ => (false, "barrier".into()),
    }
}

fn key(out: &Outbound) -> String {
    match out {
        Outbound::Text(t) => t.as_str().to_owned(),
        Outbound::Close { text, code } => format!("close {code} {text}"),
    }
}

#[derive(Default)]
struct Model {
    produced: Vec<Produced>,
    events: usize,
    /// Events in committed transactions.
    durable_events: usize,
    /// Batches handed to the writer, not yet taken into a transaction.
    queued: VecDeque<LogBatch>,
    /// The writer's open transaction: last batch number, event count.
    open: Option<(u64, usize)>,
    gone: std::collections::HashSet<ConnId>,
}

impl Model {
    fn turn(&mut self, sb: &mut Switchboard, dispatch: &mut Dispatch) {
        let mut outputs = Vec::new();
        while let Some(out) = sb.poll_output() {
            outputs.push(out);
        }
        let recorded = outputs
            .iter()
            .filter(|o| matches!(o, Output::Record(_)))
            .count();
        self.events += recorded;
        for out in &outputs {
            let (conns, message) = match out {
                Output::Send { to, message } => (to.clone(), message.clone()),
                Output::Close { conn, code } => (
                    vec![*conn],
                    ServerMessage::Error {
                        code: *code,
                        message: String::new(),
                        in_reply_to: None,
                    },
                ),
                Output::Record(_) => continue,
            };
            let (immediate, about) = spec(&message);
            for conn in conns {
                self.produced.push(Produced {
                    conn,
                    key: String::new(),
                    events_before: self.events,
                    immediate: immediate && matches!(out, Output::Send { .. }),
                    about: about.clone(),
                    delivered: false,
                });
            }
        }
        // The keys as the dispatcher renders them, in the same order.
        let first = self.produced.len()
            - outputs
                .iter()
                .map(|o| match o {
                    Output::Send { to, .. } => to.len(),
                    Output::Close { .. } => 1,
                    Output::Record(_) => 0,
                })
                .sum::<usize>();
        let mut i = first;
        let mut probe = Dispatch::new();
        for out in &outputs {
            if matches!(out, Output::Record(_)) {
                continue;
            }
            probe.route(vec![out.clone()]);
            for (_, o) in probe.take_ready() {
                self.produced[i].key = key(&o);
                i += 1;
            }
        }
        if let Some(batch) = dispatch.route(outputs) {
            assert_eq!(batch.events.len(), recorded);
            self.queued.push_back(batch);
        }
    }

    fn deliver(&mut self, dispatch: &mut Dispatch) -> Result<(), TestCaseError> {
        for (conn, out) in dispatch.take_ready() {
            if self.gone.contains(&conn) {
                // The operator has no outbox for it any more (a station signing
                // out is told its request is withdrawn as it goes).
                continue;
            }
            let k = key(&out);
            let Some(i) = self
                .produced
                .iter()
                .position(|p| p.conn == conn && !p.delivered && p.key == k)
            else {
                return Err(TestCaseError::fail(format!(
                    "delivered to {conn} what was never produced (or twice): {k}"
                )));
            };
            let p = &self.produced[i];
            if !p.immediate && p.events_before > self.durable_events {
                return Err(TestCaseError::fail(format!(
                    "{k} reached {conn} with {} of the {} events before it durable",
                    self.durable_events, p.events_before
                )));
            }
            for earlier in &self.produced[..i] {
                if earlier.conn == conn && !earlier.delivered {
                    let allowed =
                        p.immediate && earlier.about != "barrier" && earlier.about != p.about;
                    if !allowed {
                        return Err(TestCaseError::fail(format!(
                            "{k} overtook {} to {conn}",
                            earlier.key
                        )));
                    }
                }
            }
            self.produced[i].delivered = true;
        }
        // Nothing is held without cause.
        for (i, p) in self.produced.iter().enumerate() {
            if p.delivered || self.gone.contains(&p.conn) {
                continue;
            }
            let blocked = self.produced[..i].iter().any(|e| {
                e.conn == p.conn
                    && !e.delivered
                    && (!p.immediate || e.about == "barrier" || e.about == p.about)
            });
            let due = p.immediate || p.events_before <= self.durable_events;
            if due && !blocked {
                return Err(TestCaseError::fail(format!(
                    "{} to {} held without cause",
                    p.key, p.conn
                )));
            }
        }
        Ok(())
    }

    fn forget(&mut self, conn: ConnId, dispatch: &mut Dispatch) {
        self.gone.insert(conn);
        dispatch.forget(conn);
    }

    /// The writer: takes the queued batches into one transaction (group
    /// commit), or ends its open one, successfully or not.
    fn write(&mut self, action: u8, dispatch: &mut Dispatch) {
        match (self.open, action % 3) {
            (None, _) => {
                let mut last = None;
                let mut n = 0;
                while let Some(b) = self.queued.pop_front() {
                    n += b.events.len();
                    last = Some(b.seq);
                }
                self.open = last.map(|seq| (seq, n));
            }
            // Fails: retried, still open.
            (Some(_), 0) => {}
            (Some((seq, n)), _) => {
                self.open = None;
                self.durable_events += n;
                dispatch.committed(seq);
            }
        }
    }
}

fn run_session(bytes: &[u8], writes: &[u8]) -> Result<(), TestCaseError> {
    let ops = ops_from_bytes(bytes);
    let mut sb = Switchboard::new(
        Config {
            disconnect_grace_ms: 5_000,
            escalation: [signalling::EscalationPolicy {
                realert_after_ms: 2_000,
                escalate_after_ms: 5_000,
            }; 3],
            ..Config::default()
        },
        0,
    );
    let mut dispatch = Dispatch::new();
    let mut model = Model::default();
    let mut now = 0i64;
    let mut next_conn = 1u64;
    let mut conn_of: std::collections::HashMap<usize, ConnId> = Default::default();
    let mut writes = writes.iter().copied().cycle();
    for op in &ops {
        match op {
            Op::Connect(u) => {
                let identity = sim::identity(*u);
                let conn = ConnId(next_conn);
                next_conn += 1;
                conn_of.insert(*u, conn);
                sb.handle(
                    now,
                    Input::Connect {
                        conn,
                        identity,
                        ice_servers: vec![],
                    },
                );
            }
            Op::Disconnect(u) | Op::SignOut(u) => {
                let Some(conn) = conn_of.remove(u) else {
                    continue;
                };
                model.forget(conn, &mut dispatch);
                let input = if matches!(op, Op::SignOut(_)) {
                    Input::SignOut { conn }
                } else {
                    Input::Disconnect { conn }
                };
                sb.handle(now, input);
            }
            Op::Send(u, m) => {
                let Some(&conn) = conn_of.get(u) else {
                    continue;
                };
                sb.handle(
                    now,
                    Input::Message {
                        conn,
                        message: m.to_client(),
                    },
                );
            }
            Op::Advance(ms) => {
                now += (*ms).max(0);
                if sb.poll_timeout().is_some_and(|t| t <= now) {
                    sb.handle(now, Input::Timeout);
                }
            }
        }
        model.turn(&mut sb, &mut dispatch);
        model.deliver(&mut dispatch)?;
        // Between inputs the writer makes zero or more steps.
        let steps = writes.next().unwrap_or(0) % 4;
        for _ in 0..steps {
            let action = writes.next().unwrap_or(1);
            model.write(action, &mut dispatch);
            model.deliver(&mut dispatch)?;
        }
    }
    // The database comes back for good: everything owed is delivered.
    while model.open.is_some() || !model.queued.is_empty() {
        model.write(1, &mut dispatch);
        model.deliver(&mut dispatch)?;
    }
    prop_assert_eq!(dispatch.in_flight(), 0);
    for p in &model.produced {
        if !p.delivered && !model.gone.contains(&p.conn) {
            return Err(TestCaseError::fail(format!(
                "{} to {} never delivered",
                p.key, p.conn
            )));
        }
    }
    prop_assert_eq!(model.durable_events, model.events);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_delivered_message_keeps_the_durability_rule(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        writes in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        run_session(&bytes, &writes)?;
    }
}

#[test]
fn a_scripted_session_keeps_the_rule() {
    // Connect everyone, request, accept, signal both ways with the writer
    // stalled, then let it run.
    let mut bytes = Vec::new();
    for u in 0..7u8 {
        bytes.extend([0, u, 0]);
    }
    bytes.extend([4, 0, 0]); // station 1 requests
    bytes.extend([7, 3, 0]); // clinician 10 accepts request 1
    for _ in 0..4 {
        bytes.extend([10, 3, 0]); // signals in call 1
        bytes.extend([10, 0, 0]);
    }
    bytes.extend([12, 3, 0]); // hang up
    run_session(&bytes, &[0]).expect("stalled writer");
    run_session(&bytes, &[3, 0, 0, 1]).expect("slow, failing writer");
    run_session(&bytes, &[1, 1]).expect("quick writer");
}
