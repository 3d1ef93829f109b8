//! Client to server: every message a browser or the probe sends, and
//! `decode`, which reads and checks one frame (total: it never panics).

use super::*;

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
