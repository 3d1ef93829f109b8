//! The operator: the one task that owns the [`Switchboard`] and operates
//! it (as a switchboard operator works a telephone exchange's board).
//! (Called "the hub" before issue 16; "hub" now means an A&E department.)
//!
//! Connection tasks send it [`OperatorCommand`]s over a bounded channel; it feeds
//! them to the switchboard with the current time and hands each turn's
//! outputs to [`Dispatch`]: the turn's log events go to the log writer (a
//! task of its own, which commits whatever batches have queued up in one
//! transaction: group commit), and each message goes out when what it
//! reveals is durable (see `dispatch.rs` for the rule). The operator never waits
//! for the disk: it decides batch N+1 while batch N commits. No locks are
//! held around the switchboard: it lives inside this task alone.
//!
//! Back-pressure: every connection has a bounded outbox. A connection that
//! cannot keep up (its outbox is full) is dropped rather than allowed to
//! stall everyone else; its account's state is kept for the grace period,
//! so the client reconnects and resumes.

mod dispatch;
#[cfg(test)]
mod tests;

use crate::clock::Clock;
use crate::metrics::{ConsultMeter, Metrics};
use crate::store::{Store, StoreError};
use axum::extract::ws::Utf8Bytes;
use dispatch::{Dispatch, LogBatch};
use signalling::{
    ClientMessage, ConnId, ErrorCode, Event, IceServer, Identity, Input, Output, ServerMessage,
    Switchboard,
};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Messages queued to one connection before it counts as too slow.
pub const OUTBOX_CAPACITY: usize = 512;
/// Commands the operator takes in one turn.
const BATCH: usize = 128;
/// Turns whose events may be waiting for the log at once. Beyond this the
/// operator stops taking commands until the writer catches up (back-pressure
/// onto the connections), so memory stays bounded when the disk is slow.
const MAX_IN_FLIGHT: u64 = 256;

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

pub enum OperatorCommand {
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
    /// What every account is doing now (the admin console).
    Snapshot(oneshot::Sender<Vec<signalling::AccountState>>),
    /// Close every connection and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Figures for `/healthz`, the metrics and the benchmarks, as of the operator's
/// latest turn.
#[derive(Debug)]
pub struct OperatorStats {
    pub connections: AtomicUsize,
    pub calls: AtomicUsize,
    pub waiting: AtomicUsize,
    /// Waiting requests per urgency, in the order of `Urgency::ALL`.
    pub waiting_by_urgency: [AtomicUsize; 3],
    /// Clinicians who would be rung now.
    pub clinicians_available: AtomicU32,
    /// False while the session log cannot be written.
    pub log_ok: AtomicBool,
    pub log_failures: AtomicU64,
    pub dropped_slow: AtomicU64,
    /// True once the operator task has died (panicked, or lost its log
    /// writer): nobody can be rung. `/healthz` says so and the server exits
    /// non-zero so that its service manager restarts it.
    pub dead: watch::Sender<bool>,
    /// The process's metrics: the log writer counts into them.
    pub metrics: Arc<Metrics>,
}

impl OperatorStats {
    pub fn new() -> OperatorStats {
        OperatorStats::with_metrics(Arc::default())
    }

    pub fn with_metrics(metrics: Arc<Metrics>) -> OperatorStats {
        OperatorStats {
            connections: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            waiting_by_urgency: Default::default(),
            clinicians_available: AtomicU32::new(0),
            log_ok: AtomicBool::new(true),
            log_failures: AtomicU64::new(0),
            dropped_slow: AtomicU64::new(0),
            dead: watch::Sender::new(false),
            metrics,
        }
    }
}

impl Default for OperatorStats {
    fn default() -> Self {
        OperatorStats::new()
    }
}

#[derive(Clone)]
pub struct OperatorHandle {
    tx: mpsc::Sender<OperatorCommand>,
    /// For `signal` and `ping`, which the operator takes before anything else:
    /// a relay never queues behind other consults' bookkeeping.
    fast: mpsc::Sender<OperatorCommand>,
    next_conn: Arc<AtomicU64>,
    pub stats: Arc<OperatorStats>,
    /// Set to stop the operator at once, whatever it is waiting for.
    stop: Arc<watch::Sender<bool>>,
}

impl OperatorHandle {
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Fails only when the operator has stopped.
    ///
    /// A `signal` or `ping` may be decided before the same connection's
    /// earlier messages still waiting in the operator's queue: neither changes
    /// the switchboard's state, and a client sends a call's signals only
    /// after it has heard of the call.
    pub async fn send(&self, cmd: OperatorCommand) -> Result<(), OperatorGone> {
        let channel = match &cmd {
            OperatorCommand::Message {
                message: ClientMessage::Signal { .. } | ClientMessage::Ping { .. },
                ..
            } => &self.fast,
            _ => &self.tx,
        };
        channel.send(cmd).await.map_err(|_| OperatorGone)
    }

