//! Restore: the state that was open when the server stopped, rebuilt from
//! the log before any connection is accepted.

use super::*;

/// A waiting request (or the request behind a call) recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredRequest {
    pub id: RequestId,
    pub station: UserId,
    pub urgency: Urgency,
    pub reason: String,
    pub patient_ref: Option<String>,
    pub requested_at: Millis,
    pub test: bool,
    pub escalation: Option<EscalationLevel>,
}

/// A call in progress, recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredCall {
    pub id: CallId,
    pub request: RestoredRequest,
    pub clinician: UserId,
    pub accepted_at: Millis,
    pub station_media: bool,
    pub clinician_media: bool,
    pub outcome: Option<Outcome>,
}

/// A call that ended with its outcome still owed, recovered from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredOwed {
    pub call_id: CallId,
    pub request_id: RequestId,
    pub station: UserId,
    pub clinician: UserId,
    pub reason: EndReason,
    pub requested_at: Millis,
    pub accepted_at: Millis,
}

/// What was open when the server stopped, read back from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restore {
    /// Every account the items below refer to.
    pub accounts: Vec<Identity>,
    pub waiting: Vec<RestoredRequest>,
    pub calls: Vec<RestoredCall>,
    pub owed: Vec<RestoredOwed>,
}

impl Switchboard {
    /// Rebuilds the state that was open when the server stopped (after a
    /// crash or restart), before any connection is accepted. Every restored
    /// account starts disconnected with its grace period running from now,
    /// so clients that reconnect in time carry on where they were.
    ///
    /// Items that cannot be restored are ended in the log, never dropped:
    /// waiting test calls (a probe will try again; its direction to one
    /// clinician is not kept) and anything inconsistent with the rest. The
    /// returned lines say what was ended and why, for the server's log.
    pub fn restore(&mut self, restore: Restore) -> Vec<String> {
        let mut notes = Vec::new();
        let now = self.now;
        let grace = self.config.disconnect_grace_ms;
        for identity in restore.accounts {
            let user_id = identity.user_id;
            if self.accounts.contains_key(&user_id) {
                continue;
            }
            self.index(&identity);
            self.accounts.insert(
                user_id,
                Account {
                    identity,
                    conn: None,
                    lost_at: Some(now),
                    open: None,
                    availability: Availability::Available,
                    engaged: None,
                    queue_told: None,
                },
            );
            self.deadlines.insert((now + grace, user_id));
        }
        let is = |sb: &Self, user: UserId, role: Role| {
            sb.accounts
                .get(&user)
                .is_some_and(|a| a.identity.role == role)
        };
        let mut waiting = restore.waiting;
        waiting.sort_by_key(|r| (r.requested_at, r.id));
        for r in waiting {
            self.next_request = self.next_request.max(r.id.0 + 1);
            let station_free = is(self, r.station, Role::Station)
                && self
                    .accounts
                    .get(&r.station)
                    .is_some_and(|a| a.open.is_none());
            if r.test || !station_free {
                notes.push(if r.test {
                    format!(
                        "request {} was a waiting test call; ended as abandoned",
                        r.id
                    )
                } else {
                    format!(
                        "request {} has no free station to belong to; ended as abandoned",
                        r.id
                    )
                });
                self.record(r.id, ConsultEvent::Abandoned);
                continue;
            }
            let request = Request {
                id: r.id,
                station: r.station,
                urgency: r.urgency,
                reason: r.reason,
                patient_ref: r.patient_ref,
                requested_at: r.requested_at,
                test: false,
                direct_to: None,
                escalation: r.escalation,
                // Not in the log's summary: unknown until the next step.
                alerted: None,
                duty_alerted: None,
                last_told: None,
            };
            self.enqueue(&request);
            if let Some(at) = self.next_escalation(&request) {
                self.escalation_due.insert((at, request.id));
            }
            if let Some(a) = self.accounts.get_mut(&r.station) {
                a.open = Some(Open::Waiting(r.id));
            }
            self.waiting.insert(r.id, request);
        }
        for c in restore.calls {
            self.next_request = self.next_request.max(c.request.id.0 + 1);
            self.next_call = self.next_call.max(c.id.0 + 1);
            let ok = is(self, c.request.station, Role::Station)
                && is(self, c.clinician, Role::Clinician)
                && self
                    .accounts
                    .get(&c.request.station)
                    .is_some_and(|a| a.open.is_none())
                && self
                    .accounts
                    .get(&c.clinician)
                    .is_some_and(|a| a.engaged.is_none());
            if !ok {
                notes.push(format!(
                    "call {} conflicts with another open call of its station or clinician; ended",
                    c.id
                ));
                let reason = EndReason::ClinicianDisconnected;
                self.record(
                    c.request.id,
                    ConsultEvent::CallEnded {
                        call_id: c.id,
                        reason,
                    },
                );
                continue;
            }
            let request = Request {
                id: c.request.id,
                station: c.request.station,
                urgency: c.request.urgency,
                reason: c.request.reason,
                patient_ref: c.request.patient_ref,
                requested_at: c.request.requested_at,
                test: c.request.test,
                direct_to: None,
                escalation: c.request.escalation,
                alerted: None,
                duty_alerted: None,
                last_told: None,
            };
            if let Some(a) = self.accounts.get_mut(&c.request.station) {
                a.open = Some(Open::InCall(c.id));
            }
            if let Some(a) = self.accounts.get_mut(&c.clinician) {
                a.engaged = Some(Engagement::InCall { call_id: c.id });
            }
            self.answered.insert(request.id, c.id);
            self.calls.insert(
                c.id,
                Call {
                    id: c.id,
                    request,
                    clinician: c.clinician,
                    accepted_at: c.accepted_at,
                    station_media: c.station_media,
                    clinician_media: c.clinician_media,
                    outcome: c.outcome,
                },
            );
        }
        for o in restore.owed {
            self.next_request = self.next_request.max(o.request_id.0 + 1);
            self.next_call = self.next_call.max(o.call_id.0 + 1);
            let free = is(self, o.clinician, Role::Clinician)
                && self
                    .accounts
                    .get(&o.clinician)
                    .is_some_and(|a| a.engaged.is_none());
            if !free {
                notes.push(format!(
                    "call {} owes an outcome but its clinician is engaged elsewhere; left unrecorded",
                    o.call_id
                ));
                continue;
            }
            if let Some(a) = self.accounts.get_mut(&o.clinician) {
                a.engaged = Some(Engagement::OutcomePending { call_id: o.call_id });
            }
            self.answered.insert(o.request_id, o.call_id);
            self.ended.insert(
                o.call_id,
                EndedCall {
                    request_id: o.request_id,
                    station: o.station,
                    clinician: o.clinician,
                    reason: o.reason,
                    requested_at: o.requested_at,
                    accepted_at: o.accepted_at,
                },
            );
        }
        // Restored accounts start disconnected; counted once here.
        self.available = self.count_available();
        notes
    }
}
