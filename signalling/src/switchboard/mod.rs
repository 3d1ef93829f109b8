//! The switchboard: presence, the one queue, ringing, calls and timeouts, as
//! a sans-IO state machine.
//!
//! The server feeds it [`Input`]s, each with the current time, and drains
//! [`Output`]s with [`Switchboard::poll_output`]: messages to send, events to
//! record and connections to close. [`Switchboard::poll_timeout`] says when
//! it next needs to be woken with [`Input::Timeout`]. It never reads a clock,
//! spawns, locks or does IO, so every rule is tested with a fake clock.
//!
//! Ordering contract with the server: the [`Output::Record`] events produced
//! by one call to [`Switchboard::handle`] must be durable before any
//! [`Output::Send`] from that same call is delivered.
//!
//! State is held per *account*, not per connection: an account has at most
//! one live connection (a newer one replaces the older), and when that
//! connection is lost the account's request or call is kept for a grace
//! period, so a reconnect resumes where it left off.
//!
//! # Layout
//!
//! This module holds the state (the types below and [`Switchboard`]'s
//! fields), the public API (`new`, `handle`, `poll_output`,
//! `poll_timeout`, the read-only views) and the router of client messages
//! (`message`). Each concern has a file of its own, each an
//! `impl Switchboard` block:
//!
//! * `connections.rs`: connect, reconnect and resume, lost connections and
//!   their grace period, availability and presence;
//! * `requests.rs`: a station's request (its acknowledgement included),
//!   cancel, abandon;
//! * `calls.rs`: the accept race, the relay, media and quality, hang-up,
//!   the owed outcome;
//! * `queue.rs`: the queue's order and indexes, ringing, queue updates;
//! * `escalation.rs`: re-alerting and escalating unanswered requests;
//! * `restore.rs`: rebuilding what was open from the log;
//! * `invariants.rs`: `check_invariants`, for the tests.

use crate::event::{ConsultEvent, Event, Party, PresenceStatus, RingTrigger, Side};
use crate::protocol::{
    Availability, CallId, ClientMessage, ConnId, ConsultSummary, EndReason, Engagement, ErrorCode,
    EscalationLevel, IceServer, Identity, Limits, Millis, Outcome, Peer, ProtocolError,
    QualitySample, QueueEntry, RequestId, RequestState, Role, ServerMessage, Urgency, UserId,
    UserInfo, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use std::collections::{BTreeSet, HashMap, VecDeque};

mod calls;
mod connections;
mod escalation;
mod invariants;
mod queue;
mod requests;
mod restore;

pub use restore::{Restore, RestoredCall, RestoredOwed, RestoredRequest};

/// When an unanswered request is escalated, counted from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationPolicy {
    /// Re-alert every available clinician and tell the nurse.
    pub realert_after_ms: i64,
    /// Alert accounts with an escalation duty even if busy; show the nurse
    /// the fallback phone number.
    pub escalate_after_ms: i64,
}

/// Tunables. Times are in milliseconds.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long an account's request or call is kept after its connection
    /// is lost before it ends as abandoned / disconnected.
    pub disconnect_grace_ms: i64,
    /// Per urgency, in the order of [`Urgency::ALL`] (immediate, urgent,
    /// routine).
    pub escalation: [EscalationPolicy; 3],
    /// The first ids to hand out (the server passes one past the largest
    /// already in the log, so ids never repeat across restarts).
    pub first_request_id: u64,
    pub first_call_id: u64,
    /// The station test line: the clinician (username) that answers nurses'
    /// test calls, if the trust runs one. A station that is not a
    /// monitoring account may place a test call, or ring one clinician
    /// directly, only to this line.
    pub test_line: Option<String>,
    /// A change in the count of available clinicians alone is sent to
    /// those watching the queue at most this often (a change of what the
    /// queue holds goes at once). 0 sends every change at once.
    pub queue_count_every_ms: i64,
    /// What clients are told they may send (in `welcome`).
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            disconnect_grace_ms: 60_000,
            // Re-alert at half the answer target, escalate at the target
            // (targets: immediate 2 min, urgent 5 min, routine 15 min).
            escalation: [
                EscalationPolicy {
                    realert_after_ms: 60_000,
                    escalate_after_ms: 120_000,
                },
                EscalationPolicy {
                    realert_after_ms: 150_000,
                    escalate_after_ms: 300_000,
                },
                EscalationPolicy {
                    realert_after_ms: 450_000,
                    escalate_after_ms: 900_000,
                },
            ],
            first_request_id: 1,
            first_call_id: 1,
            test_line: None,
            queue_count_every_ms: 1_000,
            limits: Limits::default(),
        }
    }
}

