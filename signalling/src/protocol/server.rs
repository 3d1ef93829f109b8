//! Server to client: every message the server sends.

use super::*;

/// The account a connection belongs to, as told to that connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// One waiting request as clinicians see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub request_id: RequestId,
    pub station: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub urgency: Urgency,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
    pub requested_at: Millis,
    pub waited_ms: i64,
    /// False while the station's connection is lost (within the grace period).
    pub station_connected: bool,
    /// A test call, not a patient.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// Set once nobody has answered for longer than the escalation policy allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationLevel>,
}

/// The other party of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub display_name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// The consult a call is about, so both screens can show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsultSummary {
    pub urgency: Urgency,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
    pub requested_at: Millis,
    pub accepted_at: Millis,
    /// A test call (a monitoring probe, or a station checking its kit).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First on every connection.
    Welcome {
        user: UserInfo,
        role: Role,
        ice_servers: Vec<IceServer>,
        protocol_version: u32,
        server_time: Millis,
        max_frame_bytes: usize,
        /// What the server will accept and how it judges a link, so that a
        /// page's own checks cannot drift from the server's.
        #[serde(default)]
        limits: Limits,
    },
    /// To clinicians (and managers) on every change of the queue.
    Queue {
        requests: Vec<QueueEntry>,
        clinicians_available: u32,
        server_time: Millis,
    },
    /// To each available clinician when a request needs answering (again
    /// when it is re-alerted or escalated: see `request.escalation`).
    Ring { request: QueueEntry },
    /// To accounts with an escalation duty, whatever their availability:
    /// nobody has answered this request in time.
    Escalation { request: QueueEntry },
    /// To a clinician: their own availability as the switchboard sees it.
    Presence {
        status: Availability,
        /// Set while the clinician is in a call or must record an outcome.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engaged: Option<Engagement>,
    },
    /// To the station about its request.
    RequestUpdate {
        request_id: RequestId,
        state: RequestState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<u32>,
        clinicians_available: u32,
        requested_at: Millis,
        waited_ms: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<Outcome>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clinician: Option<String>,
        /// While waiting: how far the request has been escalated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        escalation: Option<EscalationLevel>,
        /// Once escalated: how many people the latest step actually alerted
        /// (connected clinicians rung again, and at `escalated` the duty
        /// holders). 0 means nobody could be alerted: the station must say
        /// so and put the phone number first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alerted: Option<u32>,
        /// At `escalated`: how many of those alerted hold the escalation
        /// duty (the A&E senior on duty). 0 means no senior was on line, so
        /// the station must not say the senior was alerted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duty_alerted: Option<u32>,
    },
    /// To both parties when a call is made (or resumed after a reconnect).
    CallStart {
        call_id: CallId,
        request_id: RequestId,
        peer: Peer,
        offerer: bool,
        consult: ConsultSummary,
        resumed: bool,
    },
    /// Relayed from the other party of the call.
    Signal { call_id: CallId, data: SignalData },
    /// The other party's connection was lost or came back.
    PeerStatus { call_id: CallId, connected: bool },
    /// To both parties when the call is over.
    CallEnd {
        call_id: CallId,
        reason: EndReason,
        /// True for the clinician until they record an outcome.
        outcome_required: bool,
    },
    /// To the clinician: the outcome was stored.
    OutcomeRecorded {
        call_id: CallId,
        request_id: RequestId,
        outcome: Outcome,
    },
    /// Fresh ICE servers (TURN credentials are renewed before they expire).
    IceServers { ice_servers: Vec<IceServer> },
    /// Reply to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
        server_time: Millis,
    },
    /// In reply to anything refused. Nothing changed.
    Error {
        code: ErrorCode,
        message: String,
        /// The `type` of the refused message, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<String>,
    },
}

/// What keeps a clinician from being rung besides their availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Engagement {
    InCall { call_id: CallId },
    OutcomePending { call_id: CallId },
}

impl ServerMessage {
    /// `in_reply_to`, when given, wins over the type the error itself
    /// names ([`ProtocolError::regarding`]).
    pub fn error(err: ProtocolError, in_reply_to: Option<&str>) -> ServerMessage {
        ServerMessage::Error {
            code: err.code,
            message: err.message,
            in_reply_to: in_reply_to.or(err.regarding).map(str::to_owned),
        }
    }

    /// The JSON text of this message. Serialising these types cannot fail:
    /// every map key is a string and there are no non-finite floats.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"type":"error","code":"unavailable","message":"could not encode a reply: {e}"}}"#)
        })
    }
}
