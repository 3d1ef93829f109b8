//! Leadership: which instance owns the switchboard.
//!
//! On SQLite there is one instance and it always leads. On PostgreSQL any
//! number of instances run against one database; the one holding the lease
//! (`src/store/lease.rs`) leads: it owns the switchboard, serves WebSockets
//! and writes the log. The others stand by: `/healthz` answers 503 with
//! `"role": "standby"` and `/ws` 503, so a load balancer sends clients to
//! the leader and clients retry.
//!
//! The election task here:
//! * standing by, tries to take the lease every `lease / 6`;
//! * on winning, starts the switchboard from the log exactly as after a
//!   restart (`load_open` + `restore`), with a store handle fenced by the
//!   new epoch, and only then says it leads;
//! * leading, renews every `lease / 3`. It steps down (closes every
//!   WebSocket, answers 503) when a renewal says the lease is gone, when the
//!   operator stops because a write found it deposed, or when it has gone
//!   `lease - lease / 4` without a successful renewal, counted from before
//!   the last successful renewal was sent: that is before the lease can
//!   expire by the database's clock, so a standby can never lead while
//!   this instance still acknowledges anything.
//!
//! What is held in memory is per instance: login throttling and the login
//! verifier's slots count per instance; sessions and accounts are in the
//! database, so a sign-in on one instance is good on the other.

use crate::clock::Clock;
use crate::operator::{self, OperatorHandle};
use crate::settings::Settings;
use crate::store::{Fence, Store};
use anyhow::Context;
use signalling::{Config, Switchboard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What this instance is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Owns the switchboard; `epoch` counts leaderships (0 on SQLite).
    Leader {
        epoch: i64,
    },
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader { .. } => "leader",
            Role::Standby => "standby",
        }
    }

    pub fn is_leader(self) -> bool {
        matches!(self, Role::Leader { .. })
    }
}

/// The instance's role and, while it leads, its operator. Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    role: watch::Receiver<Role>,
    /// The sole leader's role never changes; its sender is kept here.
    _role_tx: Option<Arc<watch::Sender<Role>>>,
    operator: Arc<RwLock<Option<OperatorHandle>>>,
    /// The operator's figures survive a change of leader, for `/healthz`.
    pub stats: Arc<operator::OperatorStats>,
    /// While leading on PostgreSQL: the lease, to hand back on shutdown.
    lease: Arc<RwLock<Option<(Store, Fence)>>>,
    /// Set on shutdown: the election takes no lease any more.
    stopping: Arc<AtomicBool>,
}

impl Leadership {
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Changes of role, for a connection to end itself when this instance
    /// stops leading.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The operator, while this instance leads.
    pub fn operator(&self) -> Option<OperatorHandle> {
        if !self.role().is_leader() {
            return None;
        }
        self.operator.read().ok().and_then(|h| h.clone())
    }

    /// Closes every connection and stops the operator (a server shutting down),
    /// then hands the lease back so that a standby leads at once.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let operator = self.operator.write().ok().and_then(|mut h| h.take());
        if let Some(operator) = operator {
            operator.shutdown().await;
        }
        let lease = self.lease.write().ok().and_then(|mut l| l.take());
        if let Some((store, fence)) = lease {
            match store.release_lease(&fence).await {
                Ok(()) => tracing::info!(epoch = fence.epoch, "handed the lease back"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not hand the lease back; a standby takes over when it expires")
                }
            }
        }
    }
}

/// Starts the switchboard from the log, as after a restart: the next free
/// ids, and whatever was open (waiting requests keep their ids and times,
/// calls resume, owed outcomes stay owed).
pub async fn start_operator(
    store: Store,
    settings: &Settings,
    clock: Clock,
    stats: Arc<operator::OperatorStats>,
) -> anyhow::Result<OperatorHandle> {
    let (first_request_id, first_call_id) = store.next_ids().await?;
    let config = Config {
        disconnect_grace_ms: settings.disconnect_grace_ms,
        escalation: settings.escalation,
        first_request_id,
        first_call_id,
        test_line: settings.test_call_clinician.clone(),
        // What pages check before they send: the same rules the server
        // applies (`decode`, `settings::PatientRefRule`).
        limits: signalling::Limits {
            patient_ref_pattern: settings.patient_ref_pattern.clone(),
            patient_ref_hint: crate::settings::PatientRefRule::new(&settings.patient_ref_pattern)
                .map(|r| r.hint())
                .unwrap_or_default(),
            ..signalling::Limits::default()
        },
        ..Config::default()
    };
    let mut switchboard = Switchboard::new(config, clock.now_ms());
    let open = store
        .load_open()
        .await
        .context("reading open consults from the log")?;
    let (waiting, calls, owed) = (open.waiting.len(), open.calls.len(), open.owed.len());
    for note in switchboard.restore(open) {
        tracing::warn!("restore: {note}");
    }
    if waiting + calls + owed > 0 {
        tracing::info!(
            waiting,
            calls,
            owed,
            "restored open consults from the session log"
        );
    }
    Ok(operator::spawn(switchboard, store, clock, stats))
}

