//! A simulation harness: drives a switchboard through any sequence of
//! connects, disconnects, messages and clock steps, checking the invariants
//! after every input and the log at the end. Used by the property tests
//! (bounded, in the normal test suite) and by the cargo-fuzz target
//! (unbounded, `scripts/fuzz.sh`), so both check exactly the same things:
//!
//! * `Switchboard::check_invariants` after every input;
//! * a `signal` is relayed only from one party of a call to the other;
//! * every request made ends exactly once (cancelled, abandoned or answered),
//!   every call ends exactly once, and ids are never reused.

use crate::{
    Availability, CallId, ClientMessage, ConnId, ConsultEvent, EscalationPolicy, Event, Identity,
    Input, Output, RequestId, Role, ServerMessage, Switchboard, Urgency, UserId,
};
use std::collections::{HashMap, HashSet};

pub const GRACE_MS: i64 = 5_000;

/// The cast: three stations (one a monitoring probe), three clinicians
/// (one with an escalation duty, one a monitoring probe), one manager.
pub const USERS: [(i64, Role); 7] = [
    (1, Role::Station),
    (2, Role::Station),
    (3, Role::Station),
    (10, Role::Clinician),
    (11, Role::Clinician),
    (12, Role::Clinician),
    (20, Role::Manager),
];

/// The identity of cast member `u` (an index into [`USERS`]).
pub fn identity(u: usize) -> Identity {
    let (user, role) = USERS[u % USERS.len()];
    Identity {
        user_id: UserId(user),
        username: format!("u{user}"),
        display_name: format!("U{user}"),
        role,
        site: None,
        escalation_duty: user == 11,
        // Probe accounts: clinician 12 and station 3.
        monitoring: user == 12 || user == 3,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Connect(usize),
    Disconnect(usize),
    /// Signs out on purpose (a waiting request is withdrawn).
    SignOut(usize),
    Send(usize, Msg),
    Advance(i64),
}

/// A message with small ids, so that random ones often hit real objects.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Urgency index; 0 ordinary, 1 test, 2 test directed at clinician 12
    /// (a monitoring account).
    Request(u8, u8),
    Cancel(u64),
    Availability(u8),
    Accept(u64),
    Outcome(u64),
    Signal(u64),
    Connected(u64),
    HangUp(u64),
    Quality(u64),
}

impl Msg {
    pub fn to_client(&self) -> ClientMessage {
        match *self {
            Msg::Request(u, t) => ClientMessage::RequestConsult {
                urgency: Urgency::ALL[u as usize % 3],
                reason: "r".into(),
                patient_ref: None,
                test: t % 3 > 0,
                direct_to: (t % 3 == 2).then(|| "u12".to_owned()),
            },
            Msg::Cancel(id) => ClientMessage::CancelRequest {
                request_id: RequestId(id),
            },
            Msg::Availability(a) => ClientMessage::SetAvailability {
                status: [
                    Availability::Available,
                    Availability::Busy,
                    Availability::Away,
                ][a as usize % 3],
            },
            Msg::Accept(id) => ClientMessage::Accept {
                request_id: RequestId(id),
            },
            Msg::Outcome(id) => ClientMessage::RecordOutcome {
                call_id: CallId(id),
                outcome: crate::Outcome::ManagedLocally,
                note: None,
            },
            Msg::Signal(id) => ClientMessage::Signal {
                call_id: CallId(id),
                data: serde_json::json!({ "n": id }).into(),
            },
            Msg::Connected(id) => ClientMessage::CallConnected {
                call_id: CallId(id),
            },
            Msg::HangUp(id) => ClientMessage::HangUp {
                call_id: CallId(id),
            },
            Msg::Quality(id) => ClientMessage::CallQuality {
                call_id: CallId(id),
                sample: crate::QualitySample {
                    rtt_ms: Some(30.0),
                    ..Default::default()
                },
            },
        }
    }
}

/// Turns arbitrary bytes into operations (for the fuzzer): every byte
/// string is a valid, if odd, session.
pub fn ops_from_bytes(bytes: &[u8]) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut it = bytes.chunks(3);
    for chunk in &mut it {
        let [a, b, c] = match *chunk {
            [a, b, c] => [a, b, c],
            [a, b] => [a, b, 0],
            [a] => [a, 0, 0],
            _ => break,
        };
        let user = b as usize % USERS.len();
        let id = u64::from(c % 6) + 1;
        ops.push(match a % 14 {
            0 | 1 => Op::Connect(user),
            2 if c % 2 == 0 => Op::Disconnect(user),
            2 => Op::SignOut(user),
            3 => Op::Advance(i64::from(b) * 40 + i64::from(c)),
            4 => Op::Send(user, Msg::Request(c % 3, c / 3 % 3)),
            5 => Op::Send(user, Msg::Cancel(id)),
            6 => Op::Send(user, Msg::Availability(c)),
            7 | 8 => Op::Send(user, Msg::Accept(id)),
            9 => Op::Send(user, Msg::Outcome(id)),
            10 => Op::Send(user, Msg::Signal(id)),
            11 => Op::Send(user, Msg::Connected(id)),
            12 => Op::Send(user, Msg::HangUp(id)),
            _ => Op::Send(user, Msg::Quality(id)),
        });
    }
    ops
}

struct World {
    sb: Switchboard,
    now: i64,
    next_conn: u64,
    conn_of: HashMap<usize, ConnId>,
    user_of_conn: HashMap<ConnId, i64>,
    events: Vec<Event>,
    calls: HashMap<CallId, (i64, i64)>,
    stations_of: HashMap<RequestId, i64>,
}

