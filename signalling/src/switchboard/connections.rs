//! Connections and presence: an account's one live connection (a newer one
//! replaces the older), what it is told when it (re)connects, the grace
//! period of a lost connection, and a clinician's availability.

use super::*;

impl Switchboard {
    pub(super) fn connect(
        &mut self,
        conn: ConnId,
        identity: Identity,
        ice_servers: Vec<IceServer>,
    ) {
        if self.conns.contains_key(&conn) {
            // The server hands out fresh ids; a repeat is a server bug, but
            // it must not corrupt state: refuse the newcomer.
            self.send(
                conn,
                error(
                    ErrorCode::Unavailable,
                    "connection id reused; reconnect",
                    None,
                ),
            );
            return;
        }
        let user_id = identity.user_id;
        let role = identity.role;
        let was_ringable = self.accounts.get(&user_id).is_some_and(Account::ringable);
        if !self.accounts.contains_key(&user_id) {
            self.index(&identity);
        }
        let mut fresh = false;
        let counted = self
            .accounts
            .get(&user_id)
            .is_some_and(Account::counts_as_available);
        let account = self.accounts.entry(user_id).or_insert_with(|| {
            fresh = true;
            Account {
                identity: identity.clone(),
                conn: None,
                lost_at: None,
                open: None,
                availability: Availability::Available,
                engaged: None,
                queue_told: None,
            }
        });
        // Names and sites may have been edited since; the role may not change
        // under a live request, so keep the original role.
        account.identity.display_name = identity.display_name.clone();
        let old_name = std::mem::replace(&mut account.identity.username, identity.username.clone());
        if old_name != identity.username {
            unindex_name(&mut self.usernames, &old_name, user_id);
        }
        self.usernames
            .entry(identity.username.clone())
            .or_default()
            .insert(user_id);
        account.identity.site = identity.site.clone();
        account.identity.escalation_duty = identity.escalation_duty;
        account.identity.monitoring = identity.monitoring;
        let replaced = account.conn.replace(conn);
        // A new connection has been told nothing yet.
        account.queue_told = None;
        self.queue_special.insert(user_id);
        shift(&mut self.available, counted, account.counts_as_available());
        if let Some(at) = account.lost_at.take() {
            self.deadlines
                .remove(&(at + self.config.disconnect_grace_ms, user_id));
        }
        if let Some(old) = replaced {
            self.conns.remove(&old);
            self.outputs.push_back(Output::Close {
                conn: old,
                code: ErrorCode::Replaced,
            });
        }
        self.conns.insert(conn, user_id);

        let account = &self.accounts[&user_id];
        let role = if fresh { role } else { account.identity.role };
        self.send(
            conn,
            ServerMessage::Welcome {
                user: UserInfo {
                    id: user_id,
                    username: account.identity.username.clone(),
                    display_name: account.identity.display_name.clone(),
                    site: account.identity.site.clone(),
                },
                role,
                ice_servers,
                protocol_version: PROTOCOL_VERSION,
                server_time: self.now,
                max_frame_bytes: MAX_FRAME_BYTES,
                limits: self.config.limits.clone(),
            },
        );

        match role {
            Role::Station => self.resume_station(user_id, conn),
            Role::Clinician => {
                if fresh || replaced.is_none() {
                    let status = self.accounts[&user_id].availability;
                    self.record_presence(user_id, status.into());
                }
                self.resume_clinician(user_id, conn, was_ringable);
            }
            Role::Manager | Role::Admin => self.send_queue(user_id, conn),
        }
    }

    pub(super) fn resume_station(&mut self, user_id: UserId, conn: ConnId) {
        match self.accounts[&user_id].open {
            Some(Open::Waiting(request_id)) => {
                if let Some(r) = self.waiting.get_mut(&request_id) {
                    r.last_told = None;
                }
                // The queue shows the station as connected again.
                self.touch_request(request_id);
                self.queue_dirty = true;
            }
            Some(Open::InCall(call_id)) => {
                if let Some(call) = self.calls.get(&call_id) {
                    let clinician = call.clinician;
                    let msg = self.call_start(call, Side::Station, true);
                    self.send(conn, msg);
                    self.send_to_user(
                        clinician,
                        ServerMessage::PeerStatus {
                            call_id,
                            connected: true,
                        },
                    );
                }
            }
            None => {}
        }
    }

    pub(super) fn resume_clinician(&mut self, user_id: UserId, conn: ConnId, was_ringable: bool) {
        let account = &self.accounts[&user_id];
        let engaged = account.engaged;
        let presence = ServerMessage::Presence {
            status: account.availability,
            engaged,
        };
        self.send(conn, presence);
        match engaged {
            Some(Engagement::InCall { call_id }) => {
                if let Some(call) = self.calls.get(&call_id) {
                    let station = call.request.station;
                    let msg = self.call_start(call, Side::Clinician, true);
                    self.send(conn, msg);
                    self.send_to_user(
                        station,
                        ServerMessage::PeerStatus {
                            call_id,
                            connected: true,
                        },
                    );
                }
            }
            Some(Engagement::OutcomePending { call_id }) => {
                if let Some(ended) = self.ended.get(&call_id) {
                    let reason = ended.reason;
                    self.send(
                        conn,
                        ServerMessage::CallEnd {
                            call_id,
                            reason,
                            outcome_required: true,
                        },
                    );
                }
            }
            None => {}
        }
        if !was_ringable && self.accounts[&user_id].ringable() {
            // The count of available clinicians changed: everyone (this
            // clinician included) gets the queue when this input is done.
            self.ring_waiting_for(user_id);
            self.queue_dirty = true;
        } else {
            self.send_queue(user_id, conn);
        }
    }