impl Config {
    pub fn escalation_for(&self, urgency: Urgency) -> EscalationPolicy {
        match urgency {
            Urgency::Immediate => self.escalation[0],
            Urgency::Urgent => self.escalation[1],
            Urgency::Routine => self.escalation[2],
        }
    }
}

/// What an account is doing, for the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub user_id: UserId,
    /// False while its connection is lost (within the grace period).
    pub connected: bool,
    /// A clinician's availability.
    pub availability: Option<Availability>,
    pub activity: Activity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Idle,
    /// A station's request is waiting.
    Waiting,
    InCall,
    /// A clinician's call ended and its outcome is not recorded yet.
    OutcomeOwed,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Idle => "idle",
            Activity::Waiting => "waiting",
            Activity::InCall => "in_call",
            Activity::OutcomeOwed => "outcome_owed",
        }
    }
}

/// The position of an urgency in [`Urgency::ALL`].
fn urgency_index(u: Urgency) -> usize {
    match u {
        Urgency::Immediate => 0,
        Urgency::Urgent => 1,
        Urgency::Routine => 2,
    }
}

/// Something that happened, with the time it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An authenticated connection opened.
    Connect {
        conn: ConnId,
        identity: Identity,
        ice_servers: Vec<IceServer>,
    },
    /// A decoded and validated message from a connection.
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    /// The connection closed (either side, for any reason).
    Disconnect { conn: ConnId },
    /// The user signed out on purpose: a station's waiting request is
    /// withdrawn (logged as cancelled, never left as a ghost a doctor could
    /// try to answer), then the connection is gone as with `Disconnect`.
    SignOut { conn: ConnId },
    /// The time from [`Switchboard::poll_timeout`] has come.
    Timeout,
}

/// Something the server must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send one message to each of these connections.
    Send {
        to: Vec<ConnId>,
        message: ServerMessage,
    },
    /// Write this to the session log (before delivering this input's sends).
    Record(Event),
    /// Close this connection after sending it this error.
    Close { conn: ConnId, code: ErrorCode },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Waiting(RequestId),
    InCall(CallId),
}

#[derive(Debug)]
struct Account {
    identity: Identity,
    conn: Option<ConnId>,
    /// When the connection was lost; the grace period runs from here.
    lost_at: Option<Millis>,
    /// Station: its one open request or call.
    open: Option<Open>,
    /// Clinician: what they chose.
    availability: Availability,
    /// Clinician: a call or an outcome to record.
    engaged: Option<Engagement>,
    /// Clinician, manager: the queue as last sent to this connection
    /// ([`view_key`] of its entries, and the count of clinicians
    /// available), so that an unchanged one is not sent again.
    queue_told: Option<(u64, u32)>,
}

impl Account {
    /// Connected, available and free: could be rung now. (Monitoring
    /// accounts too, for the test calls directed at them.)
    fn ringable(&self) -> bool {
        self.identity.role == Role::Clinician
            && self.conn.is_some()
            && self.availability == Availability::Available
            && self.engaged.is_none()
    }

    /// Counts towards "clinicians available": ringable, and a person (a
    /// monitoring probe's account never counts).
    fn counts_as_available(&self) -> bool {
        self.ringable() && !self.identity.monitoring
    }

    /// Whether to ring this account for this request now.
    fn rings_for(&self, r: &Request) -> bool {
        self.ringable() && r.visible_to(self)
    }

