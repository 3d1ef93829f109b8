//! What may reach a connection now, and what waits for the log.
//!
//! The operator hands every turn's switchboard outputs to [`Dispatch::route`].
//! The turn's log events become one numbered batch for the log writer; the
//! turn's messages are sorted by what they depend on:
//!
//! * A message that reveals a transition (everything except the two kinds
//!   below) waits until every batch numbered so far is durable: what it
//!   shows may come from this turn's events or from an earlier turn's that
//!   are still being written.
//! * A relayed `signal` and a `pong` depend on nothing unlogged and go out
//!   at once, unless the connection still has a held message they must not
//!   overtake: a `signal` waits behind a held message about the same call
//!   (its `call_start`, a `peer_status`, an earlier signal), a `pong`
//!   behind an earlier `pong`, and nothing overtakes a barrier (`call_end`,
//!   a close, a `request_update`, an `error`, anything not named here).
//!   Queue updates (`queue`, `ring`, `escalation`, a `presence` that names
//!   no call) are about other requests and may be overtaken.
//!
//! [`Dispatch::committed`] is told when a batch is durable and releases, in
//! each connection's order, whatever waited for it. Commits complete in
//! number order, so "durable up to N" is one number. A message that waits
//! behind another gets a release number at least that one's, so releasing
//! everything up to N in queue order never reorders a pair that must stay
//! in order.
//!
//! Sans-IO, like the switchboard: the operator does the IO, and the property
//! test in `tests.rs` drives this with random commit delays and failures.

use super::Outbound;
use axum::extract::ws::Utf8Bytes;
use signalling::{CallId, ConnId, Engagement, ErrorCode, Event, Output, ServerMessage};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// One turn's log events, to be made durable as batch `seq`.
#[derive(Debug)]
pub struct LogBatch {
    pub seq: u64,
    pub events: Vec<Event>,
}

/// What a message is about, for the overtaking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// About the queue or other requests: anything may overtake it.
    Queue,
    /// About one call.
    Call(CallId),
    /// A `pong`: only an earlier `pong` keeps it waiting.
    Pong,
    /// Nothing overtakes it.
    Barrier,
}

/// How a message is delivered: whether it may go before the log catches
/// up, and what it is about.
pub fn classify(message: &ServerMessage) -> (bool, Scope) {
    match message {
        ServerMessage::Signal { call_id, .. } => (true, Scope::Call(*call_id)),
        ServerMessage::Pong { .. } => (true, Scope::Pong),
        ServerMessage::Queue { .. }
        | ServerMessage::Ring { .. }
        | ServerMessage::Escalation { .. }
        | ServerMessage::Presence { engaged: None, .. } => (false, Scope::Queue),
        ServerMessage::Presence {
            engaged: Some(Engagement::InCall { call_id } | Engagement::OutcomePending { call_id }),
            ..
        }
        | ServerMessage::CallStart { call_id, .. }
        | ServerMessage::PeerStatus { call_id, .. }
        | ServerMessage::OutcomeRecorded { call_id, .. } => (false, Scope::Call(*call_id)),
        _ => (false, Scope::Barrier),
    }
}

/// May a message of scope `later` go before a held one of scope `held`?
fn may_overtake(later: Scope, held: Scope) -> bool {
    held != Scope::Barrier && held != later
}

struct Held {
    /// Released once the log is durable up to this batch.
    release: u64,
    scope: Scope,
    out: Outbound,
}

#[derive(Default)]
pub struct Dispatch {
    /// The last batch numbered.
    assigned: u64,
    /// Every batch up to this one is durable.
    durable: u64,
    held: HashMap<ConnId, VecDeque<Held>>,
    /// Which connections hold something released by each batch.
    waiting_on: BTreeMap<u64, Vec<ConnId>>,
    ready: Vec<(ConnId, Outbound)>,
}

impl Dispatch {
    pub fn new() -> Dispatch {
        Dispatch::default()
    }

    /// Batches numbered but not yet durable.
    pub fn in_flight(&self) -> u64 {
        self.assigned - self.durable
    }

    /// Sorts one turn's outputs; returns the turn's log events, if any, as
    /// the next batch to write.
    pub fn route(&mut self, outputs: Vec<Output>) -> Option<LogBatch> {
        let mut events = Vec::new();
        let mut messages = Vec::new();
        for out in outputs {
            match out {
                Output::Record(e) => events.push(e),
                other => messages.push(other),
            }
        }
        let batch = (!events.is_empty()).then(|| {
            self.assigned += 1;
            LogBatch {
                seq: self.assigned,
                events,
            }
        });
        for out in messages {
            match out {
                Output::Send { to, message } => {
                    let (immediate, scope) = classify(&message);
                    let text = Utf8Bytes::from(message.to_json());
                    for conn in to {
                        self.place(conn, immediate, scope, Outbound::Text(text.clone()));
                    }
                }
                Output::Close { conn, code } => {
                    let text = ServerMessage::Error {
                        code,
                        message: close_message(code).to_owned(),
                        in_reply_to: None,
                    }
                    .to_json();
                    let out = Outbound::Close {
                        text: text.into(),
                        code: 4000,
                    };
                    self.place(conn, false, Scope::Barrier, out);
                }
                Output::Record(_) => {}
            }
        }
        batch
    }

    fn place(&mut self, conn: ConnId, immediate: bool, scope: Scope, out: Outbound) {
        let queue = self.held.get(&conn);
        let release = if immediate {
            // At once, unless it must stay behind something held.
            queue
                .into_iter()
                .flatten()
                .filter(|h| !may_overtake(scope, h.scope))
                .map(|h| h.release)
                .max()
                .unwrap_or(0)
        } else {
            self.assigned
        };
        if release <= self.durable && queue.is_none_or(|q| immediate || q.is_empty()) {
            self.ready.push((conn, out));
            return;
        }
        self.held.entry(conn).or_default().push_back(Held {
            release,
            scope,
            out,
        });
        let conns = self.waiting_on.entry(release).or_default();
        if conns.last() != Some(&conn) {
            conns.push(conn);
        }
    }

    /// Every batch up to `seq` is durable: release what waited for them.
    pub fn committed(&mut self, seq: u64) {
        if seq <= self.durable {
            return;
        }
        self.durable = seq.min(self.assigned);
        let later = self.waiting_on.split_off(&(self.durable + 1));
        let due = std::mem::replace(&mut self.waiting_on, later);
        for conn in due.into_values().flatten() {
            let Some(queue) = self.held.get_mut(&conn) else {
                continue; // Forgotten, or already released this round.
            };
            let mut kept = VecDeque::new();
            for h in queue.drain(..) {
                if h.release <= self.durable {
                    self.ready.push((conn, h.out));
                } else {
                    kept.push_back(h);
                }
            }
            if kept.is_empty() {
                self.held.remove(&conn);
            } else {
                *queue = kept;
            }
        }
    }

    /// The connection is gone: drop what it was still owed.
    pub fn forget(&mut self, conn: ConnId) {
        self.held.remove(&conn);
    }

    /// Messages that may be written to their connections now, in order.
    pub fn take_ready(&mut self) -> Vec<(ConnId, Outbound)> {
        std::mem::take(&mut self.ready)
    }
}

fn close_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Replaced => {
            "this account signed in from another window or device; this one is closed"
        }
        _ => "the server closed this connection",
    }
}
