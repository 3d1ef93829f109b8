//! What the switchboard asks the server to write to the session log.
//!
//! Every state change of a consult is one [`Event`]. The server writes the
//! events of one input to the database, in order and in one transaction,
//! before it delivers any message produced by that input: nothing is
//! acknowledged to a user before it is durable.

use crate::protocol::{
    Availability, CallId, EndReason, EscalationLevel, Millis, Outcome, QualitySample, RequestId,
    Role, Urgency, UserId,
};
use serde::{Deserialize, Serialize};

/// An account as it appears in the log: id and the name shown at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub user_id: UserId,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}

/// Which side of a call did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Station,
    Clinician,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Station => "station",
            Side::Clinician => "clinician",
        }
    }
}

/// Why clinicians were rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingTrigger {
    /// The request has just been made.
    NewRequest,
    /// A clinician became available while the request was waiting.
    ClinicianAvailable,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsultEvent {
    Requested {
        station: Party,
        urgency: Urgency,
        reason: String,
        patient_ref: Option<String>,
        #[serde(default)]
        test_call: bool,
    },
    Rung {
        clinicians: Vec<UserId>,
        trigger: RingTrigger,
    },
    /// Nobody answered within the escalation policy's time for this level.
    Escalated {
        level: EscalationLevel,
        /// Who was alerted at this step.
        notified: Vec<UserId>,
    },
    Cancelled,
    /// Nobody answered before the station's connection was lost for good.
    Abandoned,
    Accepted {
        call_id: CallId,
        clinician: Party,
    },
    /// One side reports media flowing; `both` once both sides have.
    MediaConnected {
        call_id: CallId,
        side: Side,
        both: bool,
    },
    CallEnded {
        call_id: CallId,
        reason: EndReason,
    },
    OutcomeRecorded {
        call_id: CallId,
        outcome: Outcome,
        note: Option<String>,
        by: UserId,
    },
    QualityReported {
        call_id: CallId,
        side: Side,
        sample: QualitySample,
    },
}

impl ConsultEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            ConsultEvent::Requested { .. } => "requested",
            ConsultEvent::Rung { .. } => "rung",
            ConsultEvent::Escalated { .. } => "escalated",
            ConsultEvent::Cancelled => "cancelled",
            ConsultEvent::Abandoned => "abandoned",
            ConsultEvent::Accepted { .. } => "accepted",
            ConsultEvent::MediaConnected { .. } => "media_connected",
            ConsultEvent::CallEnded { .. } => "call_ended",
            ConsultEvent::OutcomeRecorded { .. } => "outcome_recorded",
            ConsultEvent::QualityReported { .. } => "quality_reported",
        }
    }
}

/// A clinician's presence as logged: what they chose, or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Available,
    Busy,
    Away,
    Offline,
}

impl From<Availability> for PresenceStatus {
    fn from(a: Availability) -> Self {
        match a {
            Availability::Available => PresenceStatus::Available,
            Availability::Busy => PresenceStatus::Busy,
            Availability::Away => PresenceStatus::Away,
        }
    }
}

impl PresenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Available => "available",
            PresenceStatus::Busy => "busy",
            PresenceStatus::Away => "away",
            PresenceStatus::Offline => "offline",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "log", rename_all = "snake_case")]
pub enum Event {
    Consult {
        request_id: RequestId,
        at: Millis,
        #[serde(flatten)]
        event: ConsultEvent,
    },
    Presence {
        user_id: UserId,
        role: Role,
        at: Millis,
        status: PresenceStatus,
    },
}
