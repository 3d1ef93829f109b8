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

mod client;
mod server;
#[cfg(test)]
mod tests;

pub use client::*;
pub use server::*;
