//! The wire protocol: JSON text frames with a `"type"` field.
//!
//! Every message is documented with an example in `signalling/PROTOCOL.md`.
//! Decoding is strict and total: [`decode`] never panics and turns every
//! kind of bad input into a [`ProtocolError`] with a stable `code` that the
//! server sends back as an `error` message.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// Bumped whenever a change would break an existing client.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest text frame the server accepts (bytes). Larger frames are refused
/// with `frame_too_large` before any parsing.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest `signal.data` payload (bytes of JSON). An SDP offer from Chromium
/// with audio, video and a data channel is 5-8 KiB; 32 KiB leaves room.
pub const MAX_SIGNAL_BYTES: usize = 32 * 1024;

/// A signal's `data` (an SDP description or ICE candidate) as the JSON text
/// the sender wrote, relayed to the other party byte for byte: the server
/// checks it is JSON and how long it is, and never rebuilds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignalData(Box<serde_json::value::RawValue>);

impl SignalData {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl From<Value> for SignalData {
    fn from(value: Value) -> SignalData {
        // A Value always serialises (string keys, finite numbers); the
        // default is `null`.
        SignalData(serde_json::value::to_raw_value(&value).unwrap_or_default())
    }
}

impl PartialEq for SignalData {
    fn eq(&self, other: &SignalData) -> bool {
        self.get() == other.get()
    }
}
/// The reason for a consult is a short presentation ("head injury, on warfarin").
pub const MAX_REASON_CHARS: usize = 200;
/// An optional local reference such as an MIU attendance number. Never a name:
/// it must contain a digit and only letters, digits, spaces, `-` and `/`.
pub const MAX_PATIENT_REF_CHARS: usize = 24;
/// The clinician's optional note with an outcome.
pub const MAX_NOTE_CHARS: usize = 500;

/// A call's link is poor over this round trip (ms)...
pub const POOR_LINK_RTT_MS: u32 = 400;
/// ...or over this packet loss (%), or when it dropped to audio only: the
/// call screen's badge and the managers' reports judge by the same rule.
pub const POOR_LINK_LOSS_PCT: f64 = 5.0;

/// The limits a client must respect, sent in `welcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub reason_max_chars: usize,
    pub note_max_chars: usize,
    pub patient_ref_max_chars: usize,
    /// The trust's pattern for a local reference: a regular expression
    /// the whole reference must match (the server always sends one).
    pub patient_ref_pattern: String,
    /// The words the station shows under the reference field.
    pub patient_ref_hint: String,
    pub poor_link: PoorLink,
}

/// When a link counts as poor ([`POOR_LINK_RTT_MS`], [`POOR_LINK_LOSS_PCT`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoorLink {
    pub rtt_ms: u32,
    pub loss_pct: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            reason_max_chars: MAX_REASON_CHARS,
            note_max_chars: MAX_NOTE_CHARS,
            patient_ref_max_chars: MAX_PATIENT_REF_CHARS,
            patient_ref_pattern: String::new(),
            patient_ref_hint: String::new(),
            poor_link: PoorLink {
                rtt_ms: POOR_LINK_RTT_MS,
                loss_pct: POOR_LINK_LOSS_PCT,
            },
        }
    }
}

/// Milliseconds since the Unix epoch, UTC. The switchboard never reads a
/// clock: its caller passes the time in with every input.
pub type Millis = i64;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A consult request. It is also the consult's id in the session log.
    RequestId
);
id_type!(
    /// A call between one station and one clinician, made from one request.
    CallId
);
id_type!(
    /// One WebSocket connection, assigned by the server.
    ConnId
);

/// An account id from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A device in a treatment room, used by MIU nurses.
    Station,
    /// An A&E clinician who takes calls.
    Clinician,
    /// Reads reports.
    Manager,
    /// Manages accounts and reads reports.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Clinician => "clinician",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "station" => Some(Role::Station),
            "clinician" => Some(Role::Clinician),
            "manager" => Some(Role::Manager),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// How soon the nurse needs the clinician. The queue is ordered by this
/// first (immediate before urgent before routine), then by arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Immediate,
    Urgent,
    Routine,
}