    fn party(&self) -> Party {
        Party {
            user_id: self.identity.user_id,
            display_name: self.identity.display_name.clone(),
            site: self.identity.site.clone(),
        }
    }

    fn peer(&self) -> Peer {
        Peer {
            display_name: self.identity.display_name.clone(),
            role: self.identity.role,
            site: self.identity.site.clone(),
        }
    }
}

/// What a station asked for.
struct NewRequest {
    urgency: Urgency,
    reason: String,
    patient_ref: Option<String>,
    test: bool,
    direct_to: Option<String>,
}

#[derive(Debug, Clone)]
struct Request {
    id: RequestId,
    station: UserId,
    urgency: Urgency,
    reason: String,
    patient_ref: Option<String>,
    requested_at: Millis,
    test: bool,
    /// A directed test call: only this clinician (username) sees it.
    direct_to: Option<String>,
    escalation: Option<EscalationLevel>,
    /// How many people the latest escalation step alerted (0: nobody was
    /// connected who could be): the station must not claim more.
    alerted: Option<u32>,
    /// At `escalated`: how many of those alerted hold the escalation duty
    /// (the senior on duty). 0: no duty holder was on line.
    duty_alerted: Option<u32>,
    /// The last (position, clinicians_available, escalation, alerted,
    /// duty_alerted) told to the station.
    last_told: Option<Told>,
}

/// What a station was last told about its waiting request.
type Told = (u32, u32, Option<EscalationLevel>, Option<u32>, Option<u32>);

impl Request {
    /// Whether this clinician may see, be rung for and accept it. A
    /// monitoring probe's account only ever gets test calls directed at it,
    /// never a patient's request.
    fn visible_to(&self, account: &Account) -> bool {
        match &self.direct_to {
            None => !account.identity.monitoring,
            Some(username) => *username == account.identity.username,
        }
    }
}

impl Request {
    fn queue_key(&self) -> (Urgency, Millis, RequestId) {
        (self.urgency, self.requested_at, self.id)
    }
}

#[derive(Debug)]
struct Call {
    id: CallId,
    request: Request,
    clinician: UserId,
    accepted_at: Millis,
    station_media: bool,
    clinician_media: bool,
    outcome: Option<Outcome>,
}

/// How long an ended call still takes late quality reports.
pub const RECENTLY_ENDED_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct RecentCall {
    request_id: RequestId,
    station: UserId,
    clinician: UserId,
    ended_at: Millis,
}

/// A call that has ended and whose outcome the clinician still owes.
#[derive(Debug)]
struct EndedCall {
    request_id: RequestId,
    station: UserId,
    clinician: UserId,
    reason: EndReason,
    requested_at: Millis,
    accepted_at: Millis,
}

