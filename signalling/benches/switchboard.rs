//! Throughput of the switchboard alone (no IO): inputs per second.
//!
//! `cargo bench -p signalling --bench switchboard`
//!
//! * `signal_relay`: one `signal` input in a live call (the hot path).
//! * `full_consult/N`: a whole consult (request, accept, 20 signals, two
//!   `call_connected`, hang-up, outcome: 26 inputs) with N clinicians and N
//!   stations connected, so the cost of queue broadcasts shows.
//! * `ping`: the cheapest input, as the floor for the per-input overhead.
//! * `decode/signal_6kb`: decoding and validating a browser-sized SDP
//!   `signal` frame (including measuring its data against the size limit),
//!   next to `decode/parse_only_6kb`, plain JSON parsing of the same frame.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use signalling::*;
use std::hint::black_box;

fn identity(user: i64, role: Role) -> Identity {
    Identity {
        user_id: UserId(user),
        username: format!("u{user}"),
        display_name: format!("User {user}"),
        role,
        site: Some("Millom".into()),
        escalation_duty: false,
        monitoring: false,
    }
}

struct Bench {
    sb: Switchboard,
    now: Millis,
    sent: usize,
}

impl Bench {
    fn new(clinicians: i64, stations: i64) -> Self {
        let mut b = Bench {
            sb: Switchboard::new(Config::default(), 1_000),
            now: 1_000,
            sent: 0,
        };
        for c in 0..clinicians {
            b.input(Input::Connect {
                conn: ConnId(1000 + c as u64),
                identity: identity(1000 + c, Role::Clinician),
                ice_servers: vec![],
            });
        }
        for s in 0..stations {
            b.input(Input::Connect {
                conn: ConnId(s as u64 + 1),
                identity: identity(s + 1, Role::Station),
                ice_servers: vec![],
            });
        }
        b
    }

    fn input(&mut self, input: Input) {
        self.now += 1;
        self.sb.handle(self.now, input);
        while let Some(out) = self.sb.poll_output() {
            if let Output::Send { to, .. } = &out {
                self.sent += to.len();
            }
            black_box(out);
        }
    }

    fn msg(&mut self, conn: u64, message: ClientMessage) {
        self.input(Input::Message {
            conn: ConnId(conn),
            message,
        });
    }

    /// One consult from station conn `s` answered by clinician conn `c`.
    fn consult(&mut self, s: u64, c: u64, data: &serde_json::Value) {
        self.msg(
            s,
            ClientMessage::RequestConsult {
                urgency: Urgency::Urgent,
                reason: "Head injury".into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            },
        );
        let request_id = self.sb.queue_entries().last().map(|e| e.request_id);
        let Some(request_id) = request_id else { return };
        self.msg(c, ClientMessage::Accept { request_id });
        // The call id is the next one handed out; find it from the state.
        let call_id = CallId(request_id.0);
        for _ in 0..10 {
            self.msg(
                s,
                ClientMessage::Signal {
                    call_id,
                    data: data.clone().into(),
                },
            );
            self.msg(
                c,
                ClientMessage::Signal {
                    call_id,
                    data: data.clone().into(),
                },
            );
        }
        self.msg(s, ClientMessage::CallConnected { call_id });
        self.msg(c, ClientMessage::CallConnected { call_id });
        self.msg(c, ClientMessage::HangUp { call_id });
        self.msg(
            c,
            ClientMessage::RecordOutcome {
                call_id,
                outcome: Outcome::ManagedLocally,
                note: None,
            },
        );
    }
}

fn candidate() -> serde_json::Value {
    json!({"candidate": {"candidate": "candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sX5h network-cost 999", "sdpMid": "0", "sdpMLineIndex": 0}})
}

fn benches(c: &mut Criterion) {
    let data = candidate();

    let mut group = c.benchmark_group("switchboard");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ping", |b| {
        let mut bench = Bench::new(1, 1);
        b.iter(|| bench.msg(1, ClientMessage::Ping { nonce: Some(1) }));
    });
    group.bench_function("signal_relay", |b| {
        let mut bench = Bench::new(1, 1);
        bench.msg(
            1,
            ClientMessage::RequestConsult {
                urgency: Urgency::Urgent,
                reason: "x".into(),
                patient_ref: None,
                test: false,
                direct_to: None,
            },
        );
        bench.msg(
            1000,
            ClientMessage::Accept {
                request_id: RequestId(1),
            },
        );
        b.iter(|| {
            bench.msg(
                1,
                ClientMessage::Signal {
                    call_id: CallId(1),
                    data: data.clone().into(),
                },
            )
        });
    });
    group.finish();

    let sdp = format!(
        "v=0\r\n{}",
        "a=candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host\r\n".repeat(100)
    );
    // The frame as a client writes it (`type` first, as browsers do too).
    let frame = serde_json::to_string(&ClientMessage::Signal {
        call_id: CallId(1),
        data: json!({"session": "3f9c2a", "description": {"type": "offer", "sdp": sdp}}).into(),
    })
    .expect("a signal as JSON");
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("signal_6kb", |b| {
        b.iter(|| decode(black_box(&frame)).is_ok())
    });
    group.bench_function("parse_only_6kb", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&frame)).is_ok())
    });
    group.finish();

    let mut group = c.benchmark_group("full_consult");
    // 26 inputs per consult.
    group.throughput(Throughput::Elements(26));
    for n in [1i64, 10, 100] {
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut bench = Bench::new(n, n);
            // Call ids and request ids move in step because every request is
            // answered; consult() relies on that.
            b.iter(|| bench.consult(1, 1000, &data));
        });
    }
    group.finish();
}

criterion_group!(switchboard, benches);
criterion_main!(switchboard);
