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

use crate::event::{ConsultEvent, Event, Party, PresenceStatus, RingTrigger, Side};
use crate::protocol::{
    Availability, CallId, ClientMessage, ConnId, ConsultSummary, EndReason, Engagement, ErrorCode,
    EscalationLevel, IceServer, Identity, Millis, Outcome, Peer, ProtocolError, QualitySample,
    QueueEntry, RequestId, RequestState, Role, ServerMessage, Urgency, UserId, UserInfo,
    MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use std::collections::{BTreeSet, HashMap, VecDeque};

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

/// A waiting request (or the request behind a call) recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredRequest {
    pub id: RequestId,
    pub station: UserId,
    pub urgency: Urgency,
    pub reason: String,
    pub patient_ref: Option<String>,
    pub requested_at: Millis,
    pub test: bool,
    pub escalation: Option<EscalationLevel>,
}

/// A call in progress, recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredCall {
    pub id: CallId,
    pub request: RestoredRequest,
    pub clinician: UserId,
    pub accepted_at: Millis,
    pub station_media: bool,
    pub clinician_media: bool,
    pub outcome: Option<Outcome>,
}

/// A call that ended with its outcome still owed, recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredOwed {
    pub call_id: CallId,
    pub request_id: RequestId,
    pub station: UserId,
    pub clinician: UserId,
    pub reason: EndReason,
    pub requested_at: Millis,
    pub accepted_at: Millis,
}

