//! The whole response-time dashboard (`GET /api/reports`) over a million
//! consults, next to one plain aggregate query over the same table (the
//! floor), measured in the same process: on SQLite, then on a real
//! PostgreSQL started here (`tests/common/postgres.rs`: `initdb` and
//! `pg_ctl` in a temporary directory, on disk).
//!
//! ```sh
//! cargo bench --bench reports
//! ```
//!
//! Environment (all optional):
//! * `MIULINK_BENCH_CONSULTS` (default 1,000,000) and `MIULINK_BENCH_DAYS`
//!   (default 365): the synthetic history (`miulink seed`).
//! * `MIULINK_BENCH_RUNS` (default 31): timed rounds per case; medians reported.
//! * `MIULINK_BENCH_BACKENDS` (default `sqlite,postgres`): which to measure.
//! * `MIULINK_BENCH_DB`: a SQLite database file to use and keep (seeded only if it
//!   holds fewer consults than asked for), to skip seeding on a rerun.
//!
//! Prints a Markdown table for BENCHMARKS.md.

use miulink::reports::{self, Preset, ReportQuery};
use miulink::store::{AccountFlags, ConsultFilter, NewUser, Store};
use miulink::{Application, Settings};
use signalling::Role;
use std::time::{Duration, Instant};

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Case {
    name: String,
    median: Duration,
    min: Duration,
    floor_median: Duration,
    /// Median over rounds of (this run / the floor run next to it).
    ratio: f64,
    requests: u64,
}

