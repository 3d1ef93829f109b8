//! The switchboard's invariants, checked after every input by the
//! property tests and the simulation (`sim`), so that a change that forgets
//! to keep an index or a count in step fails there.

use super::*;

impl Switchboard {
    /// Checks the rules that must hold after every input. Used by the tests,
    /// the property tests and the fuzz target; returns what is broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut by_urgency = [0usize; 3];
        for (urgency, _, _) in &self.queue {
            by_urgency[urgency_index(*urgency)] += 1;
        }
        if by_urgency != self.queued_by_urgency {
            return Err(format!(
                "the queue holds {by_urgency:?} requests by urgency, but {:?} are counted",
                self.queued_by_urgency
            ));
        }
        let shared = self.entries_for_target(&None);
        for (id, a) in &self.accounts {
            if a.conn.is_some() && self.observers.contains(id) && !self.queue_special.contains(id) {
                // Everyone not due a visit was told their queue as it is
                // now, and the count too unless a count is held back.
                let key = self
                    .own_view(a, &shared)
                    .as_deref()
                    .map_or_else(|| view_key(&shared), view_key);
                let fresh = match a.queue_told {
                    Some((k, n)) => {
                        k == key && (n == self.available || self.queue_count_due.is_some())
                    }
                    None => false,
                };
                if !fresh && !self.queue_dirty {
                    return Err(format!(
                        "account {id} was told {:?} of the queue, not its queue as it is now",
                        a.queue_told
                    ));
                }
            }
            if !self
                .usernames
                .get(&a.identity.username)
                .is_some_and(|ids| ids.contains(id))
            {
                return Err(format!("account {id} is missing from the username index"));
            }
        }
        if self.available != self.count_available() {
            return Err(format!(
                "counted {} clinicians available, but {} are",
                self.available,
                self.count_available()
            ));
        }
        let by_target: usize = self.queue_for.values().map(BTreeSet::len).sum();
        if by_target != self.queue.len()
            || self.queue_for.iter().any(|(to, keys)| {
                keys.iter().any(|k| {
                    !self.queue.contains(k)
                        || self.waiting.get(&k.2).map(|r| &r.direct_to) != Some(to)
                })
            })
        {
            return Err("the queue by target disagrees with the queue".into());
        }
        if self.queue.len() != self.waiting.len() {
            return Err(format!(
                "queue has {} entries but {} requests wait",
                self.queue.len(),
                self.waiting.len()
            ));
        }
        for key in &self.queue {
            let Some(r) = self.waiting.get(&key.2) else {
                return Err(format!("queue holds unknown request {}", key.2));
            };
            if r.queue_key() != *key {
                return Err(format!("queue key of request {} is stale", key.2));
            }
            if self.answered.contains_key(&r.id) {
                return Err(format!("request {} both waits and was answered", r.id));
            }
            match self.accounts.get(&r.station).and_then(|a| a.open) {
                Some(Open::Waiting(id)) if id == r.id => {}
                other => {
                    return Err(format!(
                        "request {} waits but its station's open consult is {other:?}",
                        r.id
                    ))
                }
            }
        }
        let mut clinicians_in_calls = HashMap::new();
        for call in self.calls.values() {
            if self.waiting.contains_key(&call.request.id) {
                return Err(format!(
                    "request {} is both waiting and in call {}",
                    call.request.id, call.id
                ));
            }
            if let Some(other) = clinicians_in_calls.insert(call.clinician, call.id) {
                return Err(format!(
                    "clinician {} is in two calls ({other} and {})",
                    call.clinician, call.id
                ));
            }
            if call.clinician == call.request.station {
                return Err(format!("call {} has one account on both sides", call.id));
            }
            match self
                .accounts
                .get(&call.clinician)
                .map(|a| (a.identity.role, a.engaged))
            {
                Some((Role::Clinician, Some(Engagement::InCall { call_id })))
                    if call_id == call.id => {}
                other => {
                    return Err(format!(
                        "call {} has clinician {} whose state is {other:?}",
                        call.id, call.clinician
                    ))
                }
            }
            match self
                .accounts
                .get(&call.request.station)
                .map(|a| (a.identity.role, a.open))
            {
                Some((Role::Station, Some(Open::InCall(call_id)))) if call_id == call.id => {}
                other => {
                    return Err(format!(
                        "call {} has station {} whose state is {other:?}",
                        call.id, call.request.station
                    ))
                }
            }
            if self.answered.get(&call.request.id) != Some(&call.id) {
                return Err(format!("call {} is missing from the answered map", call.id));
            }
        }
        for account in self.accounts.values() {
            match account.open {
                Some(Open::Waiting(id)) if !self.waiting.contains_key(&id) => {
                    return Err(format!(
                        "station {} points at gone request {id}",
                        account.identity.user_id
                    ))
                }
                Some(Open::InCall(id)) if !self.calls.contains_key(&id) => {
                    return Err(format!(
                        "station {} points at gone call {id}",
                        account.identity.user_id
                    ))
                }
                _ => {}
            }
            match account.engaged {
                Some(Engagement::InCall { call_id }) if !self.calls.contains_key(&call_id) => {
                    return Err(format!(
                        "clinician {} points at gone call {call_id}",
                        account.identity.user_id
                    ))
                }
                Some(Engagement::OutcomePending { call_id })
                    if !self.ended.contains_key(&call_id) =>
                {
                    return Err(format!(
                        "clinician {} owes an outcome for unknown call {call_id}",
                        account.identity.user_id
                    ))
                }
                _ => {}
            }
            if let Some(conn) = account.conn {
                if self.conns.get(&conn) != Some(&account.identity.user_id) {
                    return Err(format!(
                        "account {} has a stale connection",
                        account.identity.user_id
                    ));
                }
            }
        }
        for (conn, user) in &self.conns {
            if self.accounts.get(user).and_then(|a| a.conn) != Some(*conn) {
                return Err(format!("connection {conn} points at the wrong account"));
            }
        }
        for (id, a) in &self.accounts {
            let c = a.identity.role == Role::Clinician;
            let o = a.identity.role != Role::Station;
            if self.clinicians.contains(id) != c || self.observers.contains(id) != o {
                return Err(format!("account {id} is misfiled in the role indexes"));
            }
        }
        if self
            .clinicians
            .iter()
            .chain(&self.observers)
            .any(|id| !self.accounts.contains_key(id))
        {
            return Err("a role index names a forgotten account".into());
        }
        // Each waiting request has exactly its next escalation step scheduled.
        let mut expected = BTreeSet::new();
        for r in self.waiting.values() {
            if let Some(at) = self.next_escalation(r) {
                expected.insert((at, r.id));
            }
        }
        if expected != self.escalation_due {
            return Err(format!(
                "escalation schedule {:?} differs from the waiting requests' {:?}",
                self.escalation_due, expected
            ));
        }
        Ok(())
    }
}