/// The state machine. See the module documentation.
#[derive(Debug)]
pub struct Switchboard {
    config: Config,
    now: Millis,
    conns: HashMap<ConnId, UserId>,
    accounts: HashMap<UserId, Account>,
    /// Indexes of `accounts` by role, so that ringing and broadcasts cost
    /// the number of clinicians, not of every station too.
    clinicians: BTreeSet<UserId>,
    /// Everyone who sees the queue: clinicians, managers, admins.
    observers: BTreeSet<UserId>,
    /// Waiting requests, by id.
    waiting: HashMap<RequestId, Request>,
    /// The one queue: urgency, then arrival, then id.
    queue: BTreeSet<(Urgency, Millis, RequestId)>,
    /// The same requests by who may be rung for them: `None` for everyone
    /// (not directed), else the one clinician a directed test call names.
    /// Kept with `queue` by [`Switchboard::enqueue`] and
    /// [`Switchboard::dequeue`], so ringing a clinician who has just become
    /// available looks only at what they could answer.
    queue_for: HashMap<Option<String>, BTreeSet<(Urgency, Millis, RequestId)>>,
    /// How many of `queue` have each urgency (in the order of
    /// [`Urgency::ALL`]), kept by `enqueue` and `dequeue` for the metrics.
    queued_by_urgency: [usize; 3],
    calls: HashMap<CallId, Call>,
    /// Which call each answered request became, while that call is live or
    /// owes an outcome; lets a late `accept` hear "already taken".
    answered: HashMap<RequestId, CallId>,
    ended: HashMap<CallId, EndedCall>,
    /// Calls that ended in the last [`RECENTLY_ENDED_MS`], oldest first.
    recently_ended: HashMap<CallId, RecentCall>,
    recently_ended_order: VecDeque<(Millis, CallId)>,
    /// Grace deadlines of accounts whose connection was lost.
    deadlines: BTreeSet<(Millis, UserId)>,
    /// The next escalation step of each waiting request.
    escalation_due: BTreeSet<(Millis, RequestId)>,
    next_request: u64,
    next_call: u64,
    queue_dirty: bool,
    /// When a held-back change in the count of available clinicians is
    /// sent (`Config::queue_count_every_ms`).
    queue_count_due: Option<Millis>,
    /// What every connected watcher outside `queue_special` was last told
    /// (the shared queue's `view_key`, and the count), so that a turn that
    /// changes nothing for them visits only the few that may differ.
    shared_told: Option<(u64, u32)>,
    /// Watchers whose last-told queue may differ from `shared_told`: those
    /// with a view of their own (a directed test call, a monitoring
    /// probe) and those just connected.
    queue_special: BTreeSet<UserId>,
    /// Usernames whose directed test calls changed since the last flush.
    queue_touched: BTreeSet<String>,
    /// Some connected watcher was told another count than `shared_told`'s.
    count_spread: bool,
    /// Accounts by username (a directed test call names its clinician;
    /// the server keeps usernames unique, the switchboard does not rely on
    /// it).
    usernames: HashMap<String, BTreeSet<UserId>>,
    /// `clinicians_available()`, kept as accounts change: every place that
    /// changes what `Account::counts_as_available` reads calls [`shift`],
    /// and `check_invariants` recounts.
    available: u32,
    outputs: VecDeque<Output>,
}

impl Switchboard {
    pub fn new(config: Config, now: Millis) -> Self {
        Switchboard {
            next_request: config.first_request_id.max(1),
            next_call: config.first_call_id.max(1),
            config,
            now,
            conns: HashMap::new(),
            accounts: HashMap::new(),
            clinicians: BTreeSet::new(),
            observers: BTreeSet::new(),
            waiting: HashMap::new(),
            queue: BTreeSet::new(),
            queue_for: HashMap::new(),
            queued_by_urgency: [0; 3],
            calls: HashMap::new(),
            answered: HashMap::new(),
            ended: HashMap::new(),
            recently_ended: HashMap::new(),
            recently_ended_order: VecDeque::new(),
            deadlines: BTreeSet::new(),
            escalation_due: BTreeSet::new(),
            queue_dirty: false,
            queue_count_due: None,
            shared_told: None,
            queue_special: BTreeSet::new(),
            usernames: HashMap::new(),
            queue_touched: BTreeSet::new(),
            count_spread: false,
            available: 0,
            outputs: VecDeque::new(),
        }
    }