impl World {
    fn run(&mut self, input: Input, sender: Option<(i64, &ClientMessage)>) -> Result<(), String> {
        self.sb.handle(self.now, input);
        while let Some(out) = self.sb.poll_output() {
            match out {
                Output::Record(e) => {
                    if let Event::Consult {
                        request_id, event, ..
                    } = &e
                    {
                        match event {
                            ConsultEvent::Requested { station, .. } => {
                                self.stations_of.insert(*request_id, station.user_id.0);
                            }
                            ConsultEvent::Accepted { call_id, clinician } => {
                                let station = *self
                                    .stations_of
                                    .get(request_id)
                                    .ok_or("accepted a request never made")?;
                                if self
                                    .calls
                                    .insert(*call_id, (station, clinician.user_id.0))
                                    .is_some()
                                {
                                    return Err(format!("call id {call_id} reused"));
                                }
                            }
                            _ => {}
                        }
                    }
                    self.events.push(e);
                }
                Output::Send {
                    to,
                    message: ServerMessage::Signal { call_id, .. },
                } => {
                    let (user, sent) = sender.ok_or("a signal relayed out of nowhere")?;
                    let ClientMessage::Signal {
                        call_id: sent_call, ..
                    } = sent
                    else {
                        return Err("a signal relayed for a non-signal input".into());
                    };
                    if *sent_call != call_id {
                        return Err("a signal relayed into another call".into());
                    }
                    let &(station, clinician) = self
                        .calls
                        .get(&call_id)
                        .ok_or("a relay for a call never made")?;
                    if user != station && user != clinician {
                        return Err(format!("a relay from {user}, a stranger to call {call_id}"));
                    }
                    let other = if user == station { clinician } else { station };
                    for conn in to {
                        if self.user_of_conn.get(&conn) != Some(&other) {
                            return Err(format!(
                                "a relay in call {call_id} went to the wrong account"
                            ));
                        }
                    }
                }
                Output::Send { .. } | Output::Close { .. } => {}
            }
        }
        self.sb.check_invariants()
    }
}

/// Runs the session; `Err` says which rule broke.
pub fn run(ops: &[Op]) -> Result<(), String> {
    let mut w = World {
        sb: Switchboard::new(
            crate::Config {
                disconnect_grace_ms: GRACE_MS,
                // Short, so that random clock steps reach both steps.
                escalation: [EscalationPolicy {
                    realert_after_ms: 2_000,
                    escalate_after_ms: 5_000,
                }; 3],
                ..crate::Config::default()
            },
            0,
        ),
        now: 0,
        next_conn: 1,
        conn_of: HashMap::new(),
        user_of_conn: HashMap::new(),
        events: Vec::new(),
        calls: HashMap::new(),
        stations_of: HashMap::new(),
    };
    for op in ops {
        match op {
            Op::Connect(u) => {
                let identity = identity(*u);
                let user = identity.user_id.0;
                let conn = ConnId(w.next_conn);
                w.next_conn += 1;
                w.conn_of.insert(*u, conn);
                w.user_of_conn.insert(conn, user);
                w.run(
                    Input::Connect {
                        conn,
                        identity,
                        ice_servers: vec![],
                    },
                    None,
                )?;
            }
            Op::Disconnect(u) => {
                if let Some(conn) = w.conn_of.remove(u) {
                    w.run(Input::Disconnect { conn }, None)?;
                }
            }
            Op::SignOut(u) => {
                if let Some(conn) = w.conn_of.remove(u) {
                    w.run(Input::SignOut { conn }, None)?;
                }
            }
            Op::Send(u, m) => {
                if let Some(&conn) = w.conn_of.get(u) {
                    let message = m.to_client();
                    let user = USERS[*u % USERS.len()].0;
                    w.run(
                        Input::Message {
                            conn,
                            message: message.clone(),
                        },
                        Some((user, &message)),
                    )?;
                }
            }
            Op::Advance(ms) => {
                w.now += (*ms).max(0);
                if w.sb.poll_timeout().is_some_and(|t| t <= w.now) {
                    w.run(Input::Timeout, None)?;
                }
            }
        }
    }
    // Everyone leaves; after the grace period nothing may be left open.
    let conns: Vec<ConnId> = w.conn_of.drain().map(|(_, c)| c).collect();
    for conn in conns {
        w.run(Input::Disconnect { conn }, None)?;
    }
    w.now += GRACE_MS + 1;
    w.run(Input::Timeout, None)?;
    if !w.sb.queue_entries().is_empty() || w.sb.waiting_count() != 0 {
        return Err("requests still waiting after everyone left".into());
    }
    if w.sb.call_count() != 0 {
        return Err("calls still open after everyone left".into());
    }
    let mut made = HashSet::new();
    let mut ends: HashMap<RequestId, u32> = HashMap::new();
    let mut calls_ended: HashMap<CallId, u32> = HashMap::new();
    for e in &w.events {
        if let Event::Consult {
            request_id, event, ..
        } = e
        {
            match event {
                ConsultEvent::Requested { .. } if !made.insert(*request_id) => {
                    return Err(format!("request id {request_id} reused"));
                }
                ConsultEvent::Cancelled
                | ConsultEvent::Abandoned
                | ConsultEvent::Accepted { .. } => {
                    if !made.contains(request_id) {
                        return Err(format!("request {request_id} ended before it was made"));
                    }
                    *ends.entry(*request_id).or_default() += 1;
                }
                ConsultEvent::CallEnded { call_id, .. } => {
                    *calls_ended.entry(*call_id).or_default() += 1
                }
                _ => {}
            }
        }
    }
    for r in &made {
        if ends.get(r) != Some(&1) {
            return Err(format!(
                "request {r} did not end exactly once: lost or duplicated"
            ));
        }
    }
    for c in w.calls.keys() {
        if calls_ended.get(c) != Some(&1) {
            return Err(format!("call {c} did not end exactly once"));
        }
    }
    Ok(())
}
