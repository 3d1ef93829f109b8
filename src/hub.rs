//! The hub: the one task that owns the [`Switchboard`].
//!
//! Connection tasks send it [`HubCommand`]s over a bounded channel; it feeds
//! them to the switchboard with the current time, writes the resulting log
//! events to the store, and only then delivers the resulting messages to the
//! connections' outboxes. No locks are held around the switchboard: it lives
//! inside this task alone.
//!
//! Back-pressure: every connection has a bounded outbox. A connection that
//! cannot keep up (its outbox is full) is dropped rather than allowed to
//! stall everyone else; its account's state is kept for the grace period,
//! so the client reconnects and resumes.

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use axum::extract::ws::Utf8Bytes;
use signalling::{
    ClientMessage, ConnId, ErrorCode, Event, IceServer, Identity, Input, Output, ServerMessage,
    Switchboard,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Messages queued to one connection before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 512;
/// Commands the hub takes in one batch (one log transaction).
const BATCH: usize = 128;

/// What a connection task is asked to do.
#[derive(Debug)]
pub enum Outbound {
    Text(Utf8Bytes),
    /// Send this text, then close the WebSocket with this code.
    Close {
        text: Utf8Bytes,
        code: u16,
    },
}

pub enum HubCommand {
    Connect {
        conn: ConnId,
        identity: Identity,
        ice_servers: Vec<IceServer>,
        outbox: mpsc::Sender<Outbound>,
    },
    Message {
        conn: ConnId,
        message: ClientMessage,
    },
    Disconnect {
        conn: ConnId,
    },
    /// The connection's session ended on purpose (signed out or revoked):
    /// a station's waiting request is withdrawn rather than left waiting.
    SignOut {
        conn: ConnId,
    },
    /// Close every connection and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Figures for `/healthz` and the benchmarks.
#[derive(Debug)]
pub struct HubStats {
    pub connections: AtomicUsize,
    pub calls: AtomicUsize,
    pub waiting: AtomicUsize,
    /// False while the session log cannot be written.
    pub log_ok: AtomicBool,
    pub log_failures: AtomicU64,
    pub dropped_slow: AtomicU64,
}

impl HubStats {
    pub fn new() -> HubStats {
        HubStats {
            connections: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            log_ok: AtomicBool::new(true),
            log_failures: AtomicU64::new(0),
            dropped_slow: AtomicU64::new(0),
        }
    }
}

impl Default for HubStats {
    fn default() -> Self {
        HubStats::new()
    }
}

#[derive(Clone)]
pub struct HubHandle {
    tx: mpsc::Sender<HubCommand>,
    next_conn: Arc<AtomicU64>,
    pub stats: Arc<HubStats>,
    /// Set to stop the hub at once, whatever it is waiting for.
    stop: Arc<watch::Sender<bool>>,
}

impl HubHandle {
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Fails only when the hub has stopped.
    pub async fn send(&self, cmd: HubCommand) -> Result<(), HubGone> {
        self.tx.send(cmd).await.map_err(|_| HubGone)
    }

    /// True once the hub task has ended (stopped, or found deposed).
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    /// Stops the hub now without waiting for it: it delivers nothing more
    /// (a write in progress is abandoned) and closes every connection.
    /// For a leader standing down.
    pub fn abandon(&self) {
        self.stop.send_replace(true);
    }

    /// Asks the hub to close every connection and stop; waits until it has.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(HubCommand::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the switchboard has stopped")]
pub struct HubGone;

/// Starts the hub task. `stats` outlive it (a new leader's hub carries on
/// with the same figures).
pub fn spawn(sb: Switchboard, store: Store, clock: Clock, stats: Arc<HubStats>) -> HubHandle {
    let (tx, rx) = mpsc::channel(4096);
    stats.log_ok.store(true, Ordering::Relaxed);
    let (stop, stopped) = watch::channel(false);
    let hub = Hub {
        stopped,
        sb,
        store,
        clock,
        rx,
        outboxes: HashMap::new(),
        stats: stats.clone(),
        lost: Vec::new(),
    };
    tokio::spawn(hub.run());
    HubHandle {
        tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        stats,
        stop: Arc::new(stop),
    }
}

/// Why the hub stops delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// Another instance leads now: a write found this one deposed.
    Deposed,
    /// Told to stop ([`HubHandle::abandon`]).
    Abandoned,
}

struct Hub {
    stopped: watch::Receiver<bool>,
    sb: Switchboard,
    store: Store,
    clock: Clock,
    rx: mpsc::Receiver<HubCommand>,
    outboxes: HashMap<ConnId, mpsc::Sender<Outbound>>,
    stats: Arc<HubStats>,
    /// Connections dropped for being slow, to report to the switchboard.
    lost: Vec<ConnId>,
}

impl Hub {
    async fn run(mut self) {
        // Anything the switchboard produced before the first input (a
        // restore ends some items) is written first.
        let outputs = self.drain();
        if let Err(halt) = self.commit(outputs).await {
            self.halt(halt);
            return;
        }
        self.publish_stats();
        let mut batch = Vec::with_capacity(BATCH);
        let mut stopped = self.stopped.clone();
        loop {
            let wake = self.sb.poll_timeout().map(|t| self.clock.instant_at(t));
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = self.rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        break; // Every handle dropped.
                    }
                }
                () = timer => {}
                _ = stopped.wait_for(|stop| *stop) => {
                    self.halt(Halt::Abandoned);
                    return;
                }
            }
            let mut shutdown = None;
            let now = self.clock.now_ms();
            for cmd in batch.drain(..) {
                let input = match cmd {
                    HubCommand::Connect {
                        conn,
                        identity,
                        ice_servers,
                        outbox,
                    } => {
                        self.outboxes.insert(conn, outbox);
                        Input::Connect {
                            conn,
                            identity,
                            ice_servers,
                        }
                    }
                    HubCommand::Message { conn, message } => Input::Message { conn, message },
                    HubCommand::Disconnect { conn } => {
                        self.outboxes.remove(&conn);
                        Input::Disconnect { conn }
                    }
                    HubCommand::SignOut { conn } => {
                        self.outboxes.remove(&conn);
                        Input::SignOut { conn }
                    }
                    HubCommand::Shutdown(done) => {
                        shutdown = Some(done);
                        continue;
                    }
                };
                self.sb.handle(now, input);
            }
            if self.sb.poll_timeout().is_some_and(|t| t <= now) {
                self.sb.handle(now, Input::Timeout);
            }
            // Drained once per batch: queue updates go out once for all of
            // the batch's changes.
            let outputs = self.drain();
            if let Err(halt) = self.commit(outputs).await {
                self.halt(halt);
                return;
            }
            // Connections found too slow while delivering: tell the
            // switchboard, and deliver what that produces, until quiet.
            while !self.lost.is_empty() {
                let now = self.clock.now_ms();
                for conn in std::mem::take(&mut self.lost) {
                    self.sb.handle(now, Input::Disconnect { conn });
                }
                let outputs = self.drain();
                if let Err(halt) = self.commit(outputs).await {
                    self.halt(halt);
                    return;
                }
            }
            self.publish_stats();
            if let Some(done) = shutdown {
                self.close_all();
                let _ = done.send(());
                break;
            }
        }
    }

    fn drain(&mut self) -> Vec<Output> {
        let mut outputs = Vec::new();
        while let Some(out) = self.sb.poll_output() {
            outputs.push(out);
        }
        outputs
    }

    /// Stops: nothing more is delivered, and every connection is closed so
    /// that its client reconnects (to the new leader, through the same
    /// address).
    fn halt(&mut self, halt: Halt) {
        tracing::warn!(
            ?halt,
            "the switchboard stops here; clients reconnect to the leader"
        );
        self.close_all();
    }

    /// Makes this batch's events durable, then delivers its messages.
    /// Delivers nothing if the events could not be written by this leader.
    async fn commit(&mut self, outputs: Vec<Output>) -> Result<(), Halt> {
        let events: Vec<Event> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Record(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        self.write_log(&events).await?;
        for out in outputs {
            match out {
                Output::Send { to, message } => {
                    let text = Utf8Bytes::from(message.to_json());
                    for conn in to {
                        self.deliver(conn, Outbound::Text(text.clone()));
                    }
                }
                Output::Close { conn, code } => {
                    let text = ServerMessage::Error {
                        code,
                        message: close_message(code).to_owned(),
                        in_reply_to: None,
                    }
                    .to_json();
                    if let Some(outbox) = self.outboxes.remove(&conn) {
                        let _ = outbox.try_send(Outbound::Close {
                            text: text.into(),
                            code: 4000,
                        });
                    }
                }
                Output::Record(_) => {}
            }
        }
        Ok(())
    }

    fn deliver(&mut self, conn: ConnId, msg: Outbound) {
        let Some(outbox) = self.outboxes.get(&conn) else {
            return;
        };
        match outbox.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%conn, "connection is not reading its messages; dropping it so it reconnects");
                self.stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                // Dropping the sender closes the outbox; the task then ends.
                self.outboxes.remove(&conn);
                self.lost.push(conn);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The task has ended; its Disconnect is on its way.
                self.outboxes.remove(&conn);
            }
        }
    }

    /// Writes events, retrying until the database takes them. Nothing is
    /// acknowledged meanwhile: a log that cannot be written stops the
    /// switchboard rather than let it run ahead of the record.
    async fn write_log(&mut self, events: &[Event]) -> Result<(), Halt> {
        if events.is_empty() {
            return Ok(());
        }
        let mut delay = Duration::from_millis(50);
        let mut attempts = 0u32;
        let mut stopped = self.stopped.clone();
        loop {
            let written = tokio::select! {
                written = self.store.record(events) => written,
                // Standing down while a write hangs (the database cut
                // off): the write is abandoned, and nothing of it is
                // delivered. If it did commit, the log holds more than
                // anyone was told, which is safe.
                _ = stopped.wait_for(|stop| *stop) => return Err(Halt::Abandoned),
            };
            match written {
                Ok(()) => {
                    if !self.stats.log_ok.swap(true, Ordering::Relaxed) {
                        tracing::info!("session log writable again");
                    }
                    return Ok(());
                }
                Err(StoreError::Deposed(epoch)) => {
                    tracing::warn!(
                        epoch,
                        "another instance leads now; this one delivers nothing more"
                    );
                    return Err(Halt::Deposed);
                }
                Err(StoreError::Invalid(why)) if events.len() > 1 => {
                    // One event the schema refuses must not take the others
                    // with it: write them one by one.
                    tracing::error!(%why, "a batch of log events was refused; writing them one at a time");
                    for e in events {
                        Box::pin(self.write_log(std::slice::from_ref(e))).await?;
                    }
                    return Ok(());
                }
                Err(StoreError::Invalid(why)) => {
                    // A bug, not an outage: keep the event in the server log
                    // so that nothing is lost, and carry on.
                    let json = serde_json::to_string(&events[0]).unwrap_or_default();
                    tracing::error!(%why, event = %json, "session log refused an event; it is kept here");
                    self.stats.log_failures.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    attempts += 1;
                    self.stats.log_ok.store(false, Ordering::Relaxed);
                    self.stats.log_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, attempts, "cannot write the session log; retrying (check the disk and the database)");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stopped.wait_for(|stop| *stop) => return Err(Halt::Abandoned),
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn close_all(&mut self) {
        let text: Utf8Bytes = ServerMessage::Error {
            code: ErrorCode::Unavailable,
            message: "the server is restarting; reconnecting shortly".into(),
            in_reply_to: None,
        }
        .to_json()
        .into();
        for (_, outbox) in self.outboxes.drain() {
            let _ = outbox.try_send(Outbound::Close {
                text: text.clone(),
                code: 1012, // Service restart.
            });
        }
    }

    fn publish_stats(&self) {
        self.stats
            .connections
            .store(self.sb.connection_count(), Ordering::Relaxed);
        self.stats
            .calls
            .store(self.sb.call_count(), Ordering::Relaxed);
        self.stats
            .waiting
            .store(self.sb.waiting_count(), Ordering::Relaxed);
    }
}

fn close_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Replaced => {
            "this account signed in from another window or device; this one is closed"
        }
        _ => "the server closed this connection",
    }
}