    /// True once the operator task has ended (stopped, or found deposed).
    pub fn is_stopped(&self) -> bool {
        self.tx.is_closed()
    }

    /// Stops the operator now without waiting for it: it delivers nothing more
    /// (a write in progress is abandoned) and closes every connection.
    /// For a leader standing down.
    pub fn abandon(&self) {
        self.stop.send_replace(true);
    }

    /// What every account is doing now.
    pub async fn snapshot(&self) -> Result<Vec<signalling::AccountState>, OperatorGone> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(OperatorCommand::Snapshot(tx))
            .await
            .map_err(|_| OperatorGone)?;
        rx.await.map_err(|_| OperatorGone)
    }

    /// Asks the operator to close every connection and stop; waits until it has.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(OperatorCommand::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the switchboard has stopped")]
pub struct OperatorGone;

/// Where the operator makes its events durable: the [`Store`], or in tests a
/// log whose commits are held open or failed on cue.
pub trait SessionLog: Send + Sync + 'static {
    /// Writes the events in one transaction; Ok once they are durable.
    fn record(&self, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl SessionLog for Store {
    fn record(&self, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send {
        Store::record(self, events)
    }
}

/// Starts the operator task and its log writer. `stats` outlive them (a new
/// leader's operator carries on with the same figures).
pub fn spawn<L: SessionLog>(
    sb: Switchboard,
    log: L,
    clock: Clock,
    stats: Arc<OperatorStats>,
) -> OperatorHandle {
    let (tx, rx) = mpsc::channel(4096);
    let (fast, fast_rx) = mpsc::channel(4096);
    stats.log_ok.store(true, Ordering::Relaxed);
    let (stop, stopped) = watch::channel(false);
    let (log_tx, log_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    // Requests already open (restored from the log) are timed from when
    // they were made.
    let mut meter = ConsultMeter::default();
    for (id, urgency, requested_at, test) in sb.open_requests() {
        meter.seed(id, urgency, requested_at, test);
    }
    let writer = Writer {
        log,
        stats: stats.clone(),
        stopped: stopped.clone(),
        meter,
    };
    tokio::spawn(writer.run(log_rx, done_tx));
    let operator = Operator {
        stopped,
        sb,
        clock,
        rx,
        fast_rx,
        outboxes: HashMap::new(),
        stats: stats.clone(),
        lost: Vec::new(),
        dispatch: Dispatch::new(),
        log_tx,
        done_rx,
    };
    // Supervised: an operator that dies must not leave the server half alive.
    let task = tokio::spawn(operator.run());
    let watch = stats.clone();
    tokio::spawn(async move {
        let why = match task.await {
            Ok(Ended::AsAsked) => return,
            Ok(Ended::WriterLost) => "its session-log writer stopped",
            Err(e) if e.is_panic() => "it panicked",
            Err(_) => "it was cancelled",
        };
        tracing::error!(
            why,
            "the switchboard task has died and nobody can be rung; the server exits so that \
             its service manager restarts it (the log has everything anyone was told)"
        );
        watch.dead.send_replace(true);
    });
    OperatorHandle {
        tx,
        fast,
        next_conn: Arc::new(AtomicU64::new(1)),
        stats,
        stop: Arc::new(stop),
    }
}

/// How the operator task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Shut down, or halted on purpose (deposed, standing down).
    AsAsked,
    /// Its log writer is gone without a word: it panicked.
    WriterLost,
}

/// Why the operator stops delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Halt {
    /// Another instance leads now: a write found this one deposed.
    Deposed,
    /// Told to stop ([`OperatorHandle::abandon`]).
    Abandoned,
}

struct Operator {
    stopped: watch::Receiver<bool>,
    sb: Switchboard,
    clock: Clock,
    rx: mpsc::Receiver<OperatorCommand>,
    fast_rx: mpsc::Receiver<OperatorCommand>,
    outboxes: HashMap<ConnId, mpsc::Sender<Outbound>>,
    stats: Arc<OperatorStats>,
    /// Connections dropped for being slow, to report to the switchboard.
    lost: Vec<ConnId>,
    dispatch: Dispatch,
    /// Batches of events for the writer, in number order.
    log_tx: mpsc::UnboundedSender<LogBatch>,
    /// From the writer: durable up to this batch, or why it stopped.
    done_rx: mpsc::UnboundedReceiver<Result<u64, Halt>>,
}

impl Operator {
    async fn run(mut self) -> Ended {
        // Anything the switchboard produced before the first input (a
        // restore ends some items) is the first batch; every message waits
        // for it.
        self.turn();
        self.publish_stats();
        let mut batch = Vec::with_capacity(BATCH);
        let mut fast = Vec::with_capacity(BATCH);
        let mut stopped = self.stopped.clone();
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            if shutdown.is_some() && self.dispatch.in_flight() == 0 {
                // Everything decided is durable and delivered.
                self.close_all();
                if let Some(done) = shutdown.take() {
                    let _ = done.send(());
                }
                return Ended::AsAsked;
            }
            let taking = shutdown.is_none() && self.dispatch.in_flight() < MAX_IN_FLIGHT;
            let wake = self.sb.poll_timeout().map(|t| self.clock.instant_at(t));
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stopped.wait_for(|stop| *stop) => {
                    self.halt(Halt::Abandoned);
                    return Ended::AsAsked;
                }
                done = self.done_rx.recv() => {
                    match done {
                        Some(Ok(seq)) => self.dispatch.committed(seq),
                        Some(Err(halt)) => {
                            self.halt(halt);
                            return Ended::AsAsked;
                        }
                        None => {
                            self.halt(Halt::Abandoned);
                            return Ended::WriterLost;
                        }
                    }
                }
                n = self.fast_rx.recv_many(&mut fast, BATCH), if shutdown.is_none() => {
                    if n == 0 {
                        let (tx, _) = oneshot::channel();
                        shutdown = Some(tx);
                    }
                }
                n = self.rx.recv_many(&mut batch, BATCH), if taking => {
                    if n == 0 {
                        // Every handle dropped: finish what is in flight.
                        let (tx, _) = oneshot::channel();
                        shutdown = Some(tx);
                    }
                }
                () = timer, if shutdown.is_none() => {}
            }
            let now = self.clock.now_ms();
            // Relays first, in a turn of their own: nothing of theirs is
            // logged and the queue is untouched, so it is quick.
            while fast.len() < BATCH {
                match self.fast_rx.try_recv() {
                    Ok(cmd) => fast.push(cmd),
                    Err(_) => break,
                }
            }
            if !fast.is_empty() {
                for cmd in fast.drain(..) {
                    if let OperatorCommand::Message { conn, message } = cmd {
                        self.sb.handle(now, Input::Message { conn, message });
                    }
                }
                self.turn();
            }
            for cmd in batch.drain(..) {
                let input = match cmd {
                    OperatorCommand::Connect {
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
                    OperatorCommand::Message { conn, message } => Input::Message { conn, message },
                    OperatorCommand::Disconnect { conn } => {
                        self.gone(conn);
                        Input::Disconnect { conn }
                    }
                    OperatorCommand::SignOut { conn } => {
                        self.gone(conn);
                        Input::SignOut { conn }
                    }
                    OperatorCommand::Snapshot(reply) => {
                        let _ = reply.send(self.sb.account_states());
                        continue;
                    }
                    OperatorCommand::Shutdown(done) => {
                        shutdown = Some(done);
                        continue;
                    }
                };
                self.sb.handle(now, input);
            }
            if shutdown.is_none() && self.sb.poll_timeout().is_some_and(|t| t <= now) {
                self.sb.handle(now, Input::Timeout);
            }
            // Drained once per turn: queue updates go out once for all of
            // the turn's changes.
            self.turn();
            self.publish_stats();
        }
    }

    /// Routes what the switchboard produced, hands the events to the
    /// writer and delivers what may go now. Connections found too slow
    /// while delivering are reported to the switchboard, until quiet.
    fn turn(&mut self) {
        loop {
            let outputs = self.drain();
            if let Some(batch) = self.dispatch.route(outputs) {
                // The writer ends only after the operator (or on a halt, which
                // the operator hears next): a closed channel loses nothing
                // anyone was told.
                let _ = self.log_tx.send(batch);
            }
            self.deliver_ready();
            if self.lost.is_empty() {
                return;
            }
            let now = self.clock.now_ms();
            for conn in std::mem::take(&mut self.lost) {
                self.sb.handle(now, Input::Disconnect { conn });
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

    /// The connection's task has ended: nothing more is written to it.
    fn gone(&mut self, conn: ConnId) {
        self.outboxes.remove(&conn);
        self.dispatch.forget(conn);
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

    fn deliver_ready(&mut self) {
        for (conn, out) in self.dispatch.take_ready() {
            let closing = matches!(out, Outbound::Close { .. });
            let Some(outbox) = self.outboxes.get(&conn) else {
                continue;
            };
            match outbox.try_send(out) {
                Ok(()) if closing => self.gone(conn),
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) if closing => self.gone(conn),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%conn, "connection is not reading its messages; dropping it so it reconnects");
                    self.stats.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    // Dropping the sender closes the outbox; the task then ends.
                    self.gone(conn);
                    self.lost.push(conn);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    // The task has ended; its Disconnect is on its way.
                    self.gone(conn);
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
        for (slot, n) in self
            .stats
            .waiting_by_urgency
            .iter()
            .zip(self.sb.waiting_by_urgency())
        {
            slot.store(n, Ordering::Relaxed);
        }
        self.stats
            .clinicians_available
            .store(self.sb.clinicians_available(), Ordering::Relaxed);
    }
}

/// Events in one transaction at most (a burst after an outage is written
/// in several), so that no commit keeps the first batch of its group
/// waiting long (on PostgreSQL each event is two round trips).
const GROUP_EVENTS: usize = 2_048;

/// The log writer: commits the operator's batches in order, each transaction
/// taking every batch that queued up while the last one was committing.
struct Writer<L> {
    log: L,
    stats: Arc<OperatorStats>,
    stopped: watch::Receiver<bool>,
    /// Requests, escalations and answer times for the metrics, counted
    /// once durable.
    meter: ConsultMeter,
}

impl<L: SessionLog> Writer<L> {
    async fn run(
        mut self,
        mut batches: mpsc::UnboundedReceiver<LogBatch>,
        done: mpsc::UnboundedSender<Result<u64, Halt>>,
    ) {
        let mut events = Vec::new();
        while let Some(first) = batches.recv().await {
            let mut seq = first.seq;
            events.clear();
            events.extend(first.events);
            while events.len() < GROUP_EVENTS {
                match batches.try_recv() {
                    Ok(more) => {
                        seq = more.seq;
                        events.extend(more.events);
                    }
                    Err(_) => break,
                }
            }
            let result = self.write(&events).await.map(|()| seq);
            if result.is_ok() {
                self.meter.observe(&self.stats.metrics, &events);
            }
            let halted = result.is_err();
            if done.send(result).is_err() || halted {
                return;
            }
        }
    }

    /// Writes events, retrying until the database takes them. Nothing that
    /// depends on them is delivered meanwhile: a log that cannot be written
    /// holds back every transition rather than let clients run ahead of the
    /// record.
    async fn write(&mut self, events: &[Event]) -> Result<(), Halt> {
        let mut delay = Duration::from_millis(50);
        let mut attempts = 0u32;
        let mut stopped = self.stopped.clone();
        loop {
            let started = std::time::Instant::now();
            let written = tokio::select! {
                written = self.log.record(events) => written,
                // Standing down while a write hangs (the database cut
                // off): the write is abandoned, and nothing of it is
                // delivered. If it did commit, the log holds more than
                // anyone was told, which is safe.
                _ = stopped.wait_for(|stop| *stop) => return Err(Halt::Abandoned),
            };
            match written {
                Ok(()) => {
                    self.stats
                        .metrics
                        .log_write_seconds
                        .observe(started.elapsed().as_secs_f64());
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
                        Box::pin(self.write(std::slice::from_ref(e))).await?;
                    }
                    return Ok(());
                }
                Err(StoreError::Invalid(why)) => {
                    // A bug, not an outage: keep the event in the server log
                    // so that nothing is lost, and carry on.
                    let json = serde_json::to_string(&events[0]).unwrap_or_default();
                    tracing::error!(%why, event = %json, "session log refused an event; it is kept here");
                    self.stats.log_failures.fetch_add(1, Ordering::Relaxed);
                    self.stats.metrics.log_write_failures_total.inc();
                    return Ok(());
                }
                Err(e) => {
                    attempts += 1;
                    self.stats.log_ok.store(false, Ordering::Relaxed);
                    self.stats.log_failures.fetch_add(1, Ordering::Relaxed);
                    self.stats.metrics.log_write_failures_total.inc();
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
}