impl Urgency {
    pub const ALL: [Urgency; 3] = [Urgency::Immediate, Urgency::Urgent, Urgency::Routine];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Immediate => "immediate",
            Urgency::Urgent => "urgent",
            Urgency::Routine => "routine",
        }
    }

    pub fn parse(s: &str) -> Option<Urgency> {
        Urgency::ALL.into_iter().find(|u| u.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Available,
    Busy,
    Away,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Available => "available",
            Availability::Busy => "busy",
            Availability::Away => "away",
        }
    }
}

/// What happened to the patient after the consult.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Treated in the MIU: a journey to A&E avoided.
    ManagedLocally,
    TransferToEd,
    ReferredElsewhere,
    Ambulance,
    TechnicalFailure,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::ManagedLocally,
        Outcome::TransferToEd,
        Outcome::ReferredElsewhere,
        Outcome::Ambulance,
        Outcome::TechnicalFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ManagedLocally => "managed_locally",
            Outcome::TransferToEd => "transfer_to_ed",
            Outcome::ReferredElsewhere => "referred_elsewhere",
            Outcome::Ambulance => "ambulance",
            Outcome::TechnicalFailure => "technical_failure",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    HungUpByStation,
    HungUpByClinician,
    /// The station's connection was gone for longer than the grace period.
    StationDisconnected,
    /// The clinician's connection was gone for longer than the grace period.
    ClinicianDisconnected,
}

impl EndReason {
    pub const ALL: [EndReason; 4] = [
        EndReason::HungUpByStation,
        EndReason::HungUpByClinician,
        EndReason::StationDisconnected,
        EndReason::ClinicianDisconnected,
    ];

    pub fn parse(s: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::HungUpByStation => "hung_up_by_station",
            EndReason::HungUpByClinician => "hung_up_by_clinician",
            EndReason::StationDisconnected => "station_disconnected",
            EndReason::ClinicianDisconnected => "clinician_disconnected",
        }
    }
}

/// Where a station's request stands, as the station sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// In the queue, ringing every available clinician.
    Waiting,
    /// A clinician answered; a `call_start` follows.
    Accepted,
    /// The call is over; the clinician has not recorded an outcome yet.
    Ended,
    /// The clinician recorded the outcome (carried in `outcome`).
    Completed,
    /// The station withdrew the request before anyone answered.
    Cancelled,
    /// Nobody answered before the station's connection was lost for longer
    /// than the grace period.
    Abandoned,
}

/// One entry of an ICE server list, in the browser's `RTCIceServer` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Who is connected, as established by the server's authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Alerted when a request is escalated, even when busy (for example
    /// the A&E nurse in charge).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub escalation_duty: bool,
    /// A monitoring probe's account, not a person: never counted as an
    /// available clinician, only rung for test calls directed at it, and
    /// (as a station) only allowed to place test calls.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub monitoring: bool,
}

/// How far a request nobody has answered has been escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationLevel {
    /// Every available clinician was alerted again; the nurse was told.
    Realerted,
    /// Accounts with an escalation duty were alerted even if busy; the
    /// nurse is shown the fallback phone number.
    Escalated,
}

/// A client's summary of how the call is going, from `getStats`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct QualitySample {
    /// Round-trip time on the selected candidate pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    /// Share of packets lost, received side, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_loss_pct: Option<f64>,
    /// Received bitrate, video and audio together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<f64>,
    /// Received video frames per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// True when the call has dropped to audio only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audio_only: bool,
    /// True when the media path goes through a TURN relay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relayed: bool,
}

// ---------------------------------------------------------------------------
// Client to server
// ---------------------------------------------------------------------------

/// A message from a browser (or probe) to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Station: ask for a live consult.
    RequestConsult {
        urgency: Urgency,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient_ref: Option<String>,
        /// A test call (monitoring probe, or a nurse checking the kit):
        /// logged as such and left out of managers' figures.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        test: bool,
        /// Test calls only: ring just this clinician (by username) and hide
        /// the request from everyone else, so an automated probe never
        /// disturbs a real clinician.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        direct_to: Option<String>,
    },
    /// Station: withdraw a request nobody has answered yet.
    CancelRequest { request_id: RequestId },
    /// Clinician: whether to be rung.
    SetAvailability { status: Availability },
    /// Clinician: answer a request.
    Accept { request_id: RequestId },
    /// Clinician: record what happened to the patient.
    RecordOutcome {
        call_id: CallId,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Either party: an SDP description or ICE candidate for the other party.
    Signal { call_id: CallId, data: SignalData },
    /// Either party: media is flowing on this side.
    CallConnected { call_id: CallId },
    /// Either party: end the call.
    HangUp { call_id: CallId },
    /// Either party: how the call is going (every half minute or so, and
    /// at the end). Kept with the consult for managers.
    CallQuality {
        call_id: CallId,
        sample: QualitySample,
    },
    /// Keep-alive and clock check; answered with `pong`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
}

