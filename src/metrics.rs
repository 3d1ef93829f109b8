//! Metrics for the trust's Prometheus (`--metrics-listen ADDR`).
//!
//! One [`Metrics`] per process, with its own registry (no globals), served
//! as Prometheus text at `http://ADDR/metrics` on a listener of its own, so
//! that it is never reachable on the public port. The same listener answers
//! `/healthz` with every detail (counts, version), which the public
//! `/healthz` shows only to signed-in admins.
//!
//! Where each figure comes from:
//! * connections by role: the WebSocket tasks (`http/ws.rs`), a guard per
//!   connection;
//! * waiting requests, calls, available clinicians: the operator's latest turn
//!   ([`crate::operator::OperatorStats`]), read at scrape time;
//! * requests, escalations and answer times: the log writer, from events
//!   once they are durable ([`ConsultMeter`]), so a figure never counts
//!   what the log does not hold; test calls are counted apart;
//! * log commits and failures: the log writer;
//! * leader: the leadership's role at scrape time;
//! * process: `/proc/self` at scrape time ([`ProcessCollector`]).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use signalling::{ConsultEvent, EscalationLevel, Event, Millis, RequestId, Role, Urgency};
use std::collections::HashMap;
use std::sync::atomic::AtomicI64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RoleLabel {
    station,
    clinician,
    manager,
    admin,
}

