//! A burst of bad logins against the real server binary: its memory, and
//! how long a real user's login takes meanwhile (issue 10, finding 2).
//!
//! `cargo bench --bench login_burst` (or `-- --rounds 10 --burst 100`)
//!
//! The server runs as its own process on a fresh database. Each round fires
//! `--burst` concurrent logins with wrong passwords, and during it one real
//! user logs in from another address. Two kinds of burst:
//! * from one address (one attacker): the throttle turns most away before
//!   any password is checked;
//! * from as many addresses as logins (a distributed attack, every address
//!   fresh): the bound on concurrent password checks is what holds.
//!
//! The baseline is the same real login with no burst, in the same run.
//! Memory is the server's VmRSS before, and its peak (VmHWM) at the end.

use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-login-password";

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn client_from(addr: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(addr))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> (u16, f64) {
    let started = Instant::now();
    let status = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (status, started.elapsed().as_secs_f64() * 1000.0)
}

/// As the sign-in page does: on 503 or 429, wait `Retry-After` and try
/// again (up to 3 times). The status, the whole time, and the retries.
async fn login_as_a_person(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> (u16, f64, u32) {
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let res = client
            .post(format!("{base}/api/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await;
        let (status, wait) = match res {
            Ok(r) => (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1),
            ),
            Err(_) => (0, 1),
        };
        if !(status == 503 || status == 429) || retries == 3 {
            return (status, started.elapsed().as_secs_f64() * 1000.0, retries);
        }
        retries += 1;
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let rounds = arg("--rounds", 10);
    let burst = arg("--burst", 100);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let add = |name: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["--database", &db, "user", "add", "--username", name])
            .args([
                "--display-name",
                name,
                "--role",
                "clinician",
                "--password-stdin",
            ])
            .env("MIULINK_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("miulink user add");
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{PASSWORD}");
        }
        assert!(child.wait().expect("user add").success(), "user add {name}");
    };
    add("dr-real");
    add("dr-target");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut server = Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            &db,
        ])
        .env("MIULINK_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("start miulink");
    let pid = server.id();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for _ in 0..200 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let real = client_from(Ipv4Addr::new(127, 0, 0, 2));
        let mut idle = Vec::new();
        for _ in 0..rounds {
            let (status, ms) = login(&real, &base, "dr-real", PASSWORD).await;
            assert_eq!(status, 200, "the real login works");
            idle.push(ms);
        }
        let (rss_before, _) = memory(pid);
        println!("login burst: {burst} concurrent bad logins per round, {rounds} rounds; server RSS before {rss_before:.1} MiB");
        println!("{:<40} {:>10} {:>10} {:>10}   answers to the burst (HTTP status: count)", "", "real p50", "real max", "ratio");
        println!("{:<40} {:>8.1}ms {:>8.1}ms {:>10}", "no burst (baseline)", median(idle.clone()), idle.iter().cloned().fold(0.0, f64::max), "1.00x");
        let base_median = median(idle);
        let mut next_addr: u32 = 10;
        for (label, distributed) in [("one attacker address", false), ("a fresh address per login", true)] {
            let mut times = Vec::new();
            let mut retried = 0;
            let mut answers = std::collections::BTreeMap::<u16, usize>::new();
            for round in 0..rounds {
                let mut tasks = Vec::new();
                for i in 0..burst {
                    let addr = if distributed {
                        next_addr += 1;
                        let n = next_addr;
                        Ipv4Addr::new(127, 2 + (n / 62_500 % 200) as u8, (n / 250 % 250 + 1) as u8, (n % 250 + 1) as u8)
                    } else {
                        // A new address each round, so that each round
                        // starts the throttle afresh.
                        Ipv4Addr::new(127, 1, round as u8, 1)
                    };
                    let base = base.clone();
                    tasks.push(tokio::spawn(async move {
                        let who = if i % 2 == 0 { "dr-target" } else { "nobody-here" };
                        login(&client_from(addr), &base, who, "wrong-password-guess").await.0
                    }));
                }
                // The real user, a moment into the burst.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let (status, ms, retries) = login_as_a_person(&real, &base, "dr-real").await;
                assert_eq!(status, 200, "the real user gets in during the burst");
                times.push(ms);
                retried += retries;
                for t in tasks {
                    *answers.entry(t.await.unwrap_or(0)).or_default() += 1;
                }
            }
            let max = times.iter().cloned().fold(0.0, f64::max);
            let p50 = median(times);
            println!(
                "{:<40} {:>8.1}ms {:>8.1}ms {:>9.2}x   {:?}; the real user retried {retried} times",
                format!("burst from {label}"),
                p50,
                max,
                p50 / base_median,
                answers
            );
        }
        let (rss_after, peak) = memory(pid);
        println!("server memory: before {rss_before:.1} MiB, after {rss_after:.1} MiB, peak {peak:.1} MiB");
    });
    let _ = server.kill();
    let _ = server.wait();
}
