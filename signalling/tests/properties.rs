//! Property tests: random sequences of connects, disconnects, messages and
//! time steps, with the switchboard's invariants checked after every input
//! and the log checked at the end (no request lost or duplicated, no relay
//! outside a call).

use proptest::prelude::*;
use serde_json::json;
use signalling::*;
use std::collections::{HashMap, HashSet};

const GRACE: i64 = 5_000;
const STATIONS: [i64; 3] = [1, 2, 3];
const CLINICIANS: [i64; 3] = [10, 11, 12];
const MANAGER: i64 = 20;

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Send(usize, Msg),
    Advance(i64),
}

#[derive(Debug, Clone)]
enum Msg {
    Request(u8, u8),
    Cancel(u64),
    Availability(u8),
    Accept(u64),
    Outcome(u64),
    Signal(u64),
    Connected(u64),
    HangUp(u64),
}

fn users() -> Vec<(i64, Role)> {
    STATIONS
        .iter()
        .map(|&u| (u, Role::Station))
        .chain(CLINICIANS.iter().map(|&u| (u, Role::Clinician)))
        .chain([(MANAGER, Role::Manager)])
        .collect()
}

fn msg() -> impl Strategy<Value = Msg> {
    let id = 1u64..6;
    prop_oneof![
        ((0u8..3), (0u8..3)).prop_map(|(u, t)| Msg::Request(u, t)),
        id.clone().prop_map(Msg::Cancel),
        (0u8..3).prop_map(Msg::Availability),
        id.clone().prop_map(Msg::Accept),
        id.clone().prop_map(Msg::Outcome),
        id.clone().prop_map(Msg::Signal),
        id.clone().prop_map(Msg::Connected),
        id.prop_map(Msg::HangUp),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let n = users().len();
    prop_oneof![
        2 => (0..n).prop_map(Op::Connect),
        1 => (0..n).prop_map(Op::Disconnect),
        6 => ((0..n), msg()).prop_map(|(u, m)| Op::Send(u, m)),
        1 => (0i64..4_000).prop_map(Op::Advance),
    ]
}

fn to_client(m: &Msg) -> ClientMessage {
    match *m {
        Msg::Request(u, t) => ClientMessage::RequestConsult {
            urgency: Urgency::ALL[u as usize % 3],
            reason: "r".into(),
            patient_ref: None,
            // Ordinary, test, or a test directed at clinician 10 only.
            test: t > 0,
            direct_to: (t == 2).then(|| "u10".to_owned()),
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
            outcome: Outcome::ManagedLocally,
            note: None,
        },
        Msg::Signal(id) => ClientMessage::Signal {
            call_id: CallId(id),
            data: json!({"n": id}),
        },
        Msg::Connected(id) => ClientMessage::CallConnected {
            call_id: CallId(id),
        },
        Msg::HangUp(id) => ClientMessage::HangUp {
            call_id: CallId(id),
        },
    }
}

struct World {
    sb: Switchboard,
    now: Millis,
    next_conn: u64,
    /// Current connection of each user index.
    conn_of: HashMap<usize, ConnId>,
    /// Every connection ever made and its user.
    user_of_conn: HashMap<ConnId, i64>,
    events: Vec<Event>,
    /// call -> (station, clinician), from the log.
    calls: HashMap<CallId, (i64, i64)>,
}

impl World {
    fn run(
        &mut self,
        input: Input,
        sender: Option<(i64, &ClientMessage)>,
    ) -> Result<(), TestCaseError> {
        self.sb.handle(self.now, input);
        while let Some(out) = self.sb.poll_output() {
            match out {
                Output::Record(e) => {
                    if let Event::Consult {
                        event: ConsultEvent::Accepted { call_id, clinician },
                        request_id,
                        ..
                    } = &e
                    {
                        let station = self
                            .events
                            .iter()
                            .find_map(|x| match x {
                                Event::Consult {
                                    request_id: r,
                                    event: ConsultEvent::Requested { station, .. },
                                    ..
                                } if r == request_id => Some(station.user_id.0),
                                _ => None,
                            })
                            .ok_or_else(|| TestCaseError::fail("accepted a request never made"))?;
                        prop_assert!(self
                            .calls
                            .insert(*call_id, (station, clinician.user_id.0))
                            .is_none());
                    }
                    self.events.push(e);
                }
                Output::Send {
                    to,
                    message: ServerMessage::Signal { call_id, .. },
                } => {
                    // A relay: must come from one party and go to the other.
                    let (user, sent) =
                        sender.ok_or_else(|| TestCaseError::fail("signal out of nowhere"))?;
                    let ClientMessage::Signal {
                        call_id: sent_call, ..
                    } = sent
                    else {
                        return Err(TestCaseError::fail("signal relayed for a non-signal input"));
                    };
                    prop_assert_eq!(*sent_call, call_id);
                    let &(station, clinician) = self
                        .calls
                        .get(&call_id)
                        .ok_or_else(|| TestCaseError::fail("relay for a call never made"))?;
                    prop_assert!(
                        user == station || user == clinician,
                        "relay from a stranger"
                    );
                    let other = if user == station { clinician } else { station };
                    for conn in to {
                        prop_assert_eq!(self.user_of_conn.get(&conn).copied(), Some(other));
                    }
                }
                Output::Send { .. } | Output::Close { .. } => {}
            }
        }
        self.sb.check_invariants().map_err(TestCaseError::fail)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_keep_every_invariant(ops in proptest::collection::vec(op(), 1..120)) {
        let users = users();
        let mut w = World {
            sb: Switchboard::new(Config {
                disconnect_grace_ms: GRACE,
                // Short enough that random time steps reach both steps.
                escalation: [EscalationPolicy { realert_after_ms: 2_000, escalate_after_ms: 5_000 }; 3],
                ..Config::default()
            }, 0),
            now: 0,
            next_conn: 1,
            conn_of: HashMap::new(),
            user_of_conn: HashMap::new(),
            events: Vec::new(),
            calls: HashMap::new(),
        };
        for op in &ops {
            match op {
                Op::Connect(u) => {
                    let (user, role) = users[*u];
                    let conn = ConnId(w.next_conn);
                    w.next_conn += 1;
                    w.conn_of.insert(*u, conn);
                    w.user_of_conn.insert(conn, user);
                    let identity = Identity {
                        user_id: UserId(user), username: format!("u{user}"), display_name: format!("U{user}"), role, site: None, escalation_duty: user == 11,
                    };
                    w.run(Input::Connect { conn, identity, ice_servers: vec![] }, None)?;
                }
                Op::Disconnect(u) => {
                    if let Some(conn) = w.conn_of.remove(u) {
                        w.run(Input::Disconnect { conn }, None)?;
                    }
                }
                Op::Send(u, m) => {
                    if let Some(&conn) = w.conn_of.get(u) {
                        let message = to_client(m);
                        let user = users[*u].0;
                        w.run(Input::Message { conn, message: message.clone() }, Some((user, &message)))?;
                    }
                }
                Op::Advance(ms) => {
                    w.now += ms;
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
        w.now += GRACE + 1;
        w.run(Input::Timeout, None)?;
        prop_assert!(w.sb.queue_entries().is_empty());
        prop_assert_eq!(w.sb.call_count(), 0);

        // Every request made ended exactly one way: cancelled, abandoned or answered.
        let mut made = HashSet::new();
        let mut ends: HashMap<RequestId, u32> = HashMap::new();
        let mut calls_ended: HashMap<CallId, u32> = HashMap::new();
        for e in &w.events {
            if let Event::Consult { request_id, event, .. } = e {
                match event {
                    ConsultEvent::Requested { .. } => prop_assert!(made.insert(*request_id), "request id reused"),
                    ConsultEvent::Cancelled | ConsultEvent::Abandoned | ConsultEvent::Accepted { .. } => {
                        prop_assert!(made.contains(request_id));
                        *ends.entry(*request_id).or_default() += 1;
                    }
                    ConsultEvent::CallEnded { call_id, .. } => *calls_ended.entry(*call_id).or_default() += 1,
                    _ => {}
                }
            }
        }
        for r in &made {
            prop_assert_eq!(ends.get(r).copied(), Some(1), "request {} did not end exactly once", r);
        }
        for c in w.calls.keys() {
            prop_assert_eq!(calls_ended.get(c).copied(), Some(1), "call {} did not end exactly once", c);
        }
    }
}
