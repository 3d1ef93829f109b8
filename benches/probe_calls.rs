//! The probe's call set-up time and its memory over many calls.
//!
//! Starts the release `miulink` server as its own process, then runs
//! `--calls` (default 500) complete probe runs one after another in this
//! one process (the same code as `miulink probe`: log in, directed test
//! consult, a real WebRTC call with VP8 video both ways and a data-channel
//! round trip, hang-up). Reports the median accept-to-first-video of the
//! first 20 calls and of all of them, and this process's resident memory
//! along the way: the `webrtc` crate has an open report of a peer
//! connection kept alive after close (webrtc-rs/webrtc #906).
//!
//! ```sh
//! cargo bench --bench probe_calls                 # 500 calls
//! cargo bench --bench probe_calls -- --calls 100
//! ```

use miulink::probe::call::{self, Credentials, ProbeConfig, ProbeRole};
use miulink::probe::client::Server;
use miulink::probe::report::{Status, Step, Thresholds};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "probe-bench-password";

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        f64::NAN
    } else {
        s[s.len() / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let bin = env!("CARGO_BIN_EXE_miulink");
    let dir = tempfile::Builder::new()
        .prefix("miulink-probe-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("miulink.db").display());
    for (user, role, site) in [
        ("probe-station", "station", "Millom"),
        ("probe-clinician", "clinician", "Furness General"),
    ] {
        let mut add = Command::new(bin)
            .args([
                "user",
                "add",
                "--database",
                &db,
                "--username",
                user,
                "--display-name",
                user,
                "--role",
                role,
                "--site",
                site,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("miulink user add");
        if let Some(stdin) = add.stdin.as_mut() {
            let _ = writeln!(stdin, "{PASSWORD}");
        }
        assert!(add.wait().expect("user add").success(), "user add {user}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = Command::new(bin)
        .args(["serve", "--database", &db, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("MIULINK_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("server starts");
    let server_pid = server.id().to_string();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cfg = ProbeConfig {
        server: Server::parse(&format!("http://127.0.0.1:{port}")).expect("url"),
        role: ProbeRole::Both,
        station: Some(Credentials {
            username: "probe-station".into(),
            password: PASSWORD.into(),
        }),
        clinician: Some(Credentials {
            username: "probe-clinician".into(),
            password: PASSWORD.into(),
        }),
        clinician_username: "probe-clinician".into(),
        manager: None,
        thresholds: Thresholds::default(),
        timeout: Duration::from_secs(20),
        answer_wait: Duration::from_secs(20),
        hold: Duration::ZERO,
        udp_bind: None,
    };
    rt.block_on(async {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(started.elapsed() < Duration::from_secs(30), "server up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let me = std::process::id().to_string();
    let mut setup = Vec::new();
    let mut ice = Vec::new();
    let mut dtls = Vec::new();
    let mut rtt = Vec::new();
    let mut failed = 0;
    let mut memory = Vec::new();
    let began = Instant::now();
    println!(
        "calls | probe process RSS MiB | server RSS MiB | median accept->first video ms (last 50)"
    );
    for n in 1..=calls {
        let report = rt.block_on(call::run(&cfg));
        if report.result == Status::Failed {
            failed += 1;
            eprintln!("call {n} failed: {}", report.to_text());
        }
        let get = |step: Step| {
            report
                .steps
                .iter()
                .find(|s| s.step == step)
                .and_then(|s| s.ms)
        };
        if let Some(ms) = get(Step::AcceptToFirstVideo) {
            setup.push(ms);
        }
        ice.extend(get(Step::AcceptToIceConnected));
        dtls.extend(get(Step::AcceptToDtlsConnected));
        rtt.extend(get(Step::DataChannelRtt));
        if n == 1 || n % 50 == 0 || n == calls {
            let (mine, theirs) = (rss_kib(&me), rss_kib(&server_pid));
            let recent = &setup[setup.len().saturating_sub(50)..];
            println!(
                "{n:>5} | {:>8.1} | {:>8.1} | {:>8.1}",
                mine as f64 / 1024.0,
                theirs as f64 / 1024.0,
                median(recent)
            );
            memory.push((n, mine, theirs));
        }
    }
    let first = &setup[..setup.len().min(20)];
    println!();
    println!(
        "{calls} calls in {:.0} s, {failed} failed",
        began.elapsed().as_secs_f64()
    );
    println!(
        "accept -> first video packet (both directions): median of first {} calls {:.1} ms; of all {} calls {:.1} ms",
        first.len(),
        median(first),
        setup.len(),
        median(&setup)
    );
    println!(
        "accept -> ICE connected median {:.1} ms; accept -> DTLS connected median {:.1} ms; data-channel RTT median {:.2} ms",
        median(&ice),
        median(&dtls),
        median(&rtt)
    );
    if let (Some(a), Some(b)) = (memory.get(1).or(memory.first()), memory.last()) {
        println!(
            "probe process RSS: {:.1} MiB after call {}, {:.1} MiB after call {}: {:+.1} KiB per call",
            a.1 as f64 / 1024.0,
            a.0,
            b.1 as f64 / 1024.0,
            b.0,
            (b.1 as f64 - a.1 as f64) / (b.0 - a.0).max(1) as f64
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}