/// Times `f` and the floor query `floor` alternately, `runs` rounds, so
/// that both see the same load on a shared machine; reports medians and
/// the median of the per-round ratios.
async fn time_it<F, Fut, G, Gut>(name: &str, runs: usize, mut f: F, mut floor: G) -> Case
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
    G: FnMut() -> Gut,
    Gut: std::future::Future<Output = u64>,
{
    // Two untimed rounds first (caches, connections).
    for _ in 0..2 {
        f().await;
        floor().await;
    }
    let mut times = Vec::with_capacity(runs);
    let mut floors = Vec::with_capacity(runs);
    let mut ratios = Vec::with_capacity(runs);
    let mut requests = 0;
    for _ in 0..runs {
        let start = Instant::now();
        floor().await;
        let fl = start.elapsed();
        let start = Instant::now();
        requests = f().await;
        let t = start.elapsed();
        times.push(t);
        floors.push(fl);
        ratios.push(t.as_secs_f64() / fl.as_secs_f64().max(1e-9));
    }
    ratios.sort_by(f64::total_cmp);
    Case {
        name: name.to_owned(),
        min: *times.iter().min().unwrap_or(&Duration::ZERO),
        median: median(times),
        floor_median: median(floors),
        ratio: ratios[ratios.len() / 2],
        requests,
    }
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let consults: u64 = env_or("MIULINK_BENCH_CONSULTS", 1_000_000);
    let days: u32 = env_or("MIULINK_BENCH_DAYS", 365);
    let runs: usize = env_or("MIULINK_BENCH_RUNS", 31);
    let backends =
        std::env::var("MIULINK_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let dir = tempfile::tempdir()?;
    for backend in backends.split(',').map(str::trim) {
        let (url, file) = match backend {
            "sqlite" => {
                let path = match std::env::var("MIULINK_BENCH_DB") {
                    Ok(p) => std::path::PathBuf::from(p),
                    Err(_) => dir.path().join("bench.db"),
                };
                (format!("sqlite://{}", path.display()), Some(path))
            }
            "postgres" => (postgres::Cluster::shared().fresh_database().await, None),
            other => anyhow::bail!(
                "MIULINK_BENCH_BACKENDS: unknown backend {other:?} (use sqlite and/or postgres)"
            ),
        };
        println!("\n## {backend}\n");
        bench_backend(&url, file.as_deref(), consults, days, runs).await?;
    }
    Ok(())
}

/// Seeds (if needed) and measures the database at `url`; `file` is the
/// SQLite file, for its size.
async fn bench_backend(
    url: &str,
    file: Option<&std::path::Path>,
    consults: u64,
    days: u32,
    runs: usize,
) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let all = ConsultFilter {
        include_test_calls: true,
        ..ConsultFilter::default()
    };
    let have = store.consult_count(&all).await?;
    if have < consults as i64 {
        println!(
            "seeding {consults} consults over {days} days into {}",
            miulink::store::redact_url(url)
        );
        let start = Instant::now();
        let summary = miulink::seed::seed(
            &store,
            &miulink::seed::SeedOptions {
                consults,
                days,
                end: chrono::Utc::now().timestamp_millis(),
                rng_seed: 1,
                timezone: chrono_tz::Europe::London,
            },
        )
        .await?;
        let took = start.elapsed();
        println!(
            "seeded {} consults (with their events, and the report cache) in {:.1} s: {:.0} consults/s",
            summary.consults,
            took.as_secs_f64(),
            summary.consults as f64 / took.as_secs_f64()
        );
    }
    let total = store.consult_count(&all).await?;
    match file.and_then(|f| std::fs::metadata(f).ok()) {
        Some(m) => println!("database: {total} consults, {:.0} MB", m.len() as f64 / 1e6),
        None => println!("database: {total} consults"),
    }

    // The report cache from cold: every day rebuilt from the consults table.
    store.clear_report_cache().await?;
    let start = Instant::now();
    let built = reports::refresh_cache(&store).await?;
    let cold = start.elapsed();
    println!(
        "report cache rebuilt from cold: {built} days in {:.0} ms",
        ms(cold)
    );

    // The server, as a manager's browser reaches it.
    let mut settings = Settings::for_tests(url.to_owned());
    settings.listen = "127.0.0.1:0".into();
    // The first start's admin password file goes here, not into the
    // current directory.
    let data_dir = tempfile::tempdir()?;
    settings.data_dir = Some(data_dir.path().to_owned());
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let hash = miulink::auth::hash_password("bench-password-1").map_err(anyhow::Error::msg)?;
    if store.user_by_username("bench-manager").await?.is_none() {
        store
            .create_user(NewUser {
                username: "bench-manager",
                display_name: "Bench",
                role: Role::Manager,
                site: None,
                password_hash: &hash,
                flags: AccountFlags::default(),
                must_change_password: false,
                now: 0,
            })
            .await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({"username": "bench-manager", "password": "bench-password-1", "want_token": true}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["token"].as_str().unwrap_or_default().to_owned();

    let get = |query: &'static str| {
        let client = client.clone();
        let token = token.clone();
        let base = base.clone();
        move || {
            let client = client.clone();
            let token = token.clone();
            let url = format!("{base}/api/reports{query}");
            async move {
                let res = client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("report request");
                assert!(res.status().is_success(), "report: {}", res.status());
                let body: serde_json::Value = res.json().await.expect("report json");
                body["headline"]["requests"].as_u64().unwrap_or(0)
            }
        }
    };

    // The floor: one plain aggregate over the same table and period.
    let floor = |from: i64, to: i64| {
        let store = store.clone();
        move || {
            let store = store.clone();
            async move {
                let n = store.plain_aggregate(from, to).await.expect("floor query");
                n as u64
            }
        }
    };
    let now = chrono::Utc::now().timestamp_millis();
    let lt = miulink::reports::local::LocalTime::new(chrono_tz::Europe::London);
    let range = |p: Preset| p.range(&lt, now).unwrap_or((0, i64::MAX));
    let (f30, t30) = range(Preset::Last30Days);
    let (fq, tq) = range(Preset::ThisQuarter);

    let mut cases = Vec::new();
    cases.push(
        time_it(
            "whole history (every consult)",
            runs,
            get(""),
            floor(0, i64::MAX),
        )
        .await,
    );
    cases.push(
        time_it(
            "last 30 days",
            runs,
            get("?period=last_30_days"),
            floor(f30, t30),
        )
        .await,
    );
    cases.push(
        time_it(
            "this quarter",
            runs,
            get("?period=this_quarter"),
            floor(fq, tq),
        )
        .await,
    );
    cases.push(
        time_it(
            "whole history, one station",
            runs,
            get("?station=Millom%20MIU%20Room%201"),
            floor(0, i64::MAX),
        )
        .await,
    );
    // Live use: a consult of the latest day changes before every report,
    // so that day is rebuilt from the consults table each time.
    let touched = store.clone();
    let whole = get("");
    cases.push(
        time_it(
            "whole history, latest day changed before each report",
            runs,
            || {
                let store = touched.clone();
                let report = whole();
                async move {
                    store.touch_latest_consult().await.expect("touch");
                    report.await
                }
            },
            floor(0, i64::MAX),
        )
        .await,
    );

    // In process, without HTTP and JSON: where the time goes.
    let settings = miulink::reports::ReportSettings::default();
    let q = ReportQuery::default();
    cases.push(
        time_it(
            "in process: read and unpack the cache (whole history)",
            runs,
            || {
                let store = store.clone();
                async move {
                    reports::load_chunks(&store, None, None)
                        .await
                        .expect("chunks")
                        .len() as u64
                }
            },
            floor(0, i64::MAX),
        )
        .await,
    );
    let chunks = std::sync::Arc::new(reports::load_chunks(&store, None, None).await?);
    for (name, threads) in [
        (
            "in process: compute every figure, 1 thread (whole history)",
            1,
        ),
        (
            "in process: compute every figure, as served (whole history)",
            0,
        ),
    ] {
        cases.push(
            time_it(
                name,
                runs,
                || {
                    let chunks = chunks.clone();
                    let settings = settings.clone();
                    let q = q.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let r = if threads == 0 {
                                reports::compute::compute(&chunks, &q, &settings, now)
                            } else {
                                reports::compute::compute_on(&chunks, &q, &settings, now, threads)
                            };
                            r.headline.requests
                        })
                        .await
                        .expect("compute")
                    }
                },
                floor(0, i64::MAX),
            )
            .await,
        );
    }

    let _ = stop.send(());
    let _ = server.await;

    println!();
    println!(
        "{total} consults over {days} days; {runs} rounds per case, each timing the case and the floor \
         (COUNT/AVG/MAX over the consults table for the same period) back to back; \
         cache rebuilt from cold in {:.1} s",
        cold.as_secs_f64()
    );
    println!();
    println!("| case | requests counted (days, for the cache read) | median | min | floor median | case / floor (median of rounds) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for c in &cases {
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} |",
            c.name,
            c.requests,
            ms(c.median),
            ms(c.min),
            ms(c.floor_median),
            c.ratio
        );
    }
    store.close().await;
    Ok(())
}
