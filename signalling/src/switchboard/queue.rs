//! The one queue and ringing: requests kept in order (urgency, arrival,
//! id) and by whom they may ring, who is rung when, and the queue updates
//! each watcher gets only when what it shows changed.

use super::*;

impl Switchboard {
    pub(super) fn ring(
        &mut self,
        request_id: RequestId,
        clinicians: &[UserId],
        trigger: RingTrigger,
    ) {
        if clinicians.is_empty() {
            return;
        }
        let Some(request) = self.waiting.get(&request_id) else {
            return;
        };
        let entry = self.entry(request);
        let to: Vec<ConnId> = clinicians
            .iter()
            .filter_map(|u| self.accounts.get(u).and_then(|a| a.conn))
            .collect();
        self.record(
            request_id,
            ConsultEvent::Rung {
                clinicians: clinicians.to_vec(),
                trigger,
            },
        );
        self.outputs.push_back(Output::Send {
            to,
            message: ServerMessage::Ring { request: entry },
        });
    }

    pub(super) fn enqueue(&mut self, r: &Request) {
        if let Some(name) = &r.direct_to {
            self.queue_touched.insert(name.clone());
        }
        if self.queue.insert(r.queue_key()) {
            self.queued_by_urgency[urgency_index(r.urgency)] += 1;
        }
        self.queue_for
            .entry(r.direct_to.clone())
            .or_default()
            .insert(r.queue_key());
    }

    pub(super) fn dequeue(&mut self, r: &Request) {
        if let Some(name) = &r.direct_to {
            self.queue_touched.insert(name.clone());
        }
        if self.queue.remove(&r.queue_key()) {
            self.queued_by_urgency[urgency_index(r.urgency)] -= 1;
        }
        if let Some(keys) = self.queue_for.get_mut(&r.direct_to) {
            keys.remove(&r.queue_key());
            if keys.is_empty() {
                self.queue_for.remove(&r.direct_to);
            }
        }
    }

    /// Rings one clinician who has just become available for every waiting
    /// request, most urgent first.
    pub(super) fn ring_waiting_for(&mut self, clinician: UserId) {
        let Some(account) = self.accounts.get(&clinician) else {
            return;
        };
        // Requests for everyone and those directed at this clinician, most
        // urgent first: nothing else could ring them.
        let empty = BTreeSet::new();
        let everyone = self.queue_for.get(&None).unwrap_or(&empty);
        let theirs = self
            .queue_for
            .get(&Some(account.identity.username.clone()))
            .unwrap_or(&empty);
        let mut keys: Vec<&(Urgency, Millis, RequestId)> = everyone.union(theirs).collect();
        keys.sort();
        let ids: Vec<RequestId> = keys
            .into_iter()
            .map(|(_, _, id)| *id)
            .filter(|id| self.waiting.get(id).is_some_and(|r| account.rings_for(r)))
            .collect();
        for id in ids {
            self.ring(id, &[clinician], RingTrigger::ClinicianAvailable);
        }
    }

    pub(super) fn entry(&self, r: &Request) -> QueueEntry {
        let station = self.accounts.get(&r.station);
        QueueEntry {
            request_id: r.id,
            station: station
                .map(|a| a.identity.display_name.clone())
                .unwrap_or_default(),
            site: station.and_then(|a| a.identity.site.clone()),
            urgency: r.urgency,
            reason: r.reason.clone(),
            patient_ref: r.patient_ref.clone(),
            requested_at: r.requested_at,
            waited_ms: self.now - r.requested_at,
            station_connected: station.is_some_and(|a| a.conn.is_some()),
            test: r.test,
            escalation: r.escalation,
        }
    }

    /// The viewer's queue, now, to this connection.
    pub(super) fn send_queue(&mut self, viewer: UserId, conn: ConnId) {
        let requests = self.queue_entries_for(Some(viewer));
        let available = self.clinicians_available();
        if let Some(account) = self.accounts.get_mut(&viewer) {
            account.queue_told = Some((view_key(&requests), available));
        }
        self.queue_special.insert(viewer);
        let message = ServerMessage::Queue {
            requests,
            clinicians_available: available,
            server_time: self.now,
        };
        self.send(conn, message);
    }

    /// The queue entries of requests for everyone (`None`) or directed at
    /// one username, in queue order.
    pub(super) fn entries_for_target(&self, target: &Option<String>) -> Vec<QueueEntry> {
        self.queue_for
            .get(target)
            .into_iter()
            .flatten()
            .filter_map(|(_, _, id)| self.waiting.get(id))
            .map(|r| self.entry(r))
            .collect()
    }

    /// What this watcher's queue shows when it is not the shared one: a
    /// probe sees only its own test calls, a clinician with a directed
    /// test call the shared queue with theirs in it.
    pub(super) fn own_view(
        &self,
        account: &Account,
        shared: &[QueueEntry],
    ) -> Option<Vec<QueueEntry>> {
        let name = Some(account.identity.username.clone());
        let directed = self.queue_for.contains_key(&name);
        if account.identity.monitoring {
            return Some(self.entries_for_target(&name));
        }
        if !directed {
            return None;
        }
        let mut requests = shared.to_vec();
        requests.extend(self.entries_for_target(&name));
        requests.sort_by_key(|e| (e.urgency, e.requested_at, e.request_id));
        Some(requests)
    }

