//! One consult's lifecycle, in one place: how each [`ConsultEvent`] changes
//! the summary of a consult (the server's `consults` row), and what of it
//! is still open work after a restart.
//!
//! The switchboard emits the events; the store applies them here and writes
//! the [`Consult`] this returns; `load_open` asks [`Consult::open`] what to
//! restore; the managers' log reads the derived times from here. A new
//! state is added in this file, not in three.

use crate::event::{ConsultEvent, Side};
use crate::protocol::{
    CallId, EndReason, EscalationLevel, Millis, Outcome, RequestId, Urgency, UserId,
};
use crate::switchboard::{RestoredCall, RestoredOwed, RestoredRequest};

/// Where a consult stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsultStatus {
    /// Requested, nobody has answered yet.
    Waiting,
    InCall,
    /// The call ended; the clinician has not recorded the outcome yet.
    Ended,
    /// The call ended and its outcome is recorded.
    Completed,
    /// The station withdrew it before anyone answered.
    Cancelled,
    /// Nobody answered before the station's connection was lost for good.
    Abandoned,
}

impl ConsultStatus {
    pub const ALL: [ConsultStatus; 6] = [
        ConsultStatus::Waiting,
        ConsultStatus::InCall,
        ConsultStatus::Ended,
        ConsultStatus::Completed,
        ConsultStatus::Cancelled,
        ConsultStatus::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsultStatus::Waiting => "waiting",
            ConsultStatus::InCall => "in_call",
            ConsultStatus::Ended => "ended",
            ConsultStatus::Completed => "completed",
            ConsultStatus::Cancelled => "cancelled",
            ConsultStatus::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<ConsultStatus> {
        ConsultStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Still open work for the switchboard: waiting, in a call, or owing
    /// its outcome.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ConsultStatus::Waiting | ConsultStatus::InCall | ConsultStatus::Ended
        )
    }
}

/// A consult as its events have left it.
#[derive(Debug, Clone, PartialEq)]
pub struct Consult {
    pub id: RequestId,
    pub station_id: UserId,
    /// The station's name and site when it asked.
    pub station_name: String,
    pub site: Option<String>,
    pub urgency: Urgency,
    pub reason: String,
    pub patient_ref: Option<String>,
    pub requested_at: Millis,
    pub test_call: bool,
    pub status: ConsultStatus,
    pub first_rung_at: Option<Millis>,
    pub rung_count: u32,
    /// When it was cancelled or abandoned.
    pub closed_at: Option<Millis>,
    pub realerted_at: Option<Millis>,
    pub escalated_at: Option<Millis>,
    pub call_id: Option<CallId>,
    pub clinician_id: Option<UserId>,
    pub clinician_name: Option<String>,
    pub accepted_at: Option<Millis>,
    pub station_media_at: Option<Millis>,
    pub clinician_media_at: Option<Millis>,
    /// Both sides reported media.
    pub connected_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<EndReason>,
    pub outcome: Option<Outcome>,
    pub outcome_note: Option<String>,
    pub outcome_at: Option<Millis>,
    /// Each side's latest `call_quality` sample, as JSON.
    pub station_quality: Option<String>,
    pub clinician_quality: Option<String>,
}

/// An event that cannot apply to the consult it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    /// The first event of a consult is not its `requested` one.
    NotRequested(RequestId, &'static str),
    RequestedTwice(RequestId),
    Encoding(RequestId, String),
}

impl std::fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LifecycleError::NotRequested(id, kind) => write!(
                f,
                "consult {id} has no `requested` event; a `{kind}` event cannot start it"
            ),
            LifecycleError::RequestedTwice(id) => write!(f, "consult {id} was requested already"),
            LifecycleError::Encoding(id, why) => {
                write!(f, "consult {id}'s quality sample cannot be encoded: {why}")
            }
        }
    }
}

impl std::error::Error for LifecycleError {}

impl Consult {
    /// A consult begins with its `requested` event.
    pub fn begin(
        id: RequestId,
        at: Millis,
        event: &ConsultEvent,
    ) -> Result<Consult, LifecycleError> {
        let ConsultEvent::Requested {
            station,
            urgency,
            reason,
            patient_ref,
            test_call,
        } = event
        else {
            return Err(LifecycleError::NotRequested(id, event.kind()));
        };
        Ok(Consult {
            id,
            station_id: station.user_id,
            station_name: station.display_name.clone(),
            site: station.site.clone(),
            urgency: *urgency,
            reason: reason.clone(),
            patient_ref: patient_ref.clone(),
            requested_at: at,
            test_call: *test_call,
            status: ConsultStatus::Waiting,
            first_rung_at: None,
            rung_count: 0,
            closed_at: None,
            realerted_at: None,
            escalated_at: None,
            call_id: None,
            clinician_id: None,
            clinician_name: None,
            accepted_at: None,
            station_media_at: None,
            clinician_media_at: None,
            connected_at: None,
            ended_at: None,
            end_reason: None,
            outcome: None,
            outcome_note: None,
            outcome_at: None,
            station_quality: None,
            clinician_quality: None,
        })
    }