impl ClientMessage {
    /// The `type` string, for logs and error replies.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::RequestConsult { .. } => "request_consult",
            ClientMessage::CancelRequest { .. } => "cancel_request",
            ClientMessage::SetAvailability { .. } => "set_availability",
            ClientMessage::Accept { .. } => "accept",
            ClientMessage::RecordOutcome { .. } => "record_outcome",
            ClientMessage::Signal { .. } => "signal",
            ClientMessage::CallConnected { .. } => "call_connected",
            ClientMessage::HangUp { .. } => "hang_up",
            ClientMessage::CallQuality { .. } => "call_quality",
            ClientMessage::Ping { .. } => "ping",
        }
    }
}

const CLIENT_TYPES: &[&str] = &[
    "request_consult",
    "cancel_request",
    "set_availability",
    "accept",
    "record_outcome",
    "signal",
    "call_connected",
    "hang_up",
    "call_quality",
    "ping",
];

/// Why a frame was refused. `code` is stable and machine-readable; the
/// message says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// The `type` of the message refused, when it was read far enough to
    /// know it: sent back as the error's `in_reply_to`.
    pub regarding: Option<&'static str>,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
            regarding: None,
        }
    }

    /// The same refusal, marked as the answer to a message of type `kind`.
    pub fn regarding(mut self, kind: &'static str) -> Self {
        self.regarding = Some(kind);
        self
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Every refusal the server can send, as the `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    FrameTooLarge,
    /// A binary frame; the protocol is JSON text.
    BinaryFrame,
    /// Not valid JSON, or not a JSON object.
    MalformedJson,
    /// No `type`, or a `type` this server does not know.
    UnknownType,
    /// A known type with missing, extra or mistyped fields.
    InvalidMessage,
    /// A field is present and well-typed but its value is not allowed.
    InvalidField,
    /// This role may not send this message.
    ForbiddenRole,
    /// No such request, or it is no longer open.
    UnknownRequest,
    /// No such call, or it has ended.
    UnknownCall,
    /// The sender is not a party to that call.
    NotInCall,
    /// Another clinician answered first.
    AlreadyTaken,
    /// The station already has an open request or call.
    RequestOpen,
    /// The clinician is already in a call.
    InCall,
    /// The clinician must record the outcome of their last call first.
    OutcomeRequired,
    /// `signal.data` is larger than [`MAX_SIGNAL_BYTES`].
    SignalTooLarge,
    /// Too many messages in too short a time.
    RateLimited,
    /// This connection was replaced by a newer one for the same account.
    Replaced,
    /// The server is shutting down or failed internally.
    Unavailable,
    /// The session behind this connection has ended (signed out, expired,
    /// account disabled or password changed); the socket closes with 4001.
    SignedOut,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BinaryFrame => "binary_frame",
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::ForbiddenRole => "forbidden_role",
            ErrorCode::UnknownRequest => "unknown_request",
            ErrorCode::UnknownCall => "unknown_call",
            ErrorCode::NotInCall => "not_in_call",
            ErrorCode::AlreadyTaken => "already_taken",
            ErrorCode::RequestOpen => "request_open",
            ErrorCode::InCall => "in_call",
            ErrorCode::OutcomeRequired => "outcome_required",
            ErrorCode::SignalTooLarge => "signal_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Replaced => "replaced",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::SignedOut => "signed_out",
        }
    }
}

/// Decodes and validates one text frame. Total: every input gives either a
/// message whose fields are within limits or an error; it never panics.
pub fn decode(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {} bytes is over the {MAX_FRAME_BYTES} byte limit; send smaller messages",
                text.len()
            ),
        ));
    }
    // The message relayed most, and the largest: read straight from the
    // text, its data kept as written. Anything odd about it takes the
    // general path below, which says what is wrong.
    if let Ok(frame) = serde_json::from_str::<SignalFrame>(text) {
        if frame.kind == "signal" {
            return signal_message(frame).map_err(|e| e.regarding("signal"));
        }
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(
            ErrorCode::MalformedJson,
            format!("frame is not valid JSON ({e}); send one JSON object per text frame"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(ProtocolError::new(
            ErrorCode::MalformedJson,
            "frame is JSON but not an object; send {\"type\": ..., ...}",
        ));
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "\"type\" must be a string such as \"request_consult\"",
            ))
        }
        None => {
            return Err(ProtocolError::new(
                ErrorCode::UnknownType,
                "message has no \"type\" field",
            ))
        }
    };
    let Some(kind) = CLIENT_TYPES.iter().copied().find(|known| *known == kind) else {
        let shown: String = kind.chars().take(40).collect();
        return Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown message type {shown:?}; see PROTOCOL.md for the list"),
        ));
    };
    // From here on the type is known, so every refusal names it.
    if kind == "signal" {
        let frame: SignalFrame = serde_json::from_value(value).map_err(|e| {
            ProtocolError::new(
                ErrorCode::InvalidMessage,
                format!("signal message is not well formed: {e}"),
            )
            .regarding(kind)
        })?;
        return signal_message(frame).map_err(|e| e.regarding(kind));
    }
    let message: ClientMessage = serde_json::from_value(value).map_err(|e| {
        ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("{kind} message is not well formed: {e}"),
        )
        .regarding(kind)
    })?;
    validate(message).map_err(|e| e.regarding(kind))
}

/// A `signal` as received. Read apart from [`ClientMessage`]: serde cannot
/// keep raw JSON inside an internally tagged enum.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalFrame {
    #[serde(rename = "type")]
    kind: String,
    call_id: CallId,
    data: SignalData,
}

/// The data is relayed exactly as received, so its length as received is
/// what the limit is checked against.
fn signal_message(frame: SignalFrame) -> Result<ClientMessage, ProtocolError> {
    if frame.data.get().len() > MAX_SIGNAL_BYTES {
        return Err(ProtocolError::new(
            ErrorCode::SignalTooLarge,
            format!(
                "signal data is over the {MAX_SIGNAL_BYTES} byte limit; send a smaller description or candidate"
            ),
        ));
    }
    Ok(ClientMessage::Signal {
        call_id: frame.call_id,
        data: frame.data,
    })
}

/// The rules each message's fields must keep (a `signal`'s are in
/// [`signal_message`]).
fn validate(message: ClientMessage) -> Result<ClientMessage, ProtocolError> {
    match message {
        ClientMessage::RequestConsult {
            urgency,
            reason,
            patient_ref,
            test,
            direct_to,
        } => {
            if direct_to.is_some() && !test {
                return Err(invalid(
                    "direct_to",
                    "only test calls may be directed to one clinician",
                ));
            }
            let reason = reason.trim().to_owned();
            if reason.is_empty() {
                return Err(invalid("reason", "give a short reason for the consult"));
            }
            if reason.chars().count() > MAX_REASON_CHARS {
                return Err(invalid(
                    "reason",
                    &format!("keep the reason to {MAX_REASON_CHARS} characters"),
                ));
            }
            if reason.chars().any(char::is_control) {
                return Err(invalid(
                    "reason",
                    "the reason may not hold control characters",
                ));
            }
            let patient_ref = match patient_ref.map(|r| r.trim().to_owned()) {
                None => None,
                Some(r) if r.is_empty() => None,
                Some(r) => Some(validate_patient_ref(r)?),
            };
            Ok(ClientMessage::RequestConsult {
                urgency,
                reason,
                patient_ref,
                test,
                direct_to,
            })
        }
        ClientMessage::RecordOutcome {
            call_id,
            outcome,
            note,
        } => {
            let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            if let Some(n) = &note {
                if n.chars().count() > MAX_NOTE_CHARS {
                    return Err(invalid(
                        "note",
                        &format!("keep the note to {MAX_NOTE_CHARS} characters"),
                    ));
                }
            }
            Ok(ClientMessage::RecordOutcome {
                call_id,
                outcome,
                note,
            })
        }
        ClientMessage::Signal { call_id, data } => signal_message(SignalFrame {
            kind: String::new(),
            call_id,
            data,
        }),
        ClientMessage::CallQuality { call_id, sample } => {
            let fields = [
                ("rtt_ms", sample.rtt_ms, 600_000.0),
                ("packet_loss_pct", sample.packet_loss_pct, 100.0),
                ("bitrate_kbps", sample.bitrate_kbps, 1_000_000.0),
                ("fps", sample.fps, 1_000.0),
            ];
            for (name, value, max) in fields {
                if let Some(v) = value {
                    if !v.is_finite() || !(0.0..=max).contains(&v) {
                        return Err(invalid(name, &format!("must be a number from 0 to {max}")));
                    }
                }
            }
            Ok(ClientMessage::CallQuality { call_id, sample })
        }
        other => Ok(other),
    }
}

/// A local reference is for finding the attendance in the MIU's own system.
/// It must not be a name: we require a digit and allow only letters, digits,
/// spaces, `-` and `/`, at most [`MAX_PATIENT_REF_CHARS`] characters.
pub fn validate_patient_ref(r: String) -> Result<String, ProtocolError> {
    let ok_chars = r
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/' || c == ' ');
    if r.chars().count() > MAX_PATIENT_REF_CHARS
        || !ok_chars
        || !r.chars().any(|c| c.is_ascii_digit())
    {
        return Err(invalid(
            "patient_ref",
            &format!(
                "a local reference is up to {MAX_PATIENT_REF_CHARS} letters, digits, '-' or '/', \
                 with at least one digit (an attendance number, never the patient's name)"
            ),
        ));
    }
    Ok(r)
}

fn invalid(field: &str, what: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidField, format!("{field}: {what}"))
}

// ---------------------------------------------------------------------------
// Server to client
// ---------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        decode(text).unwrap_err().code
    }

    #[test]
    fn decodes_every_client_message() {
        let cases = [
            r#"{"type":"request_consult","urgency":"urgent","reason":"Head injury"}"#,
            r#"{"type":"request_consult","urgency":"routine","reason":"Wrist","patient_ref":"MIU-2026/0412"}"#,
            r#"{"type":"request_consult","urgency":"routine","reason":"Probe","test":true,"direct_to":"probe-doc"}"#,
            r#"{"type":"cancel_request","request_id":3}"#,
            r#"{"type":"set_availability","status":"away"}"#,
            r#"{"type":"accept","request_id":3}"#,
            r#"{"type":"record_outcome","call_id":1,"outcome":"managed_locally","note":"Steri-strips"}"#,
            r#"{"type":"signal","call_id":1,"data":{"candidate":"x"}}"#,
            r#"{"type":"call_connected","call_id":1}"#,
            r#"{"type":"hang_up","call_id":1}"#,
            r#"{"type":"call_quality","call_id":1,"sample":{"rtt_ms":23.5,"packet_loss_pct":0.4,"fps":29.9,"relayed":true}}"#,
            r#"{"type":"ping","nonce":7}"#,
        ];
        for case in cases {
            let msg = decode(case).unwrap_or_else(|e| panic!("{case}: {e}"));
            // Round trip through our own encoder.
            let again = serde_json::to_string(&msg).unwrap();
            assert_eq!(decode(&again).unwrap(), msg);
        }
    }

    #[test]
    fn a_refusal_names_the_message_once_its_type_is_known() {
        let regarding = |text: &str| decode(text).unwrap_err().regarding;
        assert_eq!(regarding("not json"), None);
        assert_eq!(regarding(r#"{"type":"launch"}"#), None);
        assert_eq!(regarding(r#"{"type":"accept"}"#), Some("accept"));
        assert_eq!(
            regarding(r#"{"type":"request_consult","urgency":"urgent","reason":"  "}"#),
            Some("request_consult")
        );
        let err = decode(r#"{"type":"accept"}"#).unwrap_err();
        let sent = ServerMessage::error(err, None).to_json();
        assert!(sent.contains(r#""in_reply_to":"accept""#), "{sent}");
    }

    #[test]
    fn refuses_bad_frames_with_clear_codes() {
        assert_eq!(code("not json"), ErrorCode::MalformedJson);
        assert_eq!(code("[1,2]"), ErrorCode::MalformedJson);
        assert_eq!(code(r#"{"urgency":"urgent"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"launch_missiles"}"#),
            ErrorCode::UnknownType
        );
        assert_eq!(code(r#"{"type":"accept"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"accept","request_id":"x"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"accept","request_id":-1}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"accept","request_id":1,"extra":true}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"request_consult","urgency":"whenever","reason":"x"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"request_consult","urgency":"urgent","reason":"   "}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"request_consult","urgency":"urgent","reason":"x","direct_to":"dr"}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"call_quality","call_id":1,"sample":{"packet_loss_pct":140}}"#),
            ErrorCode::InvalidField
        );
        assert_eq!(
            code(r#"{"type":"call_quality","call_id":1,"sample":{"jitter":1}}"#),
            ErrorCode::InvalidMessage
        );
        let long = "x".repeat(MAX_FRAME_BYTES + 1);
        assert_eq!(code(&long), ErrorCode::FrameTooLarge);
        let big_signal = format!(
            r#"{{"type":"signal","call_id":1,"data":"{}"}}"#,
            "a".repeat(MAX_SIGNAL_BYTES + 10)
        );
        assert_eq!(code(&big_signal), ErrorCode::SignalTooLarge);
        // Relayed as received: numbers are not rewritten (`1e15` stays
        // `1e15`, never 1000000000000000.0), so the frame's own bytes bound
        // what goes out.
        let numbers = vec!["1e15"; 3_000].join(",");
        let growing = format!(r#"{{"type":"signal","call_id":1,"data":[{numbers}]}}"#);
        assert!(growing.len() < MAX_SIGNAL_BYTES);
        match decode(&growing) {
            Ok(ClientMessage::Signal { data, .. }) => {
                assert_eq!(data.get(), format!("[{numbers}]"));
                let out = ServerMessage::Signal {
                    call_id: CallId(1),
                    data,
                }
                .to_json();
                assert_eq!(out.len(), growing.len());
            }
            other => panic!("{other:?}"),
        }
        // The general path reads a signal too (here: keys out of order and
        // spaces, which the quick path also takes; an unknown field, which
        // only the general path can name).
        let spaced = r#"{ "data" : {"sdp": "v=0"}, "call_id": 7, "type": "signal" }"#;
        match decode(spaced) {
            Ok(ClientMessage::Signal { call_id, data }) => {
                assert_eq!(call_id, CallId(7));
                assert_eq!(data.get(), r#"{"sdp": "v=0"}"#);
            }
            other => panic!("{other:?}"),
        }
        let extra = r#"{"type":"signal","call_id":1,"data":{},"to":"someone"}"#;
        assert_eq!(code(extra), ErrorCode::InvalidMessage);
        let no_data = r#"{"type":"signal","call_id":1}"#;
        assert_eq!(code(no_data), ErrorCode::InvalidMessage);
        let fits = r#"{"type":"signal","call_id":1,"data":{"candidate":{"candidate":"a"}}}"#;
        assert!(decode(fits).is_ok());
    }

    #[test]
    fn patient_ref_cannot_be_a_name() {
        let msg = |r: &str| {
            format!(
                r#"{{"type":"request_consult","urgency":"urgent","reason":"x","patient_ref":"{r}"}}"#
            )
        };
        assert_eq!(code(&msg("John Smith")), ErrorCode::InvalidField);
        assert_eq!(code(&msg("Smith, J")), ErrorCode::InvalidField);
        assert_eq!(
            code(&msg("A123456789012345678901234")),
            ErrorCode::InvalidField
        );
        assert!(decode(&msg("MIU-0412")).is_ok());
        // An empty reference is the same as none.
        assert_eq!(
            decode(&msg("  ")).unwrap(),
            ClientMessage::RequestConsult {
                urgency: Urgency::Urgent,
                reason: "x".into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            }
        );
    }

    #[test]
    fn server_messages_have_a_type_tag() {
        let msg = ServerMessage::Error {
            code: ErrorCode::NotInCall,
            message: "m".into(),
            in_reply_to: Some("signal".into()),
        };
        let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "not_in_call");
    }
}
