//! Consult requests: a station asks (checked, logged, queued, rung), cancels,
//! or is abandoned when its connection does not come back.

use super::*;

impl Switchboard {
    pub(super) fn request_consult(
        &mut self,
        station: UserId,
        new: NewRequest,
    ) -> Result<(), ProtocolError> {
        let NewRequest {
            urgency,
            reason,
            patient_ref,
            test,
            direct_to,
        } = new;
        if self.accounts[&station].identity.monitoring && !test {
            return Err(ProtocolError::new(
                ErrorCode::ForbiddenRole,
                "a monitoring account may only place test calls (add \"test\": true)",
            ));
        }
        if !self.accounts[&station].identity.monitoring && (test || direct_to.is_some()) {
            // A test call is left out of managers' figures and a directed
            // one rings a single person: a real request must never be
            // either, so only the test line may be called this way.
            let to_line = test
                && direct_to.is_some()
                && direct_to.as_deref() == self.config.test_line.as_deref();
            if !to_line {
                return Err(ProtocolError::new(
                    ErrorCode::ForbiddenRole,
                    match &self.config.test_line {
                        Some(line) => format!(
                            "a station's test call goes to the test line only (\"test\": true, \"direct_to\": {line:?}); \
                             a request for a patient has neither field"
                        ),
                        None => "this server has no test line: send the request without \"test\" or \"direct_to\"".to_owned(),
                    },
                ));
            }
        }
        let account = &self.accounts[&station];
        if let Some(open) = account.open {
            let what = match open {
                Open::Waiting(id) => format!("request {id} is still waiting"),
                Open::InCall(id) => format!("call {id} is in progress"),
            };
            return Err(ProtocolError::new(
                ErrorCode::RequestOpen,
                format!(
                    "this station already has an open consult ({what}); cancel or finish it first"
                ),
            ));
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let request = Request {
            id,
            station,
            urgency,
            reason: reason.clone(),
            patient_ref: patient_ref.clone(),
            requested_at: self.now,
            test,
            direct_to,
            escalation: None,
            alerted: None,
            duty_alerted: None,
            last_told: None,
        };
        let party = account.party();
        self.record(
            id,
            ConsultEvent::Requested {
                station: party,
                urgency,
                reason,
                patient_ref,
                test_call: test,
            },
        );
        self.enqueue(&request);
        if let Some(at) = self.next_escalation(&request) {
            self.escalation_due.insert((at, id));
        }
        let key = request.queue_key();
        self.waiting.insert(id, request);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = Some(Open::Waiting(id));
        }
        // The station's acknowledgement: its request is in, with its place
        // in the queue (a later change in the same turn is told by the
        // queue's flush).
        let position = u32::try_from(self.queue.range(..key).count() + 1).unwrap_or(u32::MAX);
        self.tell_station(id, position, self.clinicians_available());
        let ringable: Vec<UserId> = match self.waiting.get(&id) {
            // A directed test call can ring only the account it names.
            Some(r) => match &r.direct_to {
                Some(name) => self
                    .usernames
                    .get(name)
                    .into_iter()
                    .flatten()
                    .copied()
                    .collect(),
                None => self.clinicians.iter().copied().collect::<Vec<_>>(),
            }
            .into_iter()
            .filter(|u| self.clinicians.contains(u))
            .filter_map(|u| self.accounts.get(&u))
            .filter(|a| a.rings_for(r))
            .map(|a| a.identity.user_id)
            .collect(),
            None => Vec::new(),
        };
        self.ring(id, &ringable, RingTrigger::NewRequest);
        self.queue_dirty = true;
        Ok(())
    }

    pub(super) fn cancel_request(
        &mut self,
        station: UserId,
        request_id: RequestId,
    ) -> Result<(), ProtocolError> {
        let mine = self.accounts[&station].open == Some(Open::Waiting(request_id));
        if !mine {
            return Err(ProtocolError::new(
                ErrorCode::UnknownRequest,
                format!("request {request_id} is not waiting at this station (already answered, cancelled or never made)"),
            ));
        }
        self.close_request(request_id, ConsultEvent::Cancelled, RequestState::Cancelled);
        Ok(())
    }

    pub(super) fn abandon(&mut self, request_id: RequestId) {
        self.close_request(request_id, ConsultEvent::Abandoned, RequestState::Abandoned);
    }

    /// Takes a waiting request out of the queue without a call.
    pub(super) fn close_request(
        &mut self,
        request_id: RequestId,
        event: ConsultEvent,
        state: RequestState,
    ) {
        let Some(request) = self.waiting.remove(&request_id) else {
            return;
        };
        self.dequeue(&request);
        self.unschedule_escalation(&request);
        self.record(request_id, event);
        if let Some(a) = self.accounts.get_mut(&request.station) {
            a.open = None;
        }
        let msg = ServerMessage::RequestUpdate {
            request_id,
            state,
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: request.requested_at,
            waited_ms: self.now - request.requested_at,
            outcome: None,
            clinician: None,
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        self.send_to_user(request.station, msg);
        self.queue_dirty = true;
    }
}