    /// Processes one input at time `now`. A clock that steps backwards is
    /// treated as standing still.
    pub fn handle(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Connect {
                conn,
                identity,
                ice_servers,
            } => self.connect(conn, identity, ice_servers),
            Input::Message { conn, message } => self.message(conn, message),
            Input::Disconnect { conn } => self.disconnect(conn),
            Input::SignOut { conn } => {
                if let Some(&user_id) = self.conns.get(&conn) {
                    if let Some(Open::Waiting(request_id)) =
                        self.accounts.get(&user_id).and_then(|a| a.open)
                    {
                        self.close_request(
                            request_id,
                            ConsultEvent::Cancelled,
                            RequestState::Cancelled,
                        );
                    }
                }
                self.disconnect(conn);
            }
            Input::Timeout => {
                self.expire_grace();
                self.escalate_due();
                if self.queue_count_due.is_some_and(|at| at <= self.now) {
                    self.queue_dirty = true;
                }
            }
        }
    }

    /// The next output, if any. Drain until `None` after `handle` (after
    /// each input, or after a batch of them: queue updates are then sent
    /// once for the whole batch, which is what keeps a busy switchboard's
    /// broadcasts in check).
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.outputs.is_empty() {
            self.flush_queue();
        }
        self.outputs.pop_front()
    }

    /// When to call `handle(_, Input::Timeout)` next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let grace = self.deadlines.first().map(|(at, _)| *at);
        let escalation = self.escalation_due.first().map(|(at, _)| *at);
        [grace, escalation, self.queue_count_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// The current time as last given.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Clinicians who would be rung right now.
    pub fn clinicians_available(&self) -> u32 {
        self.available
    }

    fn count_available(&self) -> u32 {
        let n = self
            .clinicians
            .iter()
            .filter_map(|u| self.accounts.get(u))
            .filter(|a| a.counts_as_available())
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The queue in order, as clinicians see it. Directed test calls are
    /// left out: only their one clinician sees them (`queue_entries_for`).
    pub fn queue_entries(&self) -> Vec<QueueEntry> {
        self.queue_entries_for(None)
    }

    /// The queue as this account sees it: the shared queue plus any test
    /// call directed at it (a monitoring probe calling a person's screen).
    pub fn queue_entries_for(&self, viewer: Option<UserId>) -> Vec<QueueEntry> {
        let viewer = viewer.and_then(|u| self.accounts.get(&u));
        self.queue
            .iter()
            .filter_map(|(_, _, id)| self.waiting.get(id))
            .filter(|r| viewer.map_or(r.direct_to.is_none(), |a| r.visible_to(a)))
            .map(|r| self.entry(r))
            .collect()
    }

    /// Open calls, for health and status pages.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Requests waiting in the queue.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Every account the switchboard knows, connected or within its grace
    /// period: what it is doing now (for the admin console's "who is on
    /// line").
    pub fn account_states(&self) -> Vec<AccountState> {
        let mut states: Vec<AccountState> = self
            .accounts
            .iter()
            .map(|(id, a)| AccountState {
                user_id: *id,
                connected: a.conn.is_some(),
                availability: (a.identity.role == Role::Clinician).then_some(a.availability),
                activity: match (a.open, a.engaged) {
                    (Some(Open::InCall(_)), _) | (_, Some(Engagement::InCall { .. })) => {
                        Activity::InCall
                    }
                    (_, Some(Engagement::OutcomePending { .. })) => Activity::OutcomeOwed,
                    (Some(Open::Waiting(_)), _) => Activity::Waiting,
                    (None, None) => Activity::Idle,
                },
            })
            .collect();
        states.sort_by_key(|s| s.user_id);
        states
    }

    /// Requests waiting in the queue per urgency, in the order of
    /// [`Urgency::ALL`] (for the metrics; kept as the queue changes).
    pub fn waiting_by_urgency(&self) -> [usize; 3] {
        self.queued_by_urgency
    }

    /// Every request not yet answered, cancelled or abandoned: id, urgency,
    /// when it was made, and whether it is a test call.
    pub fn open_requests(&self) -> impl Iterator<Item = (RequestId, Urgency, Millis, bool)> + '_ {
        self.waiting
            .values()
            .map(|r| (r.id, r.urgency, r.requested_at, r.test))
    }

    fn message(&mut self, conn: ConnId, message: ClientMessage) {
        let Some(&user_id) = self.conns.get(&conn) else {
            return; // A message racing its own disconnect: nobody to answer.
        };
        let role = self.accounts[&user_id].identity.role;
        let kind = message.kind();
        let result = match (role, message) {
            (_, ClientMessage::Ping { nonce }) => {
                self.send(
                    conn,
                    ServerMessage::Pong {
                        nonce,
                        server_time: self.now,
                    },
                );
                Ok(())
            }
            (
                Role::Station,
                ClientMessage::RequestConsult {
                    urgency,
                    reason,
                    patient_ref,
                    test,
                    direct_to,
                },
            ) => self.request_consult(
                user_id,
                NewRequest {
                    urgency,
                    reason,
                    patient_ref,
                    test,
                    direct_to,
                },
            ),
            (Role::Station, ClientMessage::CancelRequest { request_id }) => {
                self.cancel_request(user_id, request_id)
            }
            (Role::Clinician, ClientMessage::SetAvailability { status }) => {
                self.set_availability(user_id, status)
            }
            (Role::Clinician, ClientMessage::Accept { request_id }) => {
                self.accept(user_id, request_id)
            }
            (
                Role::Clinician,
                ClientMessage::RecordOutcome {
                    call_id,
                    outcome,
                    note,
                },
            ) => self.record_outcome(user_id, call_id, outcome, note),
            (_, ClientMessage::Signal { call_id, data }) => self.signal(user_id, call_id, data),
            (_, ClientMessage::CallConnected { call_id }) => self.call_connected(user_id, call_id),
            (_, ClientMessage::HangUp { call_id }) => self.hang_up(user_id, call_id),
            (_, ClientMessage::CallQuality { call_id, sample }) => {
                self.call_quality(user_id, call_id, sample)
            }
            (role, _) => Err(ProtocolError::new(
                ErrorCode::ForbiddenRole,
                format!(
                    "a {} account cannot send {kind}; only {} accounts can",
                    role.as_str(),
                    allowed_roles(kind)
                ),
            )),
        };
        if let Err(err) = result {
            self.send(conn, ServerMessage::error(err, Some(kind)));
        }
    }

    fn send(&mut self, conn: ConnId, message: ServerMessage) {
        self.outputs.push_back(Output::Send {
            to: vec![conn],
            message,
        });
    }

    /// To the account's live connection, if it has one.
    fn send_to_user(&mut self, user_id: UserId, message: ServerMessage) {
        if let Some(conn) = self.accounts.get(&user_id).and_then(|a| a.conn) {
            self.send(conn, message);
        }
    }

    fn record(&mut self, request_id: RequestId, event: ConsultEvent) {
        self.outputs.push_back(Output::Record(Event::Consult {
            request_id,
            at: self.now,
            event,
        }));
    }

    fn record_presence(&mut self, user_id: UserId, status: PresenceStatus) {
        let role = self
            .accounts
            .get(&user_id)
            .map(|a| a.identity.role)
            .unwrap_or(Role::Clinician);
        self.outputs.push_back(Output::Record(Event::Presence {
            user_id,
            role,
            at: self.now,
            status,
        }));
    }
}