/// What was open when the server stopped, read back from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restore {
    /// Every account the items below refer to.
    pub accounts: Vec<Identity>,
    pub waiting: Vec<RestoredRequest>,
    pub calls: Vec<RestoredCall>,
    pub owed: Vec<RestoredOwed>,
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

    /// Rebuilds the state that was open when the server stopped (after a
    /// crash or restart), before any connection is accepted. Every restored
    /// account starts disconnected with its grace period running from now,
    /// so clients that reconnect in time carry on where they were.
    ///
    /// Items that cannot be restored are ended in the log, never dropped:
    /// waiting test calls (a probe will try again; its direction to one
    /// clinician is not kept) and anything inconsistent with the rest. The
    /// returned lines say what was ended and why, for the server's log.
    pub fn restore(&mut self, restore: Restore) -> Vec<String> {
        let mut notes = Vec::new();
        let now = self.now;
        let grace = self.config.disconnect_grace_ms;
        for identity in restore.accounts {
            let user_id = identity.user_id;
            if self.accounts.contains_key(&user_id) {
                continue;
            }
            self.index(&identity);
            self.accounts.insert(
                user_id,
                Account {
                    identity,
                    conn: None,
                    lost_at: Some(now),
                    open: None,
                    availability: Availability::Available,
                    engaged: None,
                    queue_told: None,
                },
            );
            self.deadlines.insert((now + grace, user_id));
        }
        let is = |sb: &Self, user: UserId, role: Role| {
            sb.accounts
                .get(&user)
                .is_some_and(|a| a.identity.role == role)
        };
        let mut waiting = restore.waiting;
        waiting.sort_by_key(|r| (r.requested_at, r.id));
        for r in waiting {
            self.next_request = self.next_request.max(r.id.0 + 1);
            let station_free = is(self, r.station, Role::Station)
                && self
                    .accounts
                    .get(&r.station)
                    .is_some_and(|a| a.open.is_none());
            if r.test || !station_free {
                notes.push(if r.test {
                    format!(
                        "request {} was a waiting test call; ended as abandoned",
                        r.id
                    )
                } else {
                    format!(
                        "request {} has no free station to belong to; ended as abandoned",
                        r.id
                    )
                });
                self.record(r.id, ConsultEvent::Abandoned);
                continue;
            }
            let request = Request {
                id: r.id,
                station: r.station,
                urgency: r.urgency,
                reason: r.reason,
                patient_ref: r.patient_ref,
                requested_at: r.requested_at,
                test: false,
                direct_to: None,
                escalation: r.escalation,
                // Not in the log's summary: unknown until the next step.
                alerted: None,
                duty_alerted: None,
                last_told: None,
            };
            self.enqueue(&request);
            if let Some(at) = self.next_escalation(&request) {
                self.escalation_due.insert((at, request.id));
            }
            if let Some(a) = self.accounts.get_mut(&r.station) {
                a.open = Some(Open::Waiting(r.id));
            }
            self.waiting.insert(r.id, request);
        }
        for c in restore.calls {
            self.next_request = self.next_request.max(c.request.id.0 + 1);
            self.next_call = self.next_call.max(c.id.0 + 1);
            let ok = is(self, c.request.station, Role::Station)
                && is(self, c.clinician, Role::Clinician)
                && self
                    .accounts
                    .get(&c.request.station)
                    .is_some_and(|a| a.open.is_none())
                && self
                    .accounts
                    .get(&c.clinician)
                    .is_some_and(|a| a.engaged.is_none());
            if !ok {
                notes.push(format!(
                    "call {} conflicts with another open call of its station or clinician; ended",
                    c.id
                ));
                let reason = EndReason::ClinicianDisconnected;
                self.record(
                    c.request.id,
                    ConsultEvent::CallEnded {
                        call_id: c.id,
                        reason,
                    },
                );
                continue;
            }
            let request = Request {
                id: c.request.id,
                station: c.request.station,
                urgency: c.request.urgency,
                reason: c.request.reason,
                patient_ref: c.request.patient_ref,
                requested_at: c.request.requested_at,
                test: c.request.test,
                direct_to: None,
                escalation: c.request.escalation,
                alerted: None,
                duty_alerted: None,
                last_told: None,
            };
            if let Some(a) = self.accounts.get_mut(&c.request.station) {
                a.open = Some(Open::InCall(c.id));
            }
            if let Some(a) = self.accounts.get_mut(&c.clinician) {
                a.engaged = Some(Engagement::InCall { call_id: c.id });
            }
            self.answered.insert(request.id, c.id);
            self.calls.insert(
                c.id,
                Call {
                    id: c.id,
                    request,
                    clinician: c.clinician,
                    accepted_at: c.accepted_at,
                    station_media: c.station_media,
                    clinician_media: c.clinician_media,
                    outcome: c.outcome,
                },
            );
        }
        for o in restore.owed {
            self.next_request = self.next_request.max(o.request_id.0 + 1);
            self.next_call = self.next_call.max(o.call_id.0 + 1);
            let free = is(self, o.clinician, Role::Clinician)
                && self
                    .accounts
                    .get(&o.clinician)
                    .is_some_and(|a| a.engaged.is_none());
            if !free {
                notes.push(format!(
                    "call {} owes an outcome but its clinician is engaged elsewhere; left unrecorded",
                    o.call_id
                ));
                continue;
            }
            if let Some(a) = self.accounts.get_mut(&o.clinician) {
                a.engaged = Some(Engagement::OutcomePending { call_id: o.call_id });
            }
            self.answered.insert(o.request_id, o.call_id);
            self.ended.insert(
                o.call_id,
                EndedCall {
                    request_id: o.request_id,
                    station: o.station,
                    clinician: o.clinician,
                    reason: o.reason,
                    requested_at: o.requested_at,
                    accepted_at: o.accepted_at,
                },
            );
        }
        // Restored accounts start disconnected; counted once here.
        self.available = self.count_available();
        notes
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

    // -----------------------------------------------------------------------
    // Connections
    // -----------------------------------------------------------------------

    fn connect(&mut self, conn: ConnId, identity: Identity, ice_servers: Vec<IceServer>) {
        if self.conns.contains_key(&conn) {
            // The server hands out fresh ids; a repeat is a server bug, but
            // it must not corrupt state: refuse the newcomer.
            self.send(
                conn,
                error(
                    ErrorCode::Unavailable,
                    "connection id reused; reconnect",
                    None,
                ),
            );
            return;
        }
        let user_id = identity.user_id;
        let role = identity.role;
        let was_ringable = self.accounts.get(&user_id).is_some_and(Account::ringable);
        if !self.accounts.contains_key(&user_id) {
            self.index(&identity);
        }
        let mut fresh = false;
        let counted = self
            .accounts
            .get(&user_id)
            .is_some_and(Account::counts_as_available);
        let account = self.accounts.entry(user_id).or_insert_with(|| {
            fresh = true;
            Account {
                identity: identity.clone(),
                conn: None,
                lost_at: None,
                open: None,
                availability: Availability::Available,
                engaged: None,
                queue_told: None,
            }
        });
        // Names and sites may have been edited since; the role may not change
        // under a live request, so keep the original role.
        account.identity.display_name = identity.display_name.clone();
        let old_name = std::mem::replace(&mut account.identity.username, identity.username.clone());
        if old_name != identity.username {
            unindex_name(&mut self.usernames, &old_name, user_id);
        }
        self.usernames
            .entry(identity.username.clone())
            .or_default()
            .insert(user_id);
        account.identity.site = identity.site.clone();
        account.identity.escalation_duty = identity.escalation_duty;
        account.identity.monitoring = identity.monitoring;
        let replaced = account.conn.replace(conn);
        // A new connection has been told nothing yet.
        account.queue_told = None;
        self.queue_special.insert(user_id);
        shift(&mut self.available, counted, account.counts_as_available());
        if let Some(at) = account.lost_at.take() {
            self.deadlines
                .remove(&(at + self.config.disconnect_grace_ms, user_id));
        }
        if let Some(old) = replaced {
            self.conns.remove(&old);
            self.outputs.push_back(Output::Close {
                conn: old,
                code: ErrorCode::Replaced,
            });
        }
        self.conns.insert(conn, user_id);

        let account = &self.accounts[&user_id];
        let role = if fresh { role } else { account.identity.role };
        self.send(
            conn,
            ServerMessage::Welcome {
                user: UserInfo {
                    id: user_id,
                    username: account.identity.username.clone(),
                    display_name: account.identity.display_name.clone(),
                    site: account.identity.site.clone(),
                },
                role,
                ice_servers,
                protocol_version: PROTOCOL_VERSION,
                server_time: self.now,
                max_frame_bytes: MAX_FRAME_BYTES,
            },
        );

        match role {
            Role::Station => self.resume_station(user_id, conn),
            Role::Clinician => {
                if fresh || replaced.is_none() {
                    let status = self.accounts[&user_id].availability;
                    self.record_presence(user_id, status.into());
                }
                self.resume_clinician(user_id, conn, was_ringable);
            }
            Role::Manager | Role::Admin => self.send_queue(user_id, conn),
        }
    }

    fn resume_station(&mut self, user_id: UserId, conn: ConnId) {
        match self.accounts[&user_id].open {
            Some(Open::Waiting(request_id)) => {
                if let Some(r) = self.waiting.get_mut(&request_id) {
                    r.last_told = None;
                }
                // The queue shows the station as connected again.
                self.touch_request(request_id);
                self.queue_dirty = true;
            }
            Some(Open::InCall(call_id)) => {
                if let Some(call) = self.calls.get(&call_id) {
                    let clinician = call.clinician;
                    let msg = self.call_start(call, Side::Station, true);
                    self.send(conn, msg);
                    self.send_to_user(
                        clinician,
                        ServerMessage::PeerStatus {
                            call_id,
                            connected: true,
                        },
                    );
                }
            }
            None => {}
        }
    }

    fn resume_clinician(&mut self, user_id: UserId, conn: ConnId, was_ringable: bool) {
        let account = &self.accounts[&user_id];
        let engaged = account.engaged;
        let presence = ServerMessage::Presence {
            status: account.availability,
            engaged,
        };
        self.send(conn, presence);
        match engaged {
            Some(Engagement::InCall { call_id }) => {
                if let Some(call) = self.calls.get(&call_id) {
                    let station = call.request.station;
                    let msg = self.call_start(call, Side::Clinician, true);
                    self.send(conn, msg);
                    self.send_to_user(
                        station,
                        ServerMessage::PeerStatus {
                            call_id,
                            connected: true,
                        },
                    );
                }
            }
            Some(Engagement::OutcomePending { call_id }) => {
                if let Some(ended) = self.ended.get(&call_id) {
                    let reason = ended.reason;
                    self.send(
                        conn,
                        ServerMessage::CallEnd {
                            call_id,
                            reason,
                            outcome_required: true,
                        },
                    );
                }
            }
            None => {}
        }
        if !was_ringable && self.accounts[&user_id].ringable() {
            // The count of available clinicians changed: everyone (this
            // clinician included) gets the queue when this input is done.
            self.ring_waiting_for(user_id);
            self.queue_dirty = true;
        } else {
            self.send_queue(user_id, conn);
        }
    }

    fn disconnect(&mut self, conn: ConnId) {
        let Some(user_id) = self.conns.remove(&conn) else {
            return; // Already replaced or never connected.
        };
        let grace = self.config.disconnect_grace_ms;
        let now = self.now;
        let Some(account) = self.accounts.get_mut(&user_id) else {
            return;
        };
        if account.conn != Some(conn) {
            return;
        }
        let was_ringable = account.ringable();
        let counted = account.counts_as_available();
        account.conn = None;
        account.lost_at = Some(now);
        shift(&mut self.available, counted, false);
        self.deadlines.insert((now + grace, user_id));
        let role = account.identity.role;
        let open = account.open;
        let engaged = account.engaged;
        match role {
            Role::Station => match open {
                Some(Open::Waiting(request_id)) => {
                    self.touch_request(request_id);
                    self.queue_dirty = true;
                }
                Some(Open::InCall(call_id)) => {
                    if let Some(call) = self.calls.get(&call_id) {
                        let clinician = call.clinician;
                        self.send_to_user(
                            clinician,
                            ServerMessage::PeerStatus {
                                call_id,
                                connected: false,
                            },
                        );
                    }
                }
                None => {}
            },
            Role::Clinician => {
                self.record_presence(user_id, PresenceStatus::Offline);
                if was_ringable {
                    self.queue_dirty = true;
                }
                if let Some(Engagement::InCall { call_id }) = engaged {
                    if let Some(call) = self.calls.get(&call_id) {
                        let station = call.request.station;
                        self.send_to_user(
                            station,
                            ServerMessage::PeerStatus {
                                call_id,
                                connected: false,
                            },
                        );
                    }
                }
            }
            Role::Manager | Role::Admin => {}
        }
    }

    /// Ends what the grace period no longer covers.
    fn expire_grace(&mut self) {
        while let Some(&(deadline, user_id)) = self.deadlines.first() {
            if deadline > self.now {
                break;
            }
            self.deadlines.pop_first();
            let Some(account) = self.accounts.get(&user_id) else {
                continue;
            };
            if account.conn.is_some() {
                continue;
            }
            match (account.open, account.engaged) {
                (Some(Open::Waiting(request_id)), _) => {
                    self.abandon(request_id);
                }
                (Some(Open::InCall(call_id)), _) => {
                    self.end_call(call_id, EndReason::StationDisconnected);
                }
                (_, Some(Engagement::InCall { call_id })) => {
                    self.end_call(call_id, EndReason::ClinicianDisconnected);
                }
                _ => {}
            }
            // Whatever is left (an outcome still owed) stays in the log as
            // "not recorded"; the account itself is forgotten.
            self.clinicians.remove(&user_id);
            self.observers.remove(&user_id);
            self.queue_special.remove(&user_id);
            if let Some(account) = self.accounts.remove(&user_id) {
                unindex_name(&mut self.usernames, &account.identity.username, user_id);
                if let Some(Engagement::OutcomePending { call_id }) = account.engaged {
                    if let Some(ended) = self.ended.remove(&call_id) {
                        self.answered.remove(&ended.request_id);
                    }
                }
            }
        }
    }

    // -----------------------------------------------------------------------
    // Messages
    // -----------------------------------------------------------------------

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

    fn request_consult(&mut self, station: UserId, new: NewRequest) -> Result<(), ProtocolError> {
        let NewRequest {
            urgency,
            reason,
            patient_ref,
            test,
            direct_to,
        } = new;
        if self.accounts[&station].identity.monitoring && !test {
            return Err(ProtocolError::new(
                ErrorCode::ForbiddenRole,
                "a monitoring account may only place test calls (add \"test\": true)",
            ));
        }
        if !self.accounts[&station].identity.monitoring && (test || direct_to.is_some()) {
            // A test call is left out of managers' figures and a directed
            // one rings a single person: a real request must never be
            // either, so only the test line may be called this way.
            let to_line = test
                && direct_to.is_some()
                && direct_to.as_deref() == self.config.test_line.as_deref();
            if !to_line {
                return Err(ProtocolError::new(
                    ErrorCode::ForbiddenRole,
                    match &self.config.test_line {
                        Some(line) => format!(
                            "a station's test call goes to the test line only (\"test\": true, \"direct_to\": {line:?}); \
                             a request for a patient has neither field"
                        ),
                        None => "this server has no test line: send the request without \"test\" or \"direct_to\"".to_owned(),
                    },
                ));
            }
        }
        let account = &self.accounts[&station];
        if let Some(open) = account.open {
            let what = match open {
                Open::Waiting(id) => format!("request {id} is still waiting"),
                Open::InCall(id) => format!("call {id} is in progress"),
            };
            return Err(ProtocolError::new(
                ErrorCode::RequestOpen,
                format!(
                    "this station already has an open consult ({what}); cancel or finish it first"
                ),
            ));
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let request = Request {
            id,
            station,
            urgency,
            reason: reason.clone(),
            patient_ref: patient_ref.clone(),
            requested_at: self.now,
            test,
            direct_to,
            escalation: None,
            alerted: None,
            duty_alerted: None,
            last_told: None,
        };
        let party = account.party();
        self.record(
            id,
            ConsultEvent::Requested {
                station: party,
                urgency,
                reason,
                patient_ref,
                test_call: test,
            },
        );
        self.enqueue(&request);
        if let Some(at) = self.next_escalation(&request) {
            self.escalation_due.insert((at, id));
        }
        self.waiting.insert(id, request);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = Some(Open::Waiting(id));
        }
        let ringable: Vec<UserId> = match self.waiting.get(&id) {
            // A directed test call can ring only the account it names.
            Some(r) => match &r.direct_to {
                Some(name) => self
                    .usernames
                    .get(name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect(),
                None => self.clinicians.iter().copied().collect::<Vec<_>>(),
            }
            .into_iter()
            .filter(|u| self.clinicians.contains(u))
            .filter_map(|u| self.accounts.get(&u))
            .filter(|a| a.rings_for(r))
            .map(|a| a.identity.user_id)
            .collect(),
            None => Vec::new(),
        };
        self.ring(id, &ringable, RingTrigger::NewRequest);
        self.queue_dirty = true;
        Ok(())
    }

    fn cancel_request(
        &mut self,
        station: UserId,
        request_id: RequestId,
    ) -> Result<(), ProtocolError> {
        let mine = self.accounts[&station].open == Some(Open::Waiting(request_id));
        if !mine {
            return Err(ProtocolError::new(
                ErrorCode::UnknownRequest,
                format!("request {request_id} is not waiting at this station (already answered, cancelled or never made)"),
            ));
        }
        self.close_request(request_id, ConsultEvent::Cancelled, RequestState::Cancelled);
        Ok(())
    }

    fn abandon(&mut self, request_id: RequestId) {
        self.close_request(request_id, ConsultEvent::Abandoned, RequestState::Abandoned);
    }

    /// Takes a waiting request out of the queue without a call.
    fn close_request(&mut self, request_id: RequestId, event: ConsultEvent, state: RequestState) {
        let Some(request) = self.waiting.remove(&request_id) else {
            return;
        };
        self.dequeue(&request);
        self.unschedule_escalation(&request);
        self.record(request_id, event);
        if let Some(a) = self.accounts.get_mut(&request.station) {
            a.open = None;
        }
        let msg = ServerMessage::RequestUpdate {
            request_id,
            state,
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: request.requested_at,
            waited_ms: self.now - request.requested_at,
            outcome: None,
            clinician: None,
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        self.send_to_user(request.station, msg);
        self.queue_dirty = true;
    }

    fn set_availability(
        &mut self,
        clinician: UserId,
        status: Availability,
    ) -> Result<(), ProtocolError> {
        let account = &self.accounts[&clinician];
        if status == Availability::Available {
            if let Some(Engagement::OutcomePending { call_id }) = account.engaged {
                return Err(ProtocolError::new(
                    ErrorCode::OutcomeRequired,
                    format!("record the outcome of call {call_id} before becoming available"),
                ));
            }
        }
        let was_ringable = account.ringable();
        let changed = account.availability != status;
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.availability = status;
            shift(&mut self.available, counted, a.counts_as_available());
        }
        if changed {
            self.record_presence(clinician, status.into());
        }
        self.send_presence(clinician);
        let now_ringable = self.accounts[&clinician].ringable();
        if was_ringable != now_ringable {
            self.queue_dirty = true;
        }
        if !was_ringable && now_ringable {
            self.ring_waiting_for(clinician);
        }
        Ok(())
    }

    fn accept(&mut self, clinician: UserId, request_id: RequestId) -> Result<(), ProtocolError> {
        match self.accounts[&clinician].engaged {
            Some(Engagement::InCall { call_id }) => {
                return Err(ProtocolError::new(
                    ErrorCode::InCall,
                    format!("you are in call {call_id}; hang up before accepting another"),
                ))
            }
            Some(Engagement::OutcomePending { call_id }) => {
                return Err(ProtocolError::new(
                    ErrorCode::OutcomeRequired,
                    format!("record the outcome of call {call_id} before accepting another"),
                ))
            }
            None => {}
        }
        let hidden = self
            .waiting
            .get(&request_id)
            .is_some_and(|r| !r.visible_to(&self.accounts[&clinician]));
        let request = if hidden {
            None
        } else {
            self.waiting.remove(&request_id)
        };
        let Some(request) = request else {
            return Err(if self.answered.contains_key(&request_id) {
                ProtocolError::new(
                    ErrorCode::AlreadyTaken,
                    format!("request {request_id} was answered by another clinician"),
                )
            } else {
                ProtocolError::new(
                    ErrorCode::UnknownRequest,
                    format!(
                        "request {request_id} is not waiting (cancelled, abandoned or never made)"
                    ),
                )
            });
        };
        self.dequeue(&request);
        self.unschedule_escalation(&request);
        let call_id = CallId(self.next_call);
        self.next_call += 1;
        let party = self.accounts[&clinician].party();
        self.record(
            request_id,
            ConsultEvent::Accepted {
                call_id,
                clinician: party,
            },
        );
        let station = request.station;
        let call = Call {
            id: call_id,
            request,
            clinician,
            accepted_at: self.now,
            station_media: false,
            clinician_media: false,
            outcome: None,
        };
        self.answered.insert(request_id, call_id);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = Some(Open::InCall(call_id));
        }
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = Some(Engagement::InCall { call_id });
            shift(&mut self.available, counted, a.counts_as_available());
        }
        let clinician_name = self.accounts[&clinician].identity.display_name.clone();
        let update = ServerMessage::RequestUpdate {
            request_id,
            state: RequestState::Accepted,
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: call.request.requested_at,
            waited_ms: self.now - call.request.requested_at,
            outcome: None,
            clinician: Some(clinician_name),
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        let to_station = self.call_start(&call, Side::Station, false);
        let to_clinician = self.call_start(&call, Side::Clinician, false);
        self.calls.insert(call_id, call);
        self.send_to_user(station, update);
        self.send_to_user(station, to_station);
        self.send_to_user(clinician, to_clinician);
        self.send_presence(clinician);
        self.queue_dirty = true;
        Ok(())
    }

    /// The call this account is a party to, and which side it is on.
    fn party_of(&self, user_id: UserId, call_id: CallId) -> Result<(&Call, Side), ProtocolError> {
        let Some(call) = self.calls.get(&call_id) else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownCall,
                format!("call {call_id} is not in progress"),
            ));
        };
        if call.request.station == user_id {
            Ok((call, Side::Station))
        } else if call.clinician == user_id {
            Ok((call, Side::Clinician))
        } else {
            Err(ProtocolError::new(
                ErrorCode::NotInCall,
                format!("you are not a party to call {call_id}; nothing was sent"),
            ))
        }
    }

    fn signal(
        &mut self,
        user_id: UserId,
        call_id: CallId,
        data: crate::protocol::SignalData,
    ) -> Result<(), ProtocolError> {
        let (call, side) = self.party_of(user_id, call_id)?;
        let other = match side {
            Side::Station => call.clinician,
            Side::Clinician => call.request.station,
        };
        // If the other party is reconnecting the signal is dropped: a
        // resumed call starts a fresh negotiation.
        self.send_to_user(other, ServerMessage::Signal { call_id, data });
        Ok(())
    }

    fn call_connected(&mut self, user_id: UserId, call_id: CallId) -> Result<(), ProtocolError> {
        let (_, side) = self.party_of(user_id, call_id)?;
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Ok(());
        };
        let flag = match side {
            Side::Station => &mut call.station_media,
            Side::Clinician => &mut call.clinician_media,
        };
        if *flag {
            return Ok(()); // Repeated after an ICE restart: the first counts.
        }
        *flag = true;
        let both = call.station_media && call.clinician_media;
        let request_id = call.request.id;
        self.record(
            request_id,
            ConsultEvent::MediaConnected {
                call_id,
                side,
                both,
            },
        );
        Ok(())
    }

    fn call_quality(
        &mut self,
        user_id: UserId,
        call_id: CallId,
        sample: QualitySample,
    ) -> Result<(), ProtocolError> {
        // A last report sent at hang-up may arrive after the other side's
        // hang-up: calls that ended a moment ago still take it.
        let (request_id, side) = match self.party_of(user_id, call_id) {
            Ok((call, side)) => (call.request.id, side),
            Err(e) => match self
                .recently_ended
                .get(&call_id)
                .filter(|r| r.ended_at + RECENTLY_ENDED_MS > self.now)
            {
                Some(r) if r.station == user_id => (r.request_id, Side::Station),
                Some(r) if r.clinician == user_id => (r.request_id, Side::Clinician),
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::NotInCall,
                        format!("you were not a party to call {call_id}; nothing was recorded"),
                    ))
                }
                None => return Err(e),
            },
        };
        self.record(
            request_id,
            ConsultEvent::QualityReported {
                call_id,
                side,
                sample,
            },
        );
        Ok(())
    }

    fn hang_up(&mut self, user_id: UserId, call_id: CallId) -> Result<(), ProtocolError> {
        let (_, side) = self.party_of(user_id, call_id)?;
        let reason = match side {
            Side::Station => EndReason::HungUpByStation,
            Side::Clinician => EndReason::HungUpByClinician,
        };
        self.end_call(call_id, reason);
        Ok(())
    }

    fn end_call(&mut self, call_id: CallId, reason: EndReason) {
        let Some(call) = self.calls.remove(&call_id) else {
            return;
        };
        let request_id = call.request.id;
        let station = call.request.station;
        let clinician = call.clinician;
        self.record(request_id, ConsultEvent::CallEnded { call_id, reason });
        self.remember_ended(call_id, request_id, station, clinician);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = None;
        }
        let outcome_required = call.outcome.is_none();
        if outcome_required {
            self.ended.insert(
                call_id,
                EndedCall {
                    request_id,
                    station,
                    clinician,
                    reason,
                    requested_at: call.request.requested_at,
                    accepted_at: call.accepted_at,
                },
            );
        } else {
            self.answered.remove(&request_id);
        }
        let was_ringable = self.accounts.get(&clinician).is_some_and(Account::ringable);
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = outcome_required.then_some(Engagement::OutcomePending { call_id });
            shift(&mut self.available, counted, a.counts_as_available());
        }
        self.send_to_user(
            station,
            ServerMessage::CallEnd {
                call_id,
                reason,
                outcome_required: false,
            },
        );
        let update = ServerMessage::RequestUpdate {
            request_id,
            state: if outcome_required {
                RequestState::Ended
            } else {
                RequestState::Completed
            },
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: call.request.requested_at,
            waited_ms: call.accepted_at - call.request.requested_at,
            outcome: call.outcome,
            clinician: self
                .accounts
                .get(&clinician)
                .map(|a| a.identity.display_name.clone()),
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        self.send_to_user(station, update);
        self.send_to_user(
            clinician,
            ServerMessage::CallEnd {
                call_id,
                reason,
                outcome_required,
            },
        );
        if self.accounts.contains_key(&clinician) {
            self.send_presence(clinician);
            self.after_freed(clinician, was_ringable);
        }
    }

    fn record_outcome(
        &mut self,
        clinician: UserId,
        call_id: CallId,
        outcome: Outcome,
        note: Option<String>,
    ) -> Result<(), ProtocolError> {
        let (request_id, station, times, live) = if let Some(call) = self.calls.get(&call_id) {
            if call.clinician != clinician {
                return Err(not_your_call(call_id));
            }
            let times = (call.request.requested_at, call.accepted_at);
            (call.request.id, call.request.station, times, true)
        } else if let Some(ended) = self.ended.get(&call_id) {
            if ended.clinician != clinician {
                return Err(not_your_call(call_id));
            }
            let times = (ended.requested_at, ended.accepted_at);
            (ended.request_id, ended.station, times, false)
        } else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownCall,
                format!("call {call_id} is not awaiting an outcome"),
            ));
        };
        self.record(
            request_id,
            ConsultEvent::OutcomeRecorded {
                call_id,
                outcome,
                note,
                by: clinician,
            },
        );
        self.send_to_user(
            clinician,
            ServerMessage::OutcomeRecorded {
                call_id,
                request_id,
                outcome,
            },
        );
        if live {
            if let Some(call) = self.calls.get_mut(&call_id) {
                call.outcome = Some(outcome);
            }
            return Ok(());
        }
        self.ended.remove(&call_id);
        self.answered.remove(&request_id);
        let was_ringable = self.accounts[&clinician].ringable();
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = None;
            shift(&mut self.available, counted, a.counts_as_available());
        }
        let clinician_name = self.accounts[&clinician].identity.display_name.clone();
        // The station sees what the clinician decided.
        self.send_to_user(
            station,
            ServerMessage::RequestUpdate {
                request_id,
                state: RequestState::Completed,
                position: None,
                clinicians_available: self.clinicians_available(),
                requested_at: times.0,
                waited_ms: times.1 - times.0,
                outcome: Some(outcome),
                clinician: Some(clinician_name),
                escalation: None,
                alerted: None,
                duty_alerted: None,
            },
        );
        self.send_presence(clinician);
        self.after_freed(clinician, was_ringable);
        Ok(())
    }

    /// A clinician may have become ringable: ring them for what waits.
    fn after_freed(&mut self, clinician: UserId, was_ringable: bool) {
        let now_ringable = self.accounts.get(&clinician).is_some_and(Account::ringable);
        if was_ringable != now_ringable {
            self.queue_dirty = true;
        }
        if !was_ringable && now_ringable {
            self.ring_waiting_for(clinician);
        }
    }

    // -----------------------------------------------------------------------
    // Ringing and the queue
    // -----------------------------------------------------------------------

    fn ring(&mut self, request_id: RequestId, clinicians: &[UserId], trigger: RingTrigger) {
        if clinicians.is_empty() {
            return;
        }
        let Some(request) = self.waiting.get(&request_id) else {
            return;
        };
        let entry = self.entry(request);
        let to: Vec<ConnId> = clinicians
            .iter()
            .filter_map(|u| self.accounts.get(u).and_then(|a| a.conn))
            .collect();
        self.record(
            request_id,
            ConsultEvent::Rung {
                clinicians: clinicians.to_vec(),
                trigger,
            },
        );
        self.outputs.push_back(Output::Send {
            to,
            message: ServerMessage::Ring { request: entry },
        });
    }

    fn enqueue(&mut self, r: &Request) {
        if let Some(name) = &r.direct_to {
            self.queue_touched.insert(name.clone());
        }
        if self.queue.insert(r.queue_key()) {
            self.queued_by_urgency[urgency_index(r.urgency)] += 1;
        }
        self.queue_for
            .entry(r.direct_to.clone())
            .or_default()
            .insert(r.queue_key());
    }

    fn dequeue(&mut self, r: &Request) {
        if let Some(name) = &r.direct_to {
            self.queue_touched.insert(name.clone());
        }
        if self.queue.remove(&r.queue_key()) {
            self.queued_by_urgency[urgency_index(r.urgency)] -= 1;
        }
        if let Some(keys) = self.queue_for.get_mut(&r.direct_to) {
            keys.remove(&r.queue_key());
            if keys.is_empty() {
                self.queue_for.remove(&r.direct_to);
            }
        }
    }

    /// Rings one clinician who has just become available for every waiting
    /// request, most urgent first.
    fn ring_waiting_for(&mut self, clinician: UserId) {
        let Some(account) = self.accounts.get(&clinician) else {
            return;
        };
        // Requests for everyone and those directed at this clinician, most
        // urgent first: nothing else could ring them.
        let empty = BTreeSet::new();
        let everyone = self.queue_for.get(&None).unwrap_or(&empty);
        let theirs = self
            .queue_for
            .get(&Some(account.identity.username.clone()))
            .unwrap_or(&empty);
        let mut keys: Vec<&(Urgency, Millis, RequestId)> = everyone.union(theirs).collect();
        keys.sort();
        let ids: Vec<RequestId> = keys
            .into_iter()
            .map(|(_, _, id)| *id)
            .filter(|id| self.waiting.get(id).is_some_and(|r| account.rings_for(r)))
            .collect();
        for id in ids {
            self.ring(id, &[clinician], RingTrigger::ClinicianAvailable);
        }
    }

    fn entry(&self, r: &Request) -> QueueEntry {
        let station = self.accounts.get(&r.station);
        QueueEntry {
            request_id: r.id,
            station: station
                .map(|a| a.identity.display_name.clone())
                .unwrap_or_default(),
            site: station.and_then(|a| a.identity.site.clone()),
            urgency: r.urgency,
            reason: r.reason.clone(),
            patient_ref: r.patient_ref.clone(),
            requested_at: r.requested_at,
            waited_ms: self.now - r.requested_at,
            station_connected: station.is_some_and(|a| a.conn.is_some()),
            test: r.test,
            escalation: r.escalation,
        }
    }

    /// The viewer's queue, now, to this connection.
    fn send_queue(&mut self, viewer: UserId, conn: ConnId) {
        let requests = self.queue_entries_for(Some(viewer));
        let available = self.clinicians_available();
        if let Some(account) = self.accounts.get_mut(&viewer) {
            account.queue_told = Some((view_key(&requests), available));
        }
        self.queue_special.insert(viewer);
        let message = ServerMessage::Queue {
            requests,
            clinicians_available: available,
            server_time: self.now,
        };
        self.send(conn, message);
    }

    /// The queue entries of requests for everyone (`None`) or directed at
    /// one username, in queue order.
    fn entries_for_target(&self, target: &Option<String>) -> Vec<QueueEntry> {
        self.queue_for
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|(_, _, id)| self.waiting.get(id))
            .map(|r| self.entry(r))
            .collect()
    }

    /// What this watcher's queue shows when it is not the shared one: a
    /// probe sees only its own test calls, a clinician with a directed
    /// test call the shared queue with theirs in it.
    fn own_view(&self, account: &Account, shared: &[QueueEntry]) -> Option<Vec<QueueEntry>> {
        let name = Some(account.identity.username.clone());
        let directed = self.queue_for.contains_key(&name);
        if account.identity.monitoring {
            return Some(self.entries_for_target(&name));
        }
        if !directed {
            return None;
        }
        let mut requests = shared.to_vec();
        requests.extend(self.entries_for_target(&name));
        requests.sort_by_key(|e| (e.urgency, e.requested_at, e.request_id));
        Some(requests)
    }

    /// A waiting request's entry changed: its directed clinician's view
    /// with it (the shared view is compared whole at every flush).
    fn touch_request(&mut self, id: RequestId) {
        if let Some(name) = self.waiting.get(&id).and_then(|r| r.direct_to.clone()) {
            self.queue_touched.insert(name);
        }
    }

    /// After any change: the queue to every clinician and manager, and each
    /// waiting station its position if that changed.
    fn flush_queue(&mut self) {
        if !self.queue_dirty {
            return;
        }
        self.queue_dirty = false;
        let available = self.clinicians_available();
        let shared = self.entries_for_target(&None);
        let shared_key = view_key(&shared);
        // Each watcher gets the queue only if what it shows changed: at
        // once if its entries did, and a change in the count alone at most
        // every `queue_count_every_ms`. Watchers are visited only when
        // something of theirs may have changed: everyone when the shared
        // queue did (or a held-back count is due), else only those in
        // `queue_special` and those whose directed test calls changed.
        let count_due = self.config.queue_count_every_ms <= 0
            || self.queue_count_due.is_some_and(|at| at <= self.now);
        let everyone = match self.shared_told {
            None => true,
            Some((k, n)) => k != shared_key || (count_due && (n != available || self.count_spread)),
        };
        let touched = std::mem::take(&mut self.queue_touched);
        let candidates: Vec<UserId> = if everyone {
            self.observers.iter().copied().collect()
        } else {
            let mut some = self.queue_special.clone();
            some.extend(
                touched
                    .iter()
                    .filter_map(|name| self.usernames.get(name))
                    .flatten()
                    .copied()
                    .filter(|u| self.observers.contains(u)),
            );
            some.into_iter().collect()
        };
        let group_count = if everyone {
            available
        } else {
            self.shared_told.map_or(available, |(_, n)| n)
        };
        let mut spread = !everyone && self.count_spread;
        let mut told = Vec::new();
        let mut to = Vec::new();
        let mut own: Vec<(ConnId, Vec<QueueEntry>)> = Vec::new();
        for user_id in candidates {
            let Some(account) = self.accounts.get(&user_id) else {
                continue;
            };
            let Some(conn) = account.conn else { continue };
            let view = self.own_view(account, &shared);
            let key = view.as_deref().map_or(shared_key, view_key);
            let send = match account.queue_told {
                None => true,
                Some((k, _)) if k != key => true,
                Some((_, n)) => n != available && count_due,
            };
            let after_count = if send {
                available
            } else {
                account.queue_told.map_or(available, |(_, n)| n)
            };
            spread |= after_count != group_count;
            told.push((user_id, key, send));
            if send {
                match view {
                    Some(requests) => own.push((conn, requests)),
                    None => to.push(conn),
                }
            }
        }
        for (user_id, key, send) in told {
            self.queue_special.remove(&user_id);
            if send {
                if let Some(account) = self.accounts.get_mut(&user_id) {
                    account.queue_told = Some((key, available));
                }
            }
        }
        if everyone {
            self.shared_told = Some((shared_key, available));
            // Whoever was not visited is not connected: a connection
            // joins `queue_special` when it opens.
            self.queue_special.clear();
        }
        self.count_spread = spread;
        // Someone's count is behind: send it when it is due.
        let count_held = group_count != available || spread;
        self.queue_count_due = match self.queue_count_due {
            Some(at) if count_held && at > self.now => Some(at),
            _ if count_held => Some(self.now + self.config.queue_count_every_ms),
            _ => None,
        };
        let now = self.now;
        let queue = move |requests| ServerMessage::Queue {
            requests,
            clinicians_available: available,
            server_time: now,
        };
        if !to.is_empty() {
            let message = queue(shared);
            self.outputs.push_back(Output::Send { to, message });
        }
        for (conn, requests) in own {
            let message = queue(requests);
            self.send(conn, message);
        }
        let order: Vec<RequestId> = self.queue.iter().map(|(_, _, id)| *id).collect();
        for (index, id) in order.into_iter().enumerate() {
            let position = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let Some(r) = self.waiting.get_mut(&id) else {
                continue;
            };
            let told = (position, available, r.escalation, r.alerted, r.duty_alerted);
            if r.last_told == Some(told) {
                continue;
            }
            let station = r.station;
            let conn = self.accounts.get(&station).and_then(|a| a.conn);
            if conn.is_none() {
                continue; // Told on reconnect.
            }
            r.last_told = Some(told);
            let msg = ServerMessage::RequestUpdate {
                request_id: id,
                state: RequestState::Waiting,
                position: Some(position),
                clinicians_available: available,
                requested_at: r.requested_at,
                waited_ms: self.now - r.requested_at,
                outcome: None,
                clinician: None,
                escalation: r.escalation,
                alerted: r.alerted,
                duty_alerted: r.duty_alerted,
            };
            self.send_to_user(station, msg);
        }
    }

    // -----------------------------------------------------------------------
    // Escalation
    // -----------------------------------------------------------------------

    /// When this request's next escalation step is due. Test calls are
    /// never escalated: a probe must not page the nurse in charge.
    fn next_escalation(&self, r: &Request) -> Option<Millis> {
        if r.test {
            return None;
        }
        let policy = self.config.escalation_for(r.urgency);
        match r.escalation {
            None => Some(r.requested_at + policy.realert_after_ms.max(0)),
            Some(EscalationLevel::Realerted) => {
                Some(r.requested_at + policy.escalate_after_ms.max(policy.realert_after_ms).max(0))
            }
            Some(EscalationLevel::Escalated) => None,
        }
    }

    fn unschedule_escalation(&mut self, r: &Request) {
        if let Some(at) = self.next_escalation(r) {
            self.escalation_due.remove(&(at, r.id));
        }
    }

    fn escalate_due(&mut self) {
        while let Some(&(at, request_id)) = self.escalation_due.first() {
            if at > self.now {
                break;
            }
            self.escalation_due.pop_first();
            let Some(r) = self.waiting.get_mut(&request_id) else {
                continue;
            };
            let level = match r.escalation {
                None => EscalationLevel::Realerted,
                Some(_) => EscalationLevel::Escalated,
            };
            r.escalation = Some(level);
            let r = r.clone();
            if let Some(next) = self.next_escalation(&r) {
                self.escalation_due.insert((next, request_id));
            }
            let entry = self.entry(&r);
            // Every ringable clinician is rung again at each step.
            let ringable: Vec<UserId> = self
                .clinicians
                .iter()
                .filter_map(|u| self.accounts.get(u))
                .filter(|a| a.rings_for(&r))
                .map(|a| a.identity.user_id)
                .collect();
            let mut notified = ringable.clone();
            let ring_to: Vec<ConnId> = ringable
                .iter()
                .filter_map(|u| self.accounts.get(u).and_then(|a| a.conn))
                .collect();
            if !ring_to.is_empty() {
                self.outputs.push_back(Output::Send {
                    to: ring_to,
                    message: ServerMessage::Ring {
                        request: entry.clone(),
                    },
                });
            }
            let mut duty_alerted = None;
            if level == EscalationLevel::Escalated {
                // Duty holders are alerted whatever their availability.
                let duty: Vec<(UserId, ConnId)> = self
                    .clinicians
                    .iter()
                    .filter_map(|u| self.accounts.get(u))
                    .filter(|a| a.identity.escalation_duty && !a.identity.monitoring)
                    .filter_map(|a| a.conn.map(|c| (a.identity.user_id, c)))
                    .collect();
                duty_alerted = Some(u32::try_from(duty.len()).unwrap_or(u32::MAX));
                for (user, _) in &duty {
                    if !notified.contains(user) {
                        notified.push(*user);
                    }
                }
                if !duty.is_empty() {
                    self.outputs.push_back(Output::Send {
                        to: duty.iter().map(|(_, c)| *c).collect(),
                        message: ServerMessage::Escalation { request: entry },
                    });
                }
            }
            if let Some(w) = self.waiting.get_mut(&request_id) {
                w.alerted = Some(u32::try_from(notified.len()).unwrap_or(u32::MAX));
                w.duty_alerted = duty_alerted;
            }
            self.record(request_id, ConsultEvent::Escalated { level, notified });
            // The queue shows the level; the station is told by flush_queue.
            self.touch_request(request_id);
            self.queue_dirty = true;
        }
    }

    // -----------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------

    fn call_start(&self, call: &Call, side: Side, resumed: bool) -> ServerMessage {
        let peer_id = match side {
            Side::Station => call.clinician,
            Side::Clinician => call.request.station,
        };
        let peer = self
            .accounts
            .get(&peer_id)
            .map(Account::peer)
            .unwrap_or(Peer {
                display_name: String::new(),
                role: match side {
                    Side::Station => Role::Clinician,
                    Side::Clinician => Role::Station,
                },
                site: None,
            });
        ServerMessage::CallStart {
            call_id: call.id,
            request_id: call.request.id,
            peer,
            offerer: side == Side::Station,
            consult: ConsultSummary {
                urgency: call.request.urgency,
                reason: call.request.reason.clone(),
                patient_ref: call.request.patient_ref.clone(),
                requested_at: call.request.requested_at,
                accepted_at: call.accepted_at,
                test: call.request.test,
            },
            resumed,
        }
    }

    /// Keeps an ended call's parties for [`RECENTLY_ENDED_MS`], so that a
    /// quality report racing the hang-up is still recorded.
    fn remember_ended(
        &mut self,
        call_id: CallId,
        request_id: RequestId,
        station: UserId,
        clinician: UserId,
    ) {
        let now = self.now;
        while let Some(&(at, old)) = self.recently_ended_order.front() {
            if at + RECENTLY_ENDED_MS > now {
                break;
            }
            self.recently_ended_order.pop_front();
            self.recently_ended.remove(&old);
        }
        self.recently_ended.insert(
            call_id,
            RecentCall {
                request_id,
                station,
                clinician,
                ended_at: now,
            },
        );
        self.recently_ended_order.push_back((now, call_id));
    }

    /// Adds a new account to the role indexes.
    fn index(&mut self, identity: &Identity) {
        if identity.role == Role::Clinician {
            self.clinicians.insert(identity.user_id);
        }
        if identity.role != Role::Station {
            self.observers.insert(identity.user_id);
        }
        self.usernames
            .entry(identity.username.clone())
            .or_default()
            .insert(identity.user_id);
    }

    fn send_presence(&mut self, clinician: UserId) {
        if let Some(a) = self.accounts.get(&clinician) {
            let msg = ServerMessage::Presence {
                status: a.availability,
                engaged: a.engaged,
            };
            self.send_to_user(clinician, msg);
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

    /// Checks the rules that must hold after every input. Used by the tests,
    /// the property tests and the fuzz target; returns what is broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut by_urgency = [0usize; 3];
        for (urgency, _, _) in &self.queue {
            by_urgency[urgency_index(*urgency)] += 1;
        }
        if by_urgency != self.queued_by_urgency {
            return Err(format!(
                "the queue holds {by_urgency:?} requests by urgency, but {:?} are counted",
                self.queued_by_urgency
            ));
        }
        let shared = self.entries_for_target(&None);
        for (id, a) in &self.accounts {
            if a.conn.is_some() && self.observers.contains(id) && !self.queue_special.contains(id) {
                // Everyone not due a visit was told their queue as it is
                // now, and the count too unless a count is held back.
                let key = self
                    .own_view(a, &shared)
                    .as_deref()
                    .map_or_else(|| view_key(&shared), view_key);
                let fresh = match a.queue_told {
                    Some((k, n)) => {
                        k == key && (n == self.available || self.queue_count_due.is_some())
                    }
                    None => false,
                };
                if !fresh && !self.queue_dirty {
                    return Err(format!(
                        "account {id} was told {:?} of the queue, not its queue as it is now",
                        a.queue_told
                    ));
                }
            }
            if !self
                .usernames
                .get(&a.identity.username)
                .is_some_and(|ids| ids.contains(id))
            {
                return Err(format!("account {id} is missing from the username index"));
            }
        }
        if self.available != self.count_available() {
            return Err(format!(
                "counted {} clinicians available, but {} are",
                self.available,
                self.count_available()
            ));
        }
        let by_target: usize = self.queue_for.values().map(BTreeSet::len).sum();
        if by_target != self.queue.len()
            || self.queue_for.iter().any(|(to, keys)| {
                keys.iter().any(|k| {
                    !self.queue.contains(k)
                        || self.waiting.get(&k.2).map(|r| &r.direct_to) != Some(to)
                })
            })
        {
            return Err("the queue by target disagrees with the queue".into());
        }
        if self.queue.len() != self.waiting.len() {
            return Err(format!(
                "queue has {} entries but {} requests wait",
                self.queue.len(),
                self.waiting.len()
            ));
        }
        for key in &self.queue {
            let Some(r) = self.waiting.get(&key.2) else {
                return Err(format!("queue holds unknown request {}", key.2));
            };
            if r.queue_key() != *key {
                return Err(format!("queue key of request {} is stale", key.2));
            }
            if self.answered.contains_key(&r.id) {
                return Err(format!("request {} both waits and was answered", r.id));
            }
            match self.accounts.get(&r.station).and_then(|a| a.open) {
                Some(Open::Waiting(id)) if id == r.id => {}
                other => {
                    return Err(format!(
                        "request {} waits but its station's open consult is {other:?}",
                        r.id
                    ))
                }
            }
        }
        let mut clinicians_in_calls = HashMap::new();
        for call in self.calls.values() {
            if self.waiting.contains_key(&call.request.id) {
                return Err(format!(
                    "request {} is both waiting and in call {}",
                    call.request.id, call.id
                ));
            }
            if let Some(other) = clinicians_in_calls.insert(call.clinician, call.id) {
                return Err(format!(
                    "clinician {} is in two calls ({other} and {})",
                    call.clinician, call.id
                ));
            }
            if call.clinician == call.request.station {
                return Err(format!("call {} has one account on both sides", call.id));
            }
            match self
                .accounts
                .get(&call.clinician)
                .map(|a| (a.identity.role, a.engaged))
            {
                Some((Role::Clinician, Some(Engagement::InCall { call_id })))
                    if call_id == call.id => {}
                other => {
                    return Err(format!(
                        "call {} has clinician {} whose state is {other:?}",
                        call.id, call.clinician
                    ))
                }
            }
            match self
                .accounts
                .get(&call.request.station)
                .map(|a| (a.identity.role, a.open))
            {
                Some((Role::Station, Some(Open::InCall(call_id)))) if call_id == call.id => {}
                other => {
                    return Err(format!(
                        "call {} has station {} whose state is {other:?}",
                        call.id, call.request.station
                    ))
                }
            }
            if self.answered.get(&call.request.id) != Some(&call.id) {
                return Err(format!("call {} is missing from the answered map", call.id));
            }
        }
        for account in self.accounts.values() {
            match account.open {
                Some(Open::Waiting(id)) if !self.waiting.contains_key(&id) => {
                    return Err(format!(
                        "station {} points at gone request {id}",
                        account.identity.user_id
                    ))
                }
                Some(Open::InCall(id)) if !self.calls.contains_key(&id) => {
                    return Err(format!(
                        "station {} points at gone call {id}",
                        account.identity.user_id
                    ))
                }
                _ => {}
            }
            match account.engaged {
                Some(Engagement::InCall { call_id }) if !self.calls.contains_key(&call_id) => {
                    return Err(format!(
                        "clinician {} points at gone call {call_id}",
                        account.identity.user_id
                    ))
                }
                Some(Engagement::OutcomePending { call_id })
                    if !self.ended.contains_key(&call_id) =>
                {
                    return Err(format!(
                        "clinician {} owes an outcome for unknown call {call_id}",
                        account.identity.user_id
                    ))
                }
                _ => {}
            }
            if let Some(conn) = account.conn {
                if self.conns.get(&conn) != Some(&account.identity.user_id) {
                    return Err(format!(
                        "account {} has a stale connection",
                        account.identity.user_id
                    ));
                }
            }
        }
        for (conn, user) in &self.conns {
            if self.accounts.get(user).and_then(|a| a.conn) != Some(*conn) {
                return Err(format!("connection {conn} points at the wrong account"));
            }
        }
        for (id, a) in &self.accounts {
            let c = a.identity.role == Role::Clinician;
            let o = a.identity.role != Role::Station;
            if self.clinicians.contains(id) != c || self.observers.contains(id) != o {
                return Err(format!("account {id} is misfiled in the role indexes"));
            }
        }
        if self
            .clinicians
            .iter()
            .chain(&self.observers)
            .any(|id| !self.accounts.contains_key(id))
        {
            return Err("a role index names a forgotten account".into());
        }
        // Each waiting request has exactly its next escalation step scheduled.
        let mut expected = BTreeSet::new();
        for r in self.waiting.values() {
            if let Some(at) = self.next_escalation(r) {
                expected.insert((at, r.id));
            }
        }
        if expected != self.escalation_due {
            return Err(format!(
                "escalation schedule {:?} differs from the waiting requests' {:?}",
                self.escalation_due, expected
            ));
        }
        Ok(())
    }
}