    pub(super) fn disconnect(&mut self, conn: ConnId) {
        let Some(user_id) = self.conns.remove(&conn) else {
            return; // Already replaced or never connected.
        };
        let grace = self.config.disconnect_grace_ms;
        let now = self.now;
        let Some(account) = self.accounts.get_mut(&user_id) else {
            return;
        };
        if account.conn != Some(conn) {
            return;
        }
        let was_ringable = account.ringable();
        let counted = account.counts_as_available();
        account.conn = None;
        account.lost_at = Some(now);
        shift(&mut self.available, counted, false);
        self.deadlines.insert((now + grace, user_id));
        let role = account.identity.role;
        let open = account.open;
        let engaged = account.engaged;
        match role {
            Role::Station => match open {
                Some(Open::Waiting(request_id)) => {
                    self.touch_request(request_id);
                    self.queue_dirty = true;
                }
                Some(Open::InCall(call_id)) => {
                    if let Some(call) = self.calls.get(&call_id) {
                        let clinician = call.clinician;
                        self.send_to_user(
                            clinician,
                            ServerMessage::PeerStatus {
                                call_id,
                                connected: false,
                            },
                        );
                    }
                }
                None => {}
            },
            Role::Clinician => {
                self.record_presence(user_id, PresenceStatus::Offline);
                if was_ringable {
                    self.queue_dirty = true;
                }
                if let Some(Engagement::InCall { call_id }) = engaged {
                    if let Some(call) = self.calls.get(&call_id) {
                        let station = call.request.station;
                        self.send_to_user(
                            station,
                            ServerMessage::PeerStatus {
                                call_id,
                                connected: false,
                            },
                        );
                    }
                }
            }
            Role::Manager | Role::Admin => {}
        }
    }

    /// Ends what the grace period no longer covers.
    pub(super) fn expire_grace(&mut self) {
        while let Some(&(deadline, user_id)) = self.deadlines.first() {
            if deadline > self.now {
                break;
            }
            self.deadlines.pop_first();
            let Some(account) = self.accounts.get(&user_id) else {
                continue;
            };
            if account.conn.is_some() {
                continue;
            }
            match (account.open, account.engaged) {
                (Some(Open::Waiting(request_id)), _) => {
                    self.abandon(request_id);
                }
                (Some(Open::InCall(call_id)), _) => {
                    self.end_call(call_id, EndReason::StationDisconnected);
                }
                (_, Some(Engagement::InCall { call_id })) => {
                    self.end_call(call_id, EndReason::ClinicianDisconnected);
                }
                _ => {}
            }
            // Whatever is left (an outcome still owed) stays in the log as
            // "not recorded"; the account itself is forgotten.
            self.clinicians.remove(&user_id);
            self.observers.remove(&user_id);
            self.queue_special.remove(&user_id);
            if let Some(account) = self.accounts.remove(&user_id) {
                unindex_name(&mut self.usernames, &account.identity.username, user_id);
                if let Some(Engagement::OutcomePending { call_id }) = account.engaged {
                    if let Some(ended) = self.ended.remove(&call_id) {
                        self.answered.remove(&ended.request_id);
                    }
                }
            }
        }
    }

    pub(super) fn set_availability(
        &mut self,
        clinician: UserId,
        status: Availability,
    ) -> Result<(), ProtocolError> {
        let account = &self.accounts[&clinician];
        if status == Availability::Available {
            if let Some(Engagement::OutcomePending { call_id }) = account.engaged {
                return Err(ProtocolError::new(
                    ErrorCode::OutcomeRequired,
                    format!("record the outcome of call {call_id} before becoming available"),
                ));
            }
        }
        let was_ringable = account.ringable();
        let changed = account.availability != status;
        if let Some(a) = self.accounts.get_mut(&clinician) {
            let counted = a.counts_as_available();
            a.availability = status;
            shift(&mut self.available, counted, a.counts_as_available());
        }
        if changed {
            self.record_presence(clinician, status.into());
        }
        self.send_presence(clinician);
        let now_ringable = self.accounts[&clinician].ringable();
        if was_ringable != now_ringable {
            self.queue_dirty = true;
        }
        if !was_ringable && now_ringable {
            self.ring_waiting_for(clinician);
        }
        Ok(())
    }

    /// Adds a new account to the role indexes.
    pub(super) fn index(&mut self, identity: &Identity) {
        if identity.role == Role::Clinician {
            self.clinicians.insert(identity.user_id);
        }
        if identity.role != Role::Station {
            self.observers.insert(identity.user_id);
        }
        self.usernames
            .entry(identity.username.clone())
            .or_default()
            .insert(identity.user_id);
    }

    pub(super) fn send_presence(&mut self, clinician: UserId) {
        if let Some(a) = self.accounts.get(&clinician) {
            let msg = ServerMessage::Presence {
                status: a.availability,
                engaged: a.engaged,
            };
            self.send_to_user(clinician, msg);
        }
    }
}
