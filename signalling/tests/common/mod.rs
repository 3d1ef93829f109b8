//! A test harness: one switchboard, a fake clock, and per-connection inboxes.

#![allow(dead_code)]

use signalling::*;
use std::collections::HashMap;

pub const T0: Millis = 1_790_000_000_000; // A fixed "now" in late 2026.

pub struct Harness {
    pub sb: Switchboard,
    pub now: Millis,
    pub inbox: HashMap<ConnId, Vec<ServerMessage>>,
    pub events: Vec<Event>,
    pub closed: Vec<(ConnId, ErrorCode)>,
    /// Accounts that connect with an escalation duty.
    pub duty: Vec<i64>,
    /// Accounts that connect as monitoring probes.
    pub monitoring: Vec<i64>,
    next_conn: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        Harness {
            sb: Switchboard::new(config, T0),
            now: T0,
            inbox: HashMap::new(),
            events: Vec::new(),
            closed: Vec::new(),
            duty: Vec::new(),
            monitoring: Vec::new(),
            next_conn: 1,
        }
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        if let Some(at) = self.sb.poll_timeout() {
            if at <= self.now {
                self.input(Input::Timeout);
            }
        }
    }

    pub fn input(&mut self, input: Input) {
        self.sb.handle(self.now, input);
        while let Some(out) = self.sb.poll_output() {
            match out {
                Output::Send { to, message } => {
                    for conn in to {
                        self.inbox.entry(conn).or_default().push(message.clone());
                    }
                }
                Output::Record(e) => self.events.push(e),
                Output::Close { conn, code } => self.closed.push((conn, code)),
            }
        }
        if let Err(e) = self.sb.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    pub fn connect(&mut self, user: i64, role: Role, name: &str) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.input(Input::Connect {
            conn,
            identity: Identity {
                user_id: UserId(user),
                username: name.to_lowercase().replace(' ', "-"),
                display_name: name.to_owned(),
                role,
                site: (role == Role::Station).then(|| "Millom".to_owned()),
                escalation_duty: self.duty.contains(&user),
                monitoring: self.monitoring.contains(&user),
            },
            ice_servers: vec![],
        });
        conn
    }

    pub fn send(&mut self, conn: ConnId, message: ClientMessage) {
        self.input(Input::Message { conn, message });
    }

    pub fn send_json(&mut self, conn: ConnId, text: &str) {
        let message = decode(text).unwrap_or_else(|e| panic!("bad test json {text}: {e}"));
        self.send(conn, message);
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.input(Input::Disconnect { conn });
    }

    pub fn sign_out(&mut self, conn: ConnId) {
        self.input(Input::SignOut { conn });
    }

    /// Everything sent to `conn` since the last take.
    pub fn take(&mut self, conn: ConnId) -> Vec<ServerMessage> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn request(&mut self, conn: ConnId, urgency: Urgency, reason: &str) -> RequestId {
        self.send(
            conn,
            ClientMessage::RequestConsult {
                urgency,
                reason: reason.into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            },
        );
        let msgs = self.inbox.get(&conn).cloned().unwrap_or_default();
        msgs.iter()
            .rev()
            .find_map(|m| match m {
                ServerMessage::RequestUpdate {
                    request_id,
                    state: RequestState::Waiting,
                    ..
                } => Some(*request_id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no waiting update after request: {msgs:?}"))
    }

    pub fn accept(&mut self, conn: ConnId, request_id: RequestId) -> Option<CallId> {
        self.send(conn, ClientMessage::Accept { request_id });
        self.inbox.get(&conn).and_then(|msgs| {
            msgs.iter().rev().find_map(|m| match m {
                ServerMessage::CallStart { call_id, .. } => Some(*call_id),
                _ => None,
            })
        })
    }
}

pub fn errors(msgs: &[ServerMessage]) -> Vec<ErrorCode> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

pub fn last_queue(msgs: &[ServerMessage]) -> Option<(Vec<QueueEntry>, u32)> {
    msgs.iter().rev().find_map(|m| match m {
        ServerMessage::Queue {
            requests,
            clinicians_available,
            ..
        } => Some((requests.clone(), *clinicians_available)),
        _ => None,
    })
}

pub fn rings(msgs: &[ServerMessage]) -> Vec<RequestId> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Ring { request } => Some(request.request_id),
            _ => None,
        })
        .collect()
}

pub fn consult_kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Consult { event, .. } => Some(event.kind()),
            _ => None,
        })
        .collect()
}
