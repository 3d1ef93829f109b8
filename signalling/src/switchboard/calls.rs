//! Calls: the accept race, the relay of signals between the two parties
//! (only they may signal into their call), media and quality reports,
//! hang-up, and the outcome a clinician owes afterwards.

use super::*;

impl Switchboard {
    pub(super) fn accept(
        &mut self,
        clinician: UserId,
        request_id: RequestId,
    ) -> Result<(), ProtocolError> {
        match self.accounts[&clinician].engaged {
            Some(Engagement::InCall { call_id }) => {
                return Err(ProtocolError::new(
                    ErrorCode::InCall,
                    format!("you are in call {call_id}; hang up before accepting another"),
                ))
            }
            Some(Engagement::OutcomePending { call_id }) => {
                return Err(ProtocolError::new(
                    ErrorCode::OutcomeRequired,
                    format!("record the outcome of call {call_id} before accepting another"),
                ))
            }
            None => {}
        }
        let hidden = self
            .waiting
            .get(&request_id)
            .is_some_and(|r| !r.visible_to(&self.accounts[&clinician]));
        let request = if hidden {
            None
        } else {
            self.waiting.remove(&request_id)
        };
        let Some(request) = request else {
            return Err(if self.answered.contains_key(&request_id) {
                ProtocolError::new(
                    ErrorCode::AlreadyTaken,
                    format!("request {request_id} was answered by another clinician"),
                )
            } else {
                ProtocolError::new(
                    ErrorCode::UnknownRequest,
                    format!(
                        "request {request_id} is not waiting (cancelled, abandoned or never made)"
                    ),
                )
            });
        };
        self.dequeue(&request);
        self.unschedule_escalation(&request);
        let call_id = CallId(self.next_call);
        self.next_call += 1;
        let party = self.accounts[&clinician].party();
        self.record(
            request_id,
            ConsultEvent::Accepted {
                call_id,
                clinician: party,
            },
        );
        let station = request.station;
        let call = Call {
            id: call_id,
            request,
            clinician,
            accepted_at: self.now,
            station_media: false,
            clinician_media: false,
            outcome: None,
        };
        self.answered.insert(request_id, call_id);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = Some(Open::InCall(call_id));
        }
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = Some(Engagement::InCall { call_id });
            shift(&mut self.available, counted, a.counts_as_available());
        }
        let clinician_name = self.accounts[&clinician].identity.display_name.clone();
        let update = ServerMessage::RequestUpdate {
            request_id,
            state: RequestState::Accepted,
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: call.request.requested_at,
            waited_ms: self.now - call.request.requested_at,
            outcome: None,
            clinician: Some(clinician_name),
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        let to_station = self.call_start(&call, Side::Station, false);
        let to_clinician = self.call_start(&call, Side::Clinician, false);
        self.calls.insert(call_id, call);
        self.send_to_user(station, update);
        self.send_to_user(station, to_station);
        self.send_to_user(clinician, to_clinician);
        self.send_presence(clinician);
        self.queue_dirty = true;
        Ok(())
    }

    /// The call this account is a party to, and which side it is on.
    pub(super) fn party_of(
        &self,
        user_id: UserId,
        call_id: CallId,
    ) -> Result<(&Call, Side), ProtocolError> {
        let Some(call) = self.calls.get(&call_id) else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownCall,
                format!("call {call_id} is not in progress"),
            ));
        };
        if call.request.station == user_id {
            Ok((call, Side::Station))
        } else if call.clinician == user_id {
            Ok((call, Side::Clinician))
        } else {
            Err(ProtocolError::new(
                ErrorCode::NotInCall,
                format!("you are not a party to call {call_id}; nothing was sent"),
            ))
        }
    }

    pub(super) fn signal(
        &mut self,
        user_id: UserId,
        call_id: CallId,
        data: crate::protocol::SignalData,
    ) -> Result<(), ProtocolError> {
        let (call, side) = self.party_of(user_id, call_id)?;
        let other = match side {
            Side::Station => call.clinician,
            Side::Clinician => call.request.station,
        };
        // If the other party is reconnecting the signal is dropped: a
        // resumed call starts a fresh negotiation.
        self.send_to_user(other, ServerMessage::Signal { call_id, data });
        Ok(())
    }

    pub(super) fn call_connected(
        &mut self,
        user_id: UserId,
        call_id: CallId,
    ) -> Result<(), ProtocolError> {
        let (_, side) = self.party_of(user_id, call_id)?;
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Ok(());
        };
        let flag = match side {
            Side::Station => &mut call.station_media,
            Side::Clinician => &mut call.clinician_media,
        };
        if *flag {
            return Ok(()); // Repeated after an ICE restart: the first counts.
        }
        *flag = true;
        let both = call.station_media && call.clinician_media;
        let request_id = call.request.id;
        self.record(
            request_id,
            ConsultEvent::MediaConnected {
                call_id,
                side,
                both,
            },
        );
        Ok(())
    }

    pub(super) fn call_quality(
        &mut self,
        user_id: UserId,
        call_id: CallId,
        sample: QualitySample,
    ) -> Result<(), ProtocolError> {
        // A last report sent at hang-up may arrive after the other side's
        // hang-up: calls that ended a moment ago still take it.
        let (request_id, side) = match self.party_of(user_id, call_id) {
            Ok((call, side)) => (call.request.id, side),
            Err(e) => match self
                .recently_ended
                .get(&call_id)
                .filter(|r| r.ended_at + RECENTLY_ENDED_MS > self.now)
            {
                Some(r) if r.station == user_id => (r.request_id, Side::Station),
                Some(r) if r.clinician == user_id => (r.request_id, Side::Clinician),
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::NotInCall,
                        format!("you were not a party to call {call_id}; nothing was recorded"),
                    ))
                }
                None => return Err(e),
            },
        };
        self.record(
            request_id,
            ConsultEvent::QualityReported {
                call_id,
                side,
                sample,
            },
        );
        Ok(())
    }

    pub(super) fn hang_up(
        &mut self,
        user_id: UserId,
        call_id: CallId,
    ) -> Result<(), ProtocolError> {
        let (_, side) = self.party_of(user_id, call_id)?;
        let reason = match side {
            Side::Station => EndReason::HungUpByStation,
            Side::Clinician => EndReason::HungUpByClinician,
        };
        self.end_call(call_id, reason);
        Ok(())
    }

    pub(super) fn end_call(&mut self, call_id: CallId, reason: EndReason) {
        let Some(call) = self.calls.remove(&call_id) else {
            return;
        };
        let request_id = call.request.id;
        let station = call.request.station;
        let clinician = call.clinician;
        self.record(request_id, ConsultEvent::CallEnded { call_id, reason });
        self.remember_ended(call_id, request_id, station, clinician);
        if let Some(a) = self.accounts.get_mut(&station) {
            a.open = None;
        }
        let outcome_required = call.outcome.is_none();
        if outcome_required {
            self.ended.insert(
                call_id,
                EndedCall {
                    request_id,
                    station,
                    clinician,
                    reason,
                    requested_at: call.request.requested_at,
                    accepted_at: call.accepted_at,
                },
            );
        } else {
            self.answered.remove(&request_id);
        }
        let was_ringable = self.accounts.get(&clinician).is_some_and(Account::ringable);
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = outcome_required.then_some(Engagement::OutcomePending { call_id });
            shift(&mut self.available, counted, a.counts_as_available());
        }
        self.send_to_user(
            station,
            ServerMessage::CallEnd {
                call_id,
                reason,
                outcome_required: false,
            },
        );
        let update = ServerMessage::RequestUpdate {
            request_id,
            state: if outcome_required {
                RequestState::Ended
            } else {
                RequestState::Completed
            },
            position: None,
            clinicians_available: self.clinicians_available(),
            requested_at: call.request.requested_at,
            waited_ms: call.accepted_at - call.request.requested_at,
            outcome: call.outcome,
            clinician: self
                .accounts
                .get(&clinician)
                .map(|a| a.identity.display_name.clone()),
            escalation: None,
            alerted: None,
            duty_alerted: None,
        };
        self.send_to_user(station, update);
        self.send_to_user(
            clinician,
            ServerMessage::CallEnd {
                call_id,
                reason,
                outcome_required,
            },
        );
        if self.accounts.contains_key(&clinician) {
            self.send_presence(clinician);
            self.after_freed(clinician, was_ringable);
        }
    }

    pub(super) fn record_outcome(
        &mut self,
        clinician: UserId,
        call_id: CallId,
        outcome: Outcome,
        note: Option<String>,
    ) -> Result<(), ProtocolError> {
        let (request_id, station, times, live) = if let Some(call) = self.calls.get(&call_id) {
            if call.clinician != clinician {
                return Err(not_your_call(call_id));
            }
            let times = (call.request.requested_at, call.accepted_at);
            (call.request.id, call.request.station, times, true)
        } else if let Some(ended) = self.ended.get(&call_id) {
            if ended.clinician != clinician {
                return Err(not_your_call(call_id));
            }
            let times = (ended.requested_at, ended.accepted_at);
            (ended.request_id, ended.station, times, false)
        } else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownCall,
                format!("call {call_id} is not awaiting an outcome"),
            ));
        };
        self.record(
            request_id,
            ConsultEvent::OutcomeRecorded {
                call_id,
                outcome,
                note,
                by: clinician,
            },
        );
        self.send_to_user(
            clinician,
            ServerMessage::OutcomeRecorded {
                call_id,
                request_id,
                outcome,
            },
        );
        if live {
            if let Some(call) = self.calls.get_mut(&call_id) {
                call.outcome = Some(outcome);
            }
            return Ok(());
        }
        self.ended.remove(&call_id);
        self.answered.remove(&request_id);
        let was_ringable = self.accounts[&clinician].ringable();
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.engaged = None;
            shift(&mut self.available, counted, a.counts_as_available());
        }
        let clinician_name = self.accounts[&clinician].identity.display_name.clone();
        // The station sees what the clinician decided.
        self.send_to_user(
            station,
            ServerMessage::RequestUpdate {
                request_id,
                state: RequestState::Completed,
                position: None,
                clinicians_available: self.clinicians_available(),
                requested_at: times.0,
                waited_ms: times.1 - times.0,
                outcome: Some(outcome),
                clinician: Some(clinician_name),
                escalation: None,
                alerted: None,
                duty_alerted: None,
            },
        );
        self.send_presence(clinician);
        self.after_freed(clinician, was_ringable);
        Ok(())
    }

    /// A clinician may have become ringable: ring them for what waits.
    pub(super) fn after_freed(&mut self, clinician: UserId, was_ringable: bool) {
        let now_ringable = self.accounts.get(&clinician).is_some_and(Account::ringable);
        if was_ringable != now_ringable {
            self.queue_dirty = true;
        }
        if !was_ringable && now_ringable {
            self.ring_waiting_for(clinician);
        }
    }

    pub(super) fn call_start(&self, call: &Call, side: Side, resumed: bool) -> ServerMessage {
        let peer_id = match side {
            Side::Station => call.clinician,
            Side::Clinician => call.request.station,
        };
        let peer = self
            .accounts
            .get(&peer_id)
            .map(Account::peer)
            .unwrap_or(Peer {
                display_name: String::new(),
                role: match side {
                    Side::Station => Role::Clinician,
                    Side::Clinician => Role::Station,
                },
                site: None,
            });
        ServerMessage::CallStart {
            call_id: call.id,
            request_id: call.request.id,
            peer,
            offerer: side == Side::Station,
            consult: ConsultSummary {
                urgency: call.request.urgency,
                reason: call.request.reason.clone(),
                patient_ref: call.request.patient_ref.clone(),
                requested_at: call.request.requested_at,
                accepted_at: call.accepted_at,
                test: call.request.test,
            },
            resumed,
        }
    }

    /// Keeps an ended call's parties for [`RECENTLY_ENDED_MS`], so that a
    /// quality report racing the hang-up is still recorded.
    pub(super) fn remember_ended(
        &mut self,
        call_id: CallId,
        request_id: RequestId,
        station: UserId,
        clinician: UserId,
    ) {
        let now = self.now;
        while let Some(&(at, old)) = self.recently_ended_order.front() {
            if at + RECENTLY_ENDED_MS > now {
                break;
            }
            self.recently_ended_order.pop_front();
            self.recently_ended.remove(&old);
        }
        self.recently_ended.insert(
            call_id,
            RecentCall {
                request_id,
                station,
                clinician,
                ended_at: now,
            },
        );
        self.recently_ended_order.push_back((now, call_id));
    }
}
