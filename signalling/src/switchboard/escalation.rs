//! Escalation: a request nobody answers is re-alerted to every available
//! clinician, then escalated to the accounts with an escalation duty, on
//! the deadlines of its urgency's policy.

use super::*;

impl Switchboard {
    /// When this request's next escalation step is due. Test calls are
    /// never escalated: a probe must not page the nurse in charge.
    pub(super) fn next_escalation(&self, r: &Request) -> Option<Millis> {
        if r.test {
            return None;
        }
        let policy = self.config.escalation_for(r.urgency);
        match r.escalation {
            None => Some(r.requested_at + policy.realert_after_ms.max(0)),
            Some(EscalationLevel::Realerted) => {
                Some(r.requested_at + policy.escalate_after_ms.max(policy.realert_after_ms).max(0))
            }
            Some(EscalationLevel::Escalated) => None,
        }
    }

    pub(super) fn unschedule_escalation(&mut self, r: &Request) {
        if let Some(at) = self.next_escalation(r) {
            self.escalation_due.remove(&(at, r.id));
        }
    }

    pub(super) fn escalate_due(&mut self) {
        while let Some(&(at, request_id)) = self.escalation_due.first() {
            if at > self.now {
                break;
            }
            self.escalation_due.pop_first();
            let Some(r) = self.waiting.get_mut(&request_id) else {
                continue;
            };
            let level = match r.escalation {
                None => EscalationLevel::Realerted,
                Some(_) => EscalationLevel::Escalated,
            };
            r.escalation = Some(level);
            let r = r.clone();
            if let Some(next) = self.next_escalation(&r) {
                self.escalation_due.insert((next, request_id));
            }
            let entry = self.entry(&r);
            // Every ringable clinician is rung again at each step.
            let ringable: Vec<UserId> = self
                .clinicians
                .iter()
                .filter_map(|u| self.accounts.get(u))
                .filter(|a| a.rings_for(&r))
                .map(|a| a.identity.user_id)
                .collect();
            let mut notified = ringable.clone();
            let ring_to: Vec<ConnId> = ringable
                .iter()
                .filter_map(|u| self.accounts.get(u).and_then(|a| a.conn))
                .collect();
            if !ring_to.is_empty() {
                self.outputs.push_back(Output::Send {
                    to: ring_to,
                    message: ServerMessage::Ring {
                        request: entry.clone(),
                    },
                });
            }
            let mut duty_alerted = None;
            if level == EscalationLevel::Escalated {
                // Duty holders are alerted whatever their availability.
                let duty: Vec<(UserId, ConnId)> = self
                    .clinicians
                    .iter()
                    .filter_map(|u| self.accounts.get(u))
                    .filter(|a| a.identity.escalation_duty && !a.identity.monitoring)
                    .filter_map(|a| a.conn.map(|c| (a.identity.user_id, c)))
                    .collect();
                duty_alerted = Some(u32::try_from(duty.len()).unwrap_or(u32::MAX));
                for (user, _) in &duty {
                    if !notified.contains(user) {
                        notified.push(*user);
                    }
                }
                if !duty.is_empty() {
                    self.outputs.push_back(Output::Send {
                        to: duty.iter().map(|(_, c)| *c).collect(),
                        message: ServerMessage::Escalation { request: entry },
                    });
                }
            }
            if let Some(w) = self.waiting.get_mut(&request_id) {
                w.alerted = Some(u32::try_from(notified.len()).unwrap_or(u32::MAX));
                w.duty_alerted = duty_alerted;
            }
            self.record(request_id, ConsultEvent::Escalated { level, notified });
            // The queue shows the level; the station is told by flush_queue.
            self.touch_request(request_id);
            self.queue_dirty = true;
        }
    }
}