/// The only instance (SQLite): it leads from the start.
pub async fn sole(
    store: Store,
    settings: &Settings,
    clock: Clock,
    stats: Arc<operator::OperatorStats>,
) -> anyhow::Result<Leadership> {
    let (tx, rx) = watch::channel(Role::Leader { epoch: 0 });
    let operator = start_operator(store, settings, clock, stats.clone()).await?;
    Ok(Leadership {
        role: rx,
        _role_tx: Some(Arc::new(tx)),
        operator: Arc::new(RwLock::new(Some(operator))),
        stats,
        lease: Arc::new(RwLock::new(None)),
        stopping: Arc::new(AtomicBool::new(false)),
    })
}

/// One of several instances (PostgreSQL): stands by, and leads when it
/// holds the lease. Returns at once; the election runs in its own task.
pub fn elect(
    store: Store,
    settings: Arc<Settings>,
    clock: Clock,
    stats: Arc<operator::OperatorStats>,
) -> Leadership {
    let (tx, rx) = watch::channel(Role::Standby);
    let slot = Arc::new(RwLock::new(None));
    let lease = Arc::new(RwLock::new(None));
    let stopping = Arc::new(AtomicBool::new(false));
    let leadership = Leadership {
        role: rx,
        _role_tx: None,
        operator: slot.clone(),
        stats: stats.clone(),
        lease: lease.clone(),
        stopping: stopping.clone(),
    };
    let election = Election {
        store,
        settings,
        clock,
        holder: instance_name(),
        tx,
        slot,
        stats,
        lease,
        stopping,
    };
    tokio::spawn(election.run());
    leadership
}

/// This instance's name in the lease: host, process and a random part, so
/// that a restarted instance is a new holder.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let tag: u32 = rand::random();
    format!("{host}:{}:{tag:08x}", std::process::id())
}

struct Election {
    store: Store,
    settings: Arc<Settings>,
    clock: Clock,
    holder: String,
    tx: watch::Sender<Role>,
    slot: Arc<RwLock<Option<OperatorHandle>>>,
    stats: Arc<operator::OperatorStats>,
    lease: Arc<RwLock<Option<(Store, Fence)>>>,
    stopping: Arc<AtomicBool>,
}

impl Election {
    /// The server is shutting down (it took the operator and the lease back).
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.lease_ms.max(300))
    }

    async fn run(self) {
        tracing::info!(holder = %self.holder, lease_ms = self.settings.lease_ms, "standing by: waiting for the leader's lease");
        let lease = self.lease();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        loop {
            if self.tx.is_closed() {
                return; // Nobody listens: the server has stopped.
            }
            if self.stopping() {
                return;
            }
            let asked = Instant::now();
            let attempt = tokio::time::timeout(
                lease / 3,
                self.store.try_acquire_lease(&self.holder, lease_ms),
            )
            .await;
            match attempt {
                Ok(Ok(Some(epoch))) => {
                    self.lead(
                        Fence {
                            holder: self.holder.clone(),
                            epoch,
                        },
                        asked,
                    )
                    .await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "standing by: cannot reach the database to check the lease")
                }
                Err(_) => tracing::warn!(
                    "standing by: the database did not answer the lease check in time"
                ),
            }
            tokio::time::sleep(lease / 6).await;
        }
    }

    /// Leads until the lease is lost; then stands by again.
    async fn lead(&self, fence: Fence, asked: Instant) {
        let lease = self.lease();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let margin = lease / 4;
        let mut valid_until = asked + lease - margin;
        let store = self.store.fenced(fence.clone());
        let operator = match start_operator(store, &self.settings, self.clock, self.stats.clone())
            .await
        {
            Ok(operator) => operator,
            Err(e) => {
                tracing::error!(error = %e, "took the lease but cannot start the switchboard; handing it back");
                let _ = self.store.release_lease(&fence).await;
                return;
            }
        };
        if Instant::now() >= valid_until {
            tracing::warn!("starting the switchboard took longer than the lease; handing it back");
            operator.abandon();
            let _ = self.store.release_lease(&fence).await;
            return;
        }
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some(operator.clone());
        }
        if let Ok(mut held) = self.lease.write() {
            *held = Some((self.store.clone(), fence.clone()));
        }
        self.tx.send_replace(Role::Leader { epoch: fence.epoch });
        tracing::info!(epoch = fence.epoch, holder = %fence.holder, "leading: this instance owns the switchboard");
        let why = loop {
            let next = (Instant::now() + lease / 3).min(valid_until);
            tokio::time::sleep_until(next).await;
            if operator.is_stopped() {
                break "the switchboard stopped (a write found this instance deposed)";
            }
            if self.stopping() {
                // Leadership::shutdown closes the operator and hands the lease back.
                return;
            }
            let sent = Instant::now();
            let left = valid_until.saturating_duration_since(sent);
            if left.is_zero() {
                break "the lease could not be renewed in time";
            }
            match tokio::time::timeout(left, self.store.renew_lease(&fence, lease_ms)).await {
                Ok(Ok(true)) => valid_until = sent + lease - margin,
                Ok(Ok(false)) => break "the lease was lost (expired, or another instance took it)",
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot renew the lease; retrying"),
                Err(_) => tracing::warn!("the database did not answer the lease renewal in time"),
            }
        };
        tracing::warn!(
            epoch = fence.epoch,
            why,
            "standing down: closing every connection"
        );
        // First the role, which every connection watches: they close at
        // once, even if the operator is stuck on a write.
        self.tx.send_replace(Role::Standby);
        if let Ok(mut slot) = self.slot.write() {
            slot.take();
        }
        if let Ok(mut held) = self.lease.write() {
            held.take();
        }
        operator.abandon();
    }
}