    /// Applies one later event. It records what the event says; it does not
    /// second-guess the switchboard, which decided it (a first time stays
    /// the first: rung, re-alerted, escalated, media).
    pub fn apply(&mut self, at: Millis, event: &ConsultEvent) -> Result<(), LifecycleError> {
        match event {
            ConsultEvent::Requested { .. } => return Err(LifecycleError::RequestedTwice(self.id)),
            ConsultEvent::Rung { .. } => {
                self.first_rung_at.get_or_insert(at);
                self.rung_count += 1;
            }
            ConsultEvent::Escalated { level, .. } => {
                match level {
                    EscalationLevel::Realerted => self.realerted_at.get_or_insert(at),
                    EscalationLevel::Escalated => self.escalated_at.get_or_insert(at),
                };
            }
            ConsultEvent::Cancelled => {
                self.status = ConsultStatus::Cancelled;
                self.closed_at = Some(at);
            }
            ConsultEvent::Abandoned => {
                self.status = ConsultStatus::Abandoned;
                self.closed_at = Some(at);
            }
            ConsultEvent::Accepted { call_id, clinician } => {
                self.status = ConsultStatus::InCall;
                self.call_id = Some(*call_id);
                self.clinician_id = Some(clinician.user_id);
                self.clinician_name = Some(clinician.display_name.clone());
                self.accepted_at = Some(at);
            }
            ConsultEvent::MediaConnected { side, both, .. } => {
                match side {
                    Side::Station => self.station_media_at.get_or_insert(at),
                    Side::Clinician => self.clinician_media_at.get_or_insert(at),
                };
                if *both {
                    self.connected_at.get_or_insert(at);
                }
            }
            ConsultEvent::CallEnded { reason, .. } => {
                self.ended_at = Some(at);
                self.end_reason = Some(*reason);
                self.status = if self.outcome.is_none() {
                    ConsultStatus::Ended
                } else {
                    ConsultStatus::Completed
                };
            }
            ConsultEvent::OutcomeRecorded { outcome, note, .. } => {
                self.outcome = Some(*outcome);
                self.outcome_note = note.clone();
                self.outcome_at = Some(at);
                if self.ended_at.is_some() {
                    self.status = ConsultStatus::Completed;
                }
            }
            ConsultEvent::QualityReported { side, sample, .. } => {
                let json = serde_json::to_string(sample)
                    .map_err(|e| LifecycleError::Encoding(self.id, e.to_string()))?;
                match side {
                    Side::Station => self.station_quality = Some(json),
                    Side::Clinician => self.clinician_quality = Some(json),
                }
            }
        }
        Ok(())
    }

    /// Request to answer.
    pub fn wait_ms(&self) -> Option<i64> {
        self.accepted_at.map(|a| a - self.requested_at)
    }

    /// Answer to media flowing on both sides.
    pub fn connect_ms(&self) -> Option<i64> {
        self.accepted_at.zip(self.connected_at).map(|(a, c)| c - a)
    }

    /// Media connected (or the answer, if media never connected) to
    /// hang-up.
    pub fn duration_ms(&self) -> Option<i64> {
        self.ended_at
            .zip(self.connected_at.or(self.accepted_at))
            .map(|(e, s)| e - s)
    }

    /// What of it the switchboard must take up again after a restart, if
    /// anything; an error if its state contradicts itself (in a call with
    /// no call).
    pub fn open(&self) -> Result<Option<OpenConsult>, String> {
        if !self.status.is_open() {
            return Ok(None);
        }
        let request = RestoredRequest {
            id: self.id,
            station: self.station_id,
            urgency: self.urgency,
            reason: self.reason.clone(),
            patient_ref: self.patient_ref.clone(),
            requested_at: self.requested_at,
            test: self.test_call,
            escalation: if self.escalated_at.is_some() {
                Some(EscalationLevel::Escalated)
            } else {
                self.realerted_at.map(|_| EscalationLevel::Realerted)
            },
        };
        if self.status == ConsultStatus::Waiting {
            return Ok(Some(OpenConsult::Waiting(request)));
        }
        let (Some(clinician), Some(call_id), Some(accepted_at)) =
            (self.clinician_id, self.call_id, self.accepted_at)
        else {
            return Err(format!(
                "consult {} is {} but has no call",
                self.id,
                self.status.as_str()
            ));
        };
        Ok(Some(if self.status == ConsultStatus::InCall {
            OpenConsult::Call(RestoredCall {
                id: call_id,
                clinician,
                accepted_at,
                station_media: self.station_media_at.is_some(),
                clinician_media: self.clinician_media_at.is_some(),
                outcome: self.outcome,
                request,
            })
        } else {
            OpenConsult::Owed(RestoredOwed {
                call_id,
                request_id: self.id,
                station: self.station_id,
                clinician,
                reason: self.end_reason.unwrap_or(EndReason::ClinicianDisconnected),
                requested_at: self.requested_at,
                accepted_at,
            })
        }))
    }
}

/// Open work of one consult, for [`crate::Switchboard::restore`].
#[derive(Debug, Clone, PartialEq)]
pub enum OpenConsult {
    Waiting(RestoredRequest),
    Call(RestoredCall),
    Owed(RestoredOwed),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Party;
    use crate::protocol::QualitySample;