impl From<Role> for RoleLabel {
    fn from(r: Role) -> Self {
        match r {
            Role::Station => RoleLabel::station,
            Role::Clinician => RoleLabel::clinician,
            Role::Manager => RoleLabel::manager,
            Role::Admin => RoleLabel::admin,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum UrgencyLabel {
    immediate,
    urgent,
    routine,
}

impl From<Urgency> for UrgencyLabel {
    fn from(u: Urgency) -> Self {
        match u {
            Urgency::Immediate => UrgencyLabel::immediate,
            Urgency::Urgent => UrgencyLabel::urgent,
            Urgency::Routine => UrgencyLabel::routine,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LevelLabel {
    /// Every available clinician alerted again.
    realerted,
    /// Duty holders alerted, even if busy.
    escalated,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByRole {
    pub role: RoleLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByUrgency {
    pub urgency: UrgencyLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByUrgencyAndLevel {
    pub urgency: UrgencyLabel,
    pub level: LevelLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByTable {
    pub table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

/// A plain fn (not a closure) so that the family's type can be named.
fn answer_histogram() -> Histogram {
    Histogram::new(ANSWER_BUCKETS.iter().copied())
}

/// Request-to-answer buckets, in seconds: the default answer targets (2, 5
/// and 15 minutes) and their re-alert points are edges, so "answered within
/// target" is a bucket count.
const ANSWER_BUCKETS: &[f64] = &[
    5.0, 10.0, 15.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 240.0, 300.0, 450.0, 600.0, 900.0,
    1200.0, 1800.0, 3600.0,
];

/// Session-log commit buckets, in seconds: 0.25 ms to about 4 s.
const LOG_WRITE_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096,
];

/// Every metric of the process. Cheap to share (`Arc`); the handles are
/// atomics inside.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections: Family<ByRole, Gauge>,
    pub requests_waiting: Family<ByUrgency, Gauge>,
    pub calls_active: Gauge,
    pub clinicians_available: Gauge,
    pub answer_seconds: Family<ByUrgency, Histogram, fn() -> Histogram>,
    pub requests_total: Family<ByUrgency, Counter>,
    pub escalations_total: Family<ByUrgencyAndLevel, Counter>,
    pub test_calls_total: Counter,
    pub log_write_seconds: Histogram,
    pub log_write_failures_total: Counter,
    pub leader: Gauge,
    pub retention_deleted_total: Family<ByTable, Counter>,
    /// Expiry of the certificate served (seconds since 1970); absent
    /// without TLS.
    pub tls_expiry: Option<std::sync::Arc<AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(None)
    }
}

impl Metrics {
    /// `tls_expiry`: the served certificate's expiry, kept current by the
    /// reloader (`src/tls.rs`).
    pub fn new(tls_expiry: Option<std::sync::Arc<AtomicI64>>) -> Metrics {
        let mut registry = Registry::default();
        let connections = Family::<ByRole, Gauge>::default();
        registry.register(
            "miulink_connections",
            "Open signalling connections (WebSockets), by the role of the account",
            connections.clone(),
        );
        // Every role present from the start, at 0, so that a dashboard
        // shows "no clinicians connected" rather than no data.
        for role in [Role::Station, Role::Clinician, Role::Manager, Role::Admin] {
            let _ = connections.get_or_create(&ByRole { role: role.into() });
        }
        let requests_waiting = Family::<ByUrgency, Gauge>::default();
        registry.register(
            "miulink_requests_waiting",
            "Consult requests waiting in the queue, by urgency (test calls included)",
            requests_waiting.clone(),
        );
        for u in Urgency::ALL {
            let _ = requests_waiting.get_or_create(&ByUrgency { urgency: u.into() });
        }
        let calls_active = Gauge::default();
        registry.register(
            "miulink_calls_active",
            "Calls in progress",
            calls_active.clone(),
        );
        let clinicians_available = Gauge::default();
        registry.register(
            "miulink_clinicians_available",
            "Clinicians connected, available and free: who would be rung now",
            clinicians_available.clone(),
        );
        let answer_seconds: Family<ByUrgency, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(answer_histogram);
        registry.register(
            "miulink_answer_seconds",
            "Time from request to answer, by urgency (test calls left out)",
            answer_seconds.clone(),
        );
        let requests_total = Family::<ByUrgency, Counter>::default();
        registry.register(
            "miulink_requests",
            "Consult requests made, by urgency (test calls left out)",
            requests_total.clone(),
        );
        let escalations_total = Family::<ByUrgencyAndLevel, Counter>::default();
        registry.register(
            "miulink_escalations",
            "Unanswered requests escalated, by urgency and level (realerted: every available \
             clinician alerted again; escalated: duty holders alerted)",
            escalations_total.clone(),
        );
        for u in Urgency::ALL {
            let _ = requests_total.get_or_create(&ByUrgency { urgency: u.into() });
            let _ = answer_seconds.get_or_create(&ByUrgency { urgency: u.into() });
            for level in [LevelLabel::realerted, LevelLabel::escalated] {
                let _ = escalations_total.get_or_create(&ByUrgencyAndLevel {
                    urgency: u.into(),
                    level,
                });
            }
        }
        let test_calls_total = Counter::default();
        registry.register(
            "miulink_test_calls",
            "Test calls placed (monitoring probes, stations' test calls)",
            test_calls_total.clone(),
        );
        let log_write_seconds = Histogram::new(LOG_WRITE_BUCKETS.iter().copied());
        registry.register(
            "miulink_log_write_seconds",
            "Time to commit one group of session-log events (successful commits)",
            log_write_seconds.clone(),
        );
        let log_write_failures_total = Counter::default();
        registry.register(
            "miulink_log_write_failures",
            "Session-log commits that failed (each is retried; see the server log)",
            log_write_failures_total.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "miulink_leader",
            "1 while this instance leads (owns the switchboard), 0 on a standby",
            leader.clone(),
        );
        let retention_deleted_total = Family::<ByTable, Counter>::default();
        registry.register(
            "miulink_retention_deleted_rows",
            "Rows deleted by the retention job (--retention-days), by table",
            retention_deleted_total.clone(),
        );
        registry.register(
            "miulink_build",
            "The running version",
            Info::new(Version {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            }),
        );
        if let Some(expiry) = &tls_expiry {
            registry.register_collector(Box::new(TlsExpiry(expiry.clone())));
        }
        registry.register_collector(Box::new(ProcessCollector::new()));
        Metrics {
            registry,
            connections,
            requests_waiting,
            calls_active,
            clinicians_available,
            answer_seconds,
            requests_total,
            escalations_total,
            test_calls_total,
            log_write_seconds,
            log_write_failures_total,
            leader,
            retention_deleted_total,
            tls_expiry,
        }
    }

    /// Counts one open connection of this role until the guard is dropped.
    pub fn connection(&self, role: Role) -> ConnectionGuard {
        let gauge = self
            .connections
            .get_or_create(&ByRole { role: role.into() })
            .clone();
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// The Prometheus text exposition (format 0.0.4), as every Prometheus
    /// version reads it.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    /// The content type of [`Metrics::encode`]'s output.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
}

/// Decrements its connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Turns durable consult events into requests, escalations and answer
/// times. Knows each open request's urgency and request time, from its
/// `requested` event or, for requests open across a restart, from the
/// switchboard's restored state ([`ConsultMeter::seed`]).
#[derive(Debug, Default)]
pub struct ConsultMeter {
    open: HashMap<RequestId, (Urgency, Millis, bool)>,
}

impl ConsultMeter {
    /// A request that was already open (restored from the log): its answer
    /// is timed from its original request.
    pub fn seed(&mut self, id: RequestId, urgency: Urgency, requested_at: Millis, test: bool) {
        self.open.insert(id, (urgency, requested_at, test));
    }

    /// Counts what these durable events tell.
    pub fn observe(&mut self, metrics: &Metrics, events: &[Event]) {
        for e in events {
            let Event::Consult {
                request_id,
                at,
                event,
            } = e
            else {
                continue;
            };
            match event {
                ConsultEvent::Requested {
                    urgency, test_call, ..
                } => {
                    self.open.insert(*request_id, (*urgency, *at, *test_call));
                    if *test_call {
                        metrics.test_calls_total.inc();
                    } else {
                        metrics
                            .requests_total
                            .get_or_create(&ByUrgency {
                                urgency: (*urgency).into(),
                            })
                            .inc();
                    }
                }
                ConsultEvent::Escalated { level, .. } => {
                    if let Some(&(urgency, _, false)) = self.open.get(request_id) {
                        metrics
                            .escalations_total
                            .get_or_create(&ByUrgencyAndLevel {
                                urgency: urgency.into(),
                                level: match level {
                                    EscalationLevel::Realerted => LevelLabel::realerted,
                                    EscalationLevel::Escalated => LevelLabel::escalated,
                                },
                            })
                            .inc();
                    }
                }
                ConsultEvent::Accepted { .. } => {
                    if let Some((urgency, requested_at, test)) = self.open.remove(request_id) {
                        if !test {
                            let waited = (*at - requested_at).max(0) as f64 / 1000.0;
                            metrics
                                .answer_seconds
                                .get_or_create(&ByUrgency {
                                    urgency: urgency.into(),
                                })
                                .observe(waited);
                        }
                    }
                }
                ConsultEvent::Cancelled | ConsultEvent::Abandoned => {
                    self.open.remove(request_id);
                }
                _ => {}
            }
        }
    }
}

/// `miulink_tls_certificate_expiry_timestamp_seconds`, read at scrape time.
#[derive(Debug)]
struct TlsExpiry(std::sync::Arc<AtomicI64>);

impl Collector for TlsExpiry {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let value = ConstGauge::new(self.0.load(std::sync::atomic::Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "miulink_tls_certificate_expiry_timestamp_seconds",
            "When the HTTPS certificate in use expires (seconds since 1970)",
            None,
            value.metric_type(),
        )?;
        value.encode(metric)
    }
}

/// The standard `process_*` metrics, from `/proc/self` (Linux; elsewhere
/// nothing is reported).
#[derive(Debug)]
pub struct ProcessCollector {
    /// Clock ticks per second and page size, for `/proc/self/stat`.
    ticks: f64,
    page: f64,
    boot_time: Option<f64>,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        // Linux's USER_HZ is 100 and pages are 4 KiB on every platform
        // this runs on; sysconf would need libc for two constants.
        ProcessCollector {
            ticks: 100.0,
            page: 4096.0,
            boot_time: boot_time(),
        }
    }

    fn read(&self) -> Option<ProcessFigures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state); utime is field 14, stime 15,
        // num_threads 20, starttime 22, vsize 23, rss 24.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu = (field(14)? + field(15)?) / self.ticks;
        let start = self
            .boot_time
            .map(|b| b + field(22).unwrap_or(0.0) / self.ticks);
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as i64)
            .ok();
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|v| v.parse::<i64>().ok())
            });
        Some(ProcessFigures {
            cpu,
            threads: field(20).unwrap_or(0.0) as i64,
            start,
            virtual_bytes: field(23).unwrap_or(0.0) as i64,
            resident_bytes: (field(24).unwrap_or(0.0) * self.page) as i64,
            open_fds,
            max_fds,
        })
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        ProcessCollector::new()
    }
}

struct ProcessFigures {
    cpu: f64,
    threads: i64,
    start: Option<f64>,
    virtual_bytes: i64,
    resident_bytes: i64,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = self.read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu);
        let m = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(m)?;
        let mut gauge = |name: &str, help: &str, value: i64| -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(value);
            let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(m)
        };
        gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            p.resident_bytes,
        )?;
        gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            p.virtual_bytes,
        )?;
        gauge("process_threads", "Number of OS threads", p.threads)?;
        if let Some(n) = p.open_fds {
            gauge("process_open_fds", "Number of open file descriptors", n)?;
        }
        if let Some(n) = p.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors",
                n,
            )?;
        }
        if let Some(start) = p.start {
            let g = ConstGauge::new(start);
            let m = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signalling::{CallId, Party, UserId};

    fn consult(id: u64, at: Millis, event: ConsultEvent) -> Event {
        Event::Consult {
            request_id: RequestId(id),
            at,
            event,
        }
    }

    fn requested(urgency: Urgency, test_call: bool) -> ConsultEvent {
        ConsultEvent::Requested {
            station: Party {
                user_id: UserId(1),
                display_name: "Room".into(),
                site: None,
            },
            urgency,
            reason: "x".into(),
            patient_ref: None,
            test_call,
        }
    }

    fn accepted() -> ConsultEvent {
        ConsultEvent::Accepted {
            call_id: CallId(1),
            clinician: Party {
                user_id: UserId(2),
                display_name: "Dr".into(),
                site: None,
            },
        }
    }

    fn line(m: &Metrics, name: &str) -> String {
        let text = m.encode();
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
            .to_owned()
    }

    #[test]
    fn durable_events_become_requests_escalations_and_answer_times() {
        let m = Metrics::default();
        let mut meter = ConsultMeter::default();
        // Open before a restart: timed from its original request.
        meter.seed(RequestId(1), Urgency::Immediate, 0, false);
        meter.observe(
            &m,
            &[
                consult(2, 1_000, requested(Urgency::Urgent, false)),
                consult(3, 1_000, requested(Urgency::Urgent, true)),
                consult(
                    2,
                    151_000,
                    ConsultEvent::Escalated {
                        level: EscalationLevel::Realerted,
                        notified: vec![],
                    },
                ),
                consult(1, 90_000, accepted()),
                consult(2, 200_000, accepted()),
                consult(3, 2_000, accepted()),
            ],
        );
        assert_eq!(
            line(&m, "miulink_requests_total{urgency=\"urgent\"}"),
            "miulink_requests_total{urgency=\"urgent\"} 1",
            "the test call is counted apart"
        );
        assert_eq!(
            line(&m, "miulink_test_calls_total"),
            "miulink_test_calls_total 1"
        );
        assert_eq!(
            line(
                &m,
                "miulink_escalations_total{urgency=\"urgent\",level=\"realerted\"}"
            ),
            "miulink_escalations_total{urgency=\"urgent\",level=\"realerted\"} 1"
        );
        assert_eq!(
            line(&m, "miulink_answer_seconds_sum{urgency=\"immediate\"}"),
            "miulink_answer_seconds_sum{urgency=\"immediate\"} 90.0",
            "a restored request is timed from when it was made"
        );
        assert_eq!(
            line(&m, "miulink_answer_seconds_sum{urgency=\"urgent\"}"),
            "miulink_answer_seconds_sum{urgency=\"urgent\"} 199.0"
        );
        assert_eq!(
            line(&m, "miulink_answer_seconds_count{urgency=\"urgent\"}"),
            "miulink_answer_seconds_count{urgency=\"urgent\"} 1",
            "test calls are not timed"
        );
        assert!(meter.open.is_empty(), "answered requests are forgotten");
    }

    #[test]
    fn each_connection_counts_until_it_ends() {
        let m = Metrics::default();
        let a = m.connection(Role::Clinician);
        let b = m.connection(Role::Clinician);
        assert_eq!(
            line(&m, "miulink_connections{role=\"clinician\"}"),
            "miulink_connections{role=\"clinician\"} 2"
        );
        drop(a);
        drop(b);
        assert_eq!(
            line(&m, "miulink_connections{role=\"clinician\"}"),
            "miulink_connections{role=\"clinician\"} 0"
        );
    }
}