fn not_your_call(call_id: CallId) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::NotInCall,
        format!("call {call_id} is another clinician's; nothing was recorded"),
    )
}

fn error(code: ErrorCode, message: &str, in_reply_to: Option<&str>) -> ServerMessage {
    ServerMessage::Error {
        code,
        message: message.to_owned(),
        in_reply_to: in_reply_to.map(str::to_owned),
    }
}

fn allowed_roles(kind: &str) -> &'static str {
    match kind {
        "request_consult" | "cancel_request" => "station",
        "set_availability" | "accept" | "record_outcome" => "clinician",
        _ => "station or clinician",
    }
}

/// What a queue shows, for telling whether it changed: its entries without
/// the time waited (clients count that on from the last message).
fn view_key(entries: &[QueueEntry]) -> u64 {
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
fn shift(count: &mut u32, before: bool, after: bool) {
    match (before, after) {
        (false, true) => *count = count.saturating_add(1),
        (true, false) => *count = count.saturating_sub(1),
        _ => {}
    }
}

fn unindex_name(index: &mut HashMap<String, BTreeSet<UserId>>, name: &str, user: UserId) {
    if let Some(ids) = index.get_mut(name) {
        ids.remove(&user);
        if ids.is_empty() {
            index.remove(name);
        }
    }
}