    fn party(id: i64, name: &str) -> Party {
        Party {
            user_id: UserId(id),
            display_name: name.into(),
            site: Some("Millom".into()),
        }
    }

    fn requested() -> ConsultEvent {
        ConsultEvent::Requested {
            station: party(1, "Room 1"),
            urgency: Urgency::Urgent,
            reason: "Wrist".into(),
            patient_ref: None,
            test_call: false,
        }
    }

    #[test]
    fn a_consult_lives_through_its_events() {
        let id = RequestId(7);
        let mut c = Consult::begin(id, 1_000, &requested()).unwrap();
        assert_eq!(c.status, ConsultStatus::Waiting);
        assert!(matches!(c.open(), Ok(Some(OpenConsult::Waiting(_)))));
        for at in [1_010, 5_000] {
            c.apply(
                at,
                &ConsultEvent::Rung {
                    clinicians: vec![UserId(10)],
                    trigger: crate::event::RingTrigger::NewRequest,
                },
            )
            .unwrap();
        }
        assert_eq!((c.first_rung_at, c.rung_count), (Some(1_010), 2));
        c.apply(
            61_000,
            &ConsultEvent::Escalated {
                level: EscalationLevel::Realerted,
                notified: vec![],
            },
        )
        .unwrap();
        c.apply(
            95_000,
            &ConsultEvent::Accepted {
                call_id: CallId(3),
                clinician: party(10, "Dr A"),
            },
        )
        .unwrap();
        assert_eq!(c.status, ConsultStatus::InCall);
        assert_eq!(c.wait_ms(), Some(94_000));
        match c.open() {
            Ok(Some(OpenConsult::Call(call))) => {
                assert_eq!(call.request.escalation, Some(EscalationLevel::Realerted));
                assert!(!call.station_media);
            }
            other => panic!("{other:?}"),
        }
        for (at, side, both) in [
            (95_300, Side::Station, false),
            (95_350, Side::Clinician, true),
        ] {
            c.apply(
                at,
                &ConsultEvent::MediaConnected {
                    call_id: CallId(3),
                    side,
                    both,
                },
            )
            .unwrap();
        }
        assert_eq!(c.connect_ms(), Some(350));
        c.apply(
            96_000,
            &ConsultEvent::QualityReported {
                call_id: CallId(3),
                side: Side::Station,
                sample: QualitySample {
                    rtt_ms: Some(40.0),
                    ..QualitySample::default()
                },
            },
        )
        .unwrap();
        assert_eq!(c.station_quality.as_deref(), Some("{\"rtt_ms\":40.0}"));
        c.apply(
            455_350,
            &ConsultEvent::CallEnded {
                call_id: CallId(3),
                reason: EndReason::HungUpByClinician,
            },
        )
        .unwrap();
        assert_eq!(c.status, ConsultStatus::Ended, "the outcome is owed");
        assert_eq!(c.duration_ms(), Some(360_000));
        assert!(matches!(c.open(), Ok(Some(OpenConsult::Owed(_)))));
        c.apply(
            460_000,
            &ConsultEvent::OutcomeRecorded {
                call_id: CallId(3),
                outcome: Outcome::ManagedLocally,
                note: Some("Splinted".into()),
                by: UserId(10),
            },
        )
        .unwrap();
        assert_eq!(c.status, ConsultStatus::Completed);
        assert_eq!(c.open(), Ok(None));
    }

    #[test]
    fn an_outcome_before_the_end_completes_it_at_the_end() {
        let mut c = Consult::begin(RequestId(1), 0, &requested()).unwrap();
        c.apply(
            10,
            &ConsultEvent::Accepted {
                call_id: CallId(1),
                clinician: party(10, "Dr A"),
            },
        )
        .unwrap();
        c.apply(
            20,
            &ConsultEvent::OutcomeRecorded {
                call_id: CallId(1),
                outcome: Outcome::ReferredElsewhere,
                note: None,
                by: UserId(10),
            },
        )
        .unwrap();
        assert_eq!(c.status, ConsultStatus::InCall);
        c.apply(
            30,
            &ConsultEvent::CallEnded {
                call_id: CallId(1),
                reason: EndReason::HungUpByStation,
            },
        )
        .unwrap();
        assert_eq!(c.status, ConsultStatus::Completed);
    }

    #[test]
    fn events_out_of_place_are_refused() {
        assert!(Consult::begin(RequestId(1), 0, &ConsultEvent::Cancelled).is_err());
        let mut c = Consult::begin(RequestId(1), 0, &requested()).unwrap();
        assert_eq!(
            c.apply(5, &requested()),
            Err(LifecycleError::RequestedTwice(RequestId(1)))
        );
        c.apply(9, &ConsultEvent::Cancelled).unwrap();
        assert_eq!((c.status, c.closed_at), (ConsultStatus::Cancelled, Some(9)));
        assert_eq!(c.open(), Ok(None));
        for s in ConsultStatus::ALL {
            assert_eq!(ConsultStatus::parse(s.as_str()), Some(s));
        }
    }
}