pub(super) fn not_your_call(call_id: CallId) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotInCall,
        format!("call {call_id} is another clinician's; nothing was recorded"),
    )
}

pub(super) fn error(code: ErrorCode, message: &str, in_reply_to: Option<&str>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.to_owned(),
        in_reply_to: in_reply_to.map(str::to_owned),
    }
}

pub(super) fn allowed_roles(kind: &str) -> &'static str {
    match kind {
        "request_consult" | "cancel_request" => "station",
        "set_availability" | "accept" | "record_outcome" => "clinician",
        _ => "station or clinician",
    }
}

/// What a queue shows, for telling whether it changed: its entries without
/// the time waited (clients count that on from the last message).
pub(super) fn view_key(entries: &[QueueEntry]) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same entries give the same key.
    let mut h = std::hash::DefaultHasher::new();
    for e in entries {
        let mut e = e.clone();
        e.waited_ms = 0;
        serde_json::to_string(&e).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

/// Keeps a count as one account goes from counted (`before`) to `after`.
pub(super) fn shift(count: &mut u32, before: bool, after: bool) {
    match (before, after) {
        (false, true) => *count = count.saturating_add(1),
        (true, false) => *count = count.saturating_sub(1),
        _ => {}
    }
}

pub(super) fn unindex_name(
    index: &mut HashMap<String, BTreeSet<UserId>>,
    name: &str,
    user: UserId,
) {
    if let Some(ids) = index.get_mut(name) {
        ids.remove(&user);
        if ids.is_empty() {
            index.remove(name);
        }
    }
}