    /// A waiting request's entry changed: its directed clinician's view
    /// with it (the shared view is compared whole at every flush).
    pub(super) fn touch_request(&mut self, id: RequestId) {
        if let Some(name) = self.waiting.get(&id).and_then(|r| r.direct_to.clone()) {
            self.queue_touched.insert(name);
        }
    }

    /// After any change: the queue to every clinician and manager, and each
    /// waiting station its position if that changed.
    pub(super) fn flush_queue(&mut self) {
        if !self.queue_dirty {
            return;
        }
        self.queue_dirty = false;
        let available = self.clinicians_available();
        let shared = self.entries_for_target(&None);
        let shared_key = view_key(&shared);
        // Each watcher gets the queue only if what it shows changed: at
        // once if its entries did, and a change in the count alone at most
        // every `queue_count_every_ms`. Watchers are visited only when
        // something of theirs may have changed: everyone when the shared
        // queue did (or a held-back count is due), else only those in
        // `queue_special` and those whose directed test calls changed.
        let count_due = self.config.queue_count_every_ms <= 0
            || self.queue_count_due.is_some_and(|at| at <= self.now);
        let everyone = match self.shared_told {
            None => true,
            Some((k, n)) => k != shared_key || (count_due && (n != available || self.count_spread)),
        };
        let touched = std::mem::take(&mut self.queue_touched);
        let candidates: Vec<UserId> = if everyone {
            self.observers.iter().copied().collect()
        } else {
            let mut some = self.queue_special.clone();
            some.extend(
                touched
                    .iter()
                    .filter_map(|name| self.usernames.get(name))
                    .flatten()
                    .copied()
                    .filter(|u| self.observers.contains(u)),
            );
            some.into_iter().collect()
        };
        let group_count = if everyone {
            available
        } else {
            self.shared_told.map_or(available, |(_, n)| n)
        };
        let mut spread = !everyone && self.count_spread;
        let mut told = Vec::new();
        let mut to = Vec::new();
        let mut own: Vec<(ConnId, Vec<QueueEntry>)> = Vec::new();
        for user_id in candidates {
            let Some(account) = self.accounts.get(&user_id) else {
                continue;
            };
            let Some(conn) = account.conn else { continue };
            let view = self.own_view(account, &shared);
            let key = view.as_deref().map_or(shared_key, view_key);
            let send = match account.queue_told {
                None => true,
                Some((k, _)) if k != key => true,
                Some((_, n)) => n != available && count_due,
            };
            let after_count = if send {
                available
            } else {
                account.queue_told.map_or(available, |(_, n)| n)
            };
            spread |= after_count != group_count;
            told.push((user_id, key, send));
            if send {
                match view {
                    Some(requests) => own.push((conn, requests)),
                    None => to.push(conn),
                }
            }
        }
        for (user_id, key, send) in told {
            self.queue_special.remove(&user_id);
            if send {
                if let Some(account) = self.accounts.get_mut(&user_id) {
                    account.queue_told = Some((key, available));
                }
            }
        }
        if everyone {
            self.shared_told = Some((shared_key, available));
            // Whoever was not visited is not connected: a connection
            // joins `queue_special` when it opens.
            self.queue_special.clear();
        }
        self.count_spread = spread;
        // Someone's count is behind: send it when it is due.
        let count_held = group_count != available || spread;
        self.queue_count_due = match self.queue_count_due {
            Some(at) if count_held && at > self.now => Some(at),
            _ if count_held => Some(self.now + self.config.queue_count_every_ms),
            _ => None,
        };
        let now = self.now;
        let queue = move |requests| ServerMessage::Queue {
            requests,
            clinicians_available: available,
            server_time: now,
        };
        if !to.is_empty() {
            let message = queue(shared);
            self.outputs.push_back(Output::Send { to, message });
        }
        for (conn, requests) in own {
            let message = queue(requests);
            self.send(conn, message);
        }
        let order: Vec<RequestId> = self.queue.iter().map(|(_, _, id)| *id).collect();
        for (index, id) in order.into_iter().enumerate() {
            let position = u32::try_from(index + 1).unwrap_or(u32::MAX);
            self.tell_station(id, position, available);
        }
    }

    /// Tells a waiting request's station where it stands (its place in the
    /// queue, how many clinicians are available, escalation), unless it was
    /// told exactly this already or is not connected (it is told on
    /// reconnecting).
    pub(super) fn tell_station(&mut self, id: RequestId, position: u32, available: u32) {
        let Some(r) = self.waiting.get_mut(&id) else {
            return;
        };
        let told = (position, available, r.escalation, r.alerted, r.duty_alerted);
        if r.last_told == Some(told) {
            return;
        }
        let station = r.station;
        if self.accounts.get(&station).and_then(|a| a.conn).is_none() {
            return;
        }
        r.last_told = Some(told);
        let msg = ServerMessage::RequestUpdate {
            request_id: id,
            state: RequestState::Waiting,
            position: Some(position),
            clinicians_available: available,
            requested_at: r.requested_at,
            waited_ms: self.now - r.requested_at,
            outcome: None,
            clinician: None,
            escalation: r.escalation,
            alerted: r.alerted,
            duty_alerted: r.duty_alerted,
        };
        self.send_to_user(station, msg);
    }
}
