//! Running it as a trust's IT runs a service: HTTPS of its own (with
//! certificate reloads), the metrics, backups under load, retention, and
//! owner-only database files.

use crate::helpers::tls::{client_trusting, presented, write_replacing, TestCa, HOST};
use crate::helpers::*;
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use signalling::{Role, Urgency};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The real binary with its standard error collected, so a test can read
/// what it logged.
struct Logged {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Logged {
    fn start(args: &[&str]) -> Logged {
        let mut child = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(args)
            .env("MIULINK_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start miulink");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Logged { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until the log holds `text` at least `times` times.
    async fn wait_for_log(&self, text: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.log().matches(text).count() < times {
            assert!(
                Instant::now() < deadline,
                "the server did not log {text:?} ({times}x); it logged:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn hangup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(ok.success());
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate a fresh HTTPS connection is shown.
async fn certificate_now(client: &reqwest::Client, url: &str) -> Vec<u8> {
    presented(&client.get(url).send().await.expect("HTTPS request"))
}

/// A WebSocket over TLS to `HOST` (at 127.0.0.1), trusting only `ca`.
async fn wss(ca: &TestCa, port: u16, token: &str) -> WsClient {
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA");
    roots.add(der).expect("CA added");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let options = miulink_client::Options::new()
        .tls(Arc::new(config))
        .connect_to(([127, 0, 0, 1], port).into());
    WsClient::connect_with(&format!("wss://{HOST}:{port}/ws"), token, options).await
}

/// A ping answered on the socket: it is still open and served.
async fn still_served(ws: &mut WsClient) {
    ws.sync().await;
}

#[tokio::test]
async fn https_is_served_with_its_certificate_and_a_renewal_drops_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.leaf("first");
    let (cert, key) = first.write(dir.path());
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    add_accounts(
        &db,
        &[("room1", "Millom Room 1", Role::Station, Some("Millom"))],
    )
    .await;
    let (port, plain) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let redirect = format!("127.0.0.1:{plain}");
    let server = Logged::start(&[
        "serve",
        "--listen",
        &listen,
        "--database",
        &db,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--redirect-http",
        &redirect,
    ]);
    let client = client_trusting(&ca, port);
    let base = format!("https://{HOST}:{port}");
    let health = format!("{base}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    let res = loop {
        match client.get(&health).send().await {
            Ok(res) => break res,
            Err(e) => {
                assert!(Instant::now() < deadline, "no HTTPS: {e}\n{}", server.log());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(res.status(), 200);
    assert_eq!(presented(&res), first.der, "the certificate it was given");
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000",
        "HSTS on every response over TLS"
    );
    // A client that does not trust the test's CA is refused: this is real
    // TLS, checked by the client.
    let stranger = reqwest::Client::builder()
        .resolve(HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    assert!(stranger.get(&health).send().await.is_err());

    // Signing in over HTTPS gives a Secure cookie without --secure-cookies.
    let res = client
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "room1", "password": PASSWORD, "want_token": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = wss(&ca, port, &token).await;

    // Plain HTTP on --redirect-http is sent to the same place over HTTPS.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_follow
        .get(format!("http://{redirect}/station?from=bookmark"))
        .header("host", format!("{HOST}:80"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(
        res.headers()["location"],
        format!("https://{HOST}:{port}/station?from=bookmark").as_str()
    );

    // Renewed, then SIGHUP: new connections get the new certificate, the
    // open WebSocket carries on.
    let renewed = ca.leaf("renewed");
    renewed.write(dir.path());
    server.hangup();
    server.wait_for_log("TLS certificate reloaded", 1).await;
    assert_eq!(certificate_now(&client, &health).await, renewed.der);
    still_served(&mut ws).await;

    // A certificate that does not match its key is refused, with a clear
    // line in the log, and the previous one stays in use.
    let wrong = ca.leaf("wrong-key");
    write_replacing(&dir.path().join("cert.pem"), &wrong.cert_pem);
    server.hangup();
    server.wait_for_log("new TLS certificate refused", 1).await;
    assert!(
        server.log().contains("does not go with the certificate"),
        "{}",
        server.log()
    );
    assert_eq!(certificate_now(&client, &health).await, renewed.der);

    // An expired one, put in place without a signal: refused when the
    // change is noticed.
    let expired = ca.expired_leaf("expired");
    expired.write(dir.path());
    server.wait_for_log("new TLS certificate refused", 2).await;
    assert!(server.log().contains("expired at"), "{}", server.log());
    assert_eq!(certificate_now(&client, &health).await, renewed.der);

    // A good one put in place without a signal is taken up on its own.
    let third = ca.leaf("third");
    third.write(dir.path());
    server.wait_for_log("TLS certificate reloaded", 2).await;
    assert_eq!(certificate_now(&client, &health).await, third.der);
    still_served(&mut ws).await;
}

#[tokio::test]
async fn a_server_will_not_start_with_a_bad_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf("ok");
    let (cert, key) = leaf.write(dir.path());
    let other = ca.leaf("other");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for (cert, key, says) in [
        (&cert, &other_key, "does not go with the certificate"),
        (&garbage, &key, "holds no certificate"),
        (
            &dir.path().join("missing.pem"),
            &key,
            "cannot read the TLS certificate",
        ),
    ] {
        let mut s =
            miulink::Settings::for_tests(format!("sqlite://{}", dir.path().join("m.db").display()));
        s.tls = Some(miulink::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        });
        let err = match miulink::Application::build(s).await {
            Ok(_) => panic!("started with {cert:?} and {key:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(says), "{err}");
    }
}

/// One scrape of the metrics listener.
async fn scrape(app: &TestApp) -> String {
    let at = app.metrics.expect("metrics listener");
    let res = reqwest::get(format!("http://{at}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    res.text().await.unwrap()
}

/// The value of one series (`name{labels}`, exactly as exposed).
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Scrapes until `name` has `value` (a turn of the operator or a commit may
/// take a moment).
async fn until_series(app: &TestApp, name: &str, value: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(app).await;
        if text.lines().any(|l| {
            l.strip_prefix(name)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                == Some(value)
        }) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_follow_a_consult_on_their_own_listener() {
    let app = TestApp::spawn_with(|s| s.metrics_listen = Some("127.0.0.1:0".into())).await;
    let text = scrape(&app).await;
    for line in [
        "miulink_connections{role=\"station\"} 0",
        "miulink_requests_waiting{urgency=\"urgent\"} 0",
        "miulink_calls_active 0",
        "miulink_leader 1",
        "miulink_log_write_failures_total 0",
        "miulink_requests_total{urgency=\"urgent\"} 0",
        "miulink_escalations_total{urgency=\"urgent\",level=\"escalated\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    for family in [
        "# TYPE miulink_answer_seconds histogram",
        "# TYPE miulink_log_write_seconds histogram",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    // Never on the public port.
    let public = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404);

    let mut station = app.user("room1", "Millom Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    until_series(&app, "miulink_connections{role=\"station\"}", 1.0).await;
    until_series(&app, "miulink_connections{role=\"clinician\"}", 1.0).await;
    until_series(&app, "miulink_clinicians_available", 1.0).await;

    station
        .send(msg::request(Urgency::Urgent, "Wrist injury"))
        .await;
    let waiting = station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let text = until_series(&app, "miulink_requests_waiting{urgency=\"urgent\"}", 1.0).await;
    assert_eq!(
        series(&text, "miulink_requests_total{urgency=\"urgent\"}"),
        1.0
    );
    assert_eq!(
        series(&text, "miulink_requests_waiting{urgency=\"immediate\"}"),
        0.0
    );
    assert!(series(&text, "miulink_log_write_seconds_count") >= 1.0);

    tokio::time::sleep(Duration::from_millis(200)).await;
    doc.send(msg::accept(&waiting["request_id"])).await;
    let start = doc.expect("call_start").await;
    let text = until_series(&app, "miulink_calls_active", 1.0).await;
    assert_eq!(
        series(&text, "miulink_requests_waiting{urgency=\"urgent\"}"),
        0.0
    );
    let text = until_series(
        &app,
        "miulink_answer_seconds_count{urgency=\"urgent\"}",
        1.0,
    )
    .await;
    let waited = series(&text, "miulink_answer_seconds_sum{urgency=\"urgent\"}");
    assert!((0.2..10.0).contains(&waited), "answered after {waited} s");
    assert_eq!(
        series(
            &text,
            "miulink_answer_seconds_bucket{urgency=\"urgent\",le=\"300\"}"
        ),
        1.0,
        "within the urgent target"
    );

    doc.send(msg::hang_up(&start["call_id"])).await;
    doc.expect("call_end").await;
    until_series(&app, "miulink_calls_active", 0.0).await;
    station.close().await;
    until_series(&app, "miulink_connections{role=\"station\"}", 0.0).await;

    // The metrics listener's /healthz has the figures the public one keeps
    // for admins.
    let at = app.metrics.unwrap();
    let health: Value = reqwest::get(format!("http://{at}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 1, "{health}");
    assert!(health["version"].is_string(), "{health}");
}

#[tokio::test]
async fn sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let store = miulink::store::Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.ping().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("new.db-wal");
    assert!(wal.exists(), "WAL mode");
    assert_eq!(
        mode(&wal),
        0o600,
        "SQLite gives the WAL the database's mode"
    );
    store.close().await;

    // One made by someone else, readable by all, is tightened at start.
    let loose = dir.path().join("loose.db");
    std::fs::write(&loose, b"").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = miulink::store::Store::open(&format!("sqlite://{}", loose.display()))
        .await
        .unwrap();
    assert_eq!(mode(&loose), 0o600);
    store.close().await;
}

/// Stations placing and withdrawing requests as fast as the server takes
/// them: every request the server acknowledged (with its id) is sent back
/// on `acked`, with when the acknowledgement came.
async fn keep_requesting(
    base: String,
    ws_url: String,
    station: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
) {
    let token = login_at(&base, &station).await;
    let mut ws = connect_at(&ws_url, &token).await;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        ws.send(msg::request(Urgency::Routine, "Backup load")).await;
        let waiting = ws
            .expect_where("request_update", |v| v["state"] == "waiting")
            .await;
        let id = waiting["request_id"].as_u64().expect("id");
        let _ = acked.send((id, Instant::now()));
        ws.send(msg::cancel(id)).await;
        ws.expect_where("request_update", |v| v["state"] == "cancelled")
            .await;
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_holds_every_acknowledged_consult() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    if crate::helpers::postgres::backend_is_postgres() {
        // PostgreSQL has its own tools; the command says which.
        let url = crate::helpers::postgres::Cluster::shared()
            .fresh_database()
            .await;
        let out = Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["--database", &url, "backup", "--to"])
            .arg(&backup)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!backup.exists());
        return;
    }
    // A database with some history, so the copy takes a moment.
    let db = format!("sqlite://{}", dir.path().join("live.db").display());
    let stations: Vec<String> = (1..=4).map(|i| format!("room{i}")).collect();
    let accounts: Vec<(&str, &str, Role, Option<&str>)> = stations
        .iter()
        .map(|s| (s.as_str(), "Room", Role::Station, Some("Millom")))
        .collect();
    add_accounts(&db, &accounts).await;
    let store = miulink::store::Store::open(&db).await.unwrap();
    miulink::seed::seed(
        &store,
        &miulink::seed::SeedOptions {
            consults: 20_000,
            days: 60,
            end: miulink::clock::Clock::new().now_ms(),
            rng_seed: 7,
            timezone: chrono_tz::Europe::London,
        },
    )
    .await
    .unwrap();
    store.close().await;
    // The stations go as fast as they can: past the per-connection limit
    // their requests would be dropped.
    let server = BinaryServer::on(&db, &["--max-messages-per-second", "100000"]).await;
    let ws_url = format!("ws://127.0.0.1:{}/ws", server.port());

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, mut acked) = tokio::sync::mpsc::unbounded_channel();
    let load: Vec<_> = stations
        .iter()
        .map(|s| {
            tokio::spawn(keep_requesting(
                server.base.clone(),
                ws_url.clone(),
                s.clone(),
                stop.clone(),
                tx.clone(),
            ))
        })
        .collect();
    drop(tx);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The backup, as cron would run it, while the stations carry on.
    let began = Instant::now();
    let out = tokio::task::spawn_blocking({
        let db = db.clone();
        let backup = backup.clone();
        move || {
            Command::new(env!("CARGO_BIN_EXE_miulink"))
                .args(["--database", &db, "backup", "--to"])
                .arg(&backup)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let ended = Instant::now();
    assert!(
        out.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("integrity ok"), "{said}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let mut before = Vec::new();
    let (mut during, mut after) = (0, 0);
    while let Some((id, at)) = acked.recv().await {
        if at < began {
            before.push(id);
        } else if at <= ended {
            during += 1;
        } else {
            after += 1;
        }
    }
    eprintln!(
        "backup under load: took {:.0} ms; {} requests acknowledged before it began, {during} while it ran, {after} after",
        (ended - began).as_secs_f64() * 1000.0,
        before.len()
    );
    assert!(
        before.len() > 20,
        "load before the backup: {}",
        before.len()
    );
    assert!(
        during + after > 0,
        "the stations went on during and after the backup"
    );

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The copy opens on its own and holds every consult acknowledged
    // before the backup began, each with its events.
    let copy = miulink::store::Store::open(&format!("sqlite://{}", backup.display()))
        .await
        .unwrap();
    for id in &before {
        let events = copy.consult_events(*id as i64).await.unwrap();
        assert!(
            !events.is_empty() && events[0].kind == "requested",
            "consult {id}, acknowledged before the backup, is missing from it"
        );
    }
    let counts: std::collections::HashMap<_, _> =
        copy.row_counts().await.unwrap().into_iter().collect();
    assert!(counts["consults"] >= 20_000 + before.len() as i64);
    copy.close().await;
    assert!(
        Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["--database", &db, "backup", "--to"])
            .arg(&backup)
            .output()
            .unwrap()
            .stderr
            .starts_with(b"error: backing up"),
        "an existing backup is never overwritten"
    );

    // Restore refuses while the server runs, then puts the copy back.
    let restore = |db: &str| {
        Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args(["--database", db, "restore", "--from"])
            .arg(&backup)
            .output()
            .unwrap()
    };
    let refused = restore(&db);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(server);
    let restored = restore(&db);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("live.db.replaced-")
        });
    assert!(kept, "the replaced database is kept");
    let back = miulink::store::Store::open(&db).await.unwrap();
    for id in &before {
        assert!(!back.consult_events(*id as i64).await.unwrap().is_empty());
    }
    back.close().await;
}

#[tokio::test]
async fn the_retention_job_deletes_old_closed_consults_and_keeps_the_reports_true() {
    use miulink::store::{ConsultFilter, Store};
    use signalling::{ConsultEvent, Event, Party, PresenceStatus, RequestId, Urgency, UserId};
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::postgres::fresh_database_url(dir.path()).await;
    add_accounts(
        &url,
        &[("room1", "Millom Room 1", Role::Station, Some("Millom"))],
    )
    .await;
    let store = Store::open(&url).await.unwrap();
    let now = miulink::clock::Clock::new().now_ms();
    miulink::seed::seed(
        &store,
        &miulink::seed::SeedOptions {
            consults: 3_000,
            days: 90,
            end: now,
            rng_seed: 11,
            timezone: chrono_tz::Europe::London,
        },
    )
    .await
    .unwrap();
    // A request from 60 days ago that is still open (the station never
    // came back): never deleted, whatever its age.
    let station = store.user_by_username("room1").await.unwrap().unwrap();
    let (next, _) = store.next_ids().await.unwrap();
    let open_id = RequestId(next);
    store
        .record(&[Event::Consult {
            request_id: open_id,
            at: now - 60 * DAY,
            event: ConsultEvent::Requested {
                station: Party {
                    user_id: station.id,
                    display_name: "Millom Room 1".into(),
                    site: Some("Millom".into()),
                },
                urgency: Urgency::Routine,
                reason: "Old and open".into(),
                patient_ref: None,
                test_call: false,
            },
        }])
        .await
        .unwrap();
    // Presence rows either side of the cut-off.
    let presence = |at| Event::Presence {
        user_id: UserId(999),
        role: Role::Clinician,
        at,
        status: PresenceStatus::Available,
    };
    store
        .record(&[
            presence(now - 45 * DAY),
            presence(now - 40 * DAY),
            presence(now - DAY),
        ])
        .await
        .unwrap();
    let all = ConsultFilter {
        include_test_calls: true,
        ..ConsultFilter::default()
    };
    let before = store.consults(&all).await.unwrap();
    store.close().await;
    let closed = |c: &miulink::store::ConsultRecord| {
        matches!(c.status.as_str(), "completed" | "cancelled" | "abandoned")
    };
    // Clear of the cut-off by an hour either way, so that the job's own
    // "now" cannot move a consult across it.
    let cutoff = now - 30 * DAY;
    let old = before
        .iter()
        .filter(|c| closed(c) && c.requested_at < cutoff - 3_600_000)
        .count() as f64;
    assert!(old > 1_000.0, "{old} old consults");

    let app = TestApp::spawn_with(|s| {
        s.database_url = url.clone();
        s.retention_days = Some(30);
        s.metrics_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let deleted = loop {
        let text = scrape(&app).await;
        let n = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("miulink_retention_deleted_rows_total{table=\"consults\"} ")
            })
            .and_then(|v| v.trim().parse::<f64>().ok());
        if let Some(n) = n {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "the retention job did not run:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(deleted >= old, "deleted {deleted}, expected at least {old}");

    let after = app.store.consults(&all).await.unwrap();
    let kept: std::collections::HashSet<i64> = after.iter().map(|c| c.id).collect();
    for c in &before {
        if c.id == open_id.0 as i64 {
            assert!(kept.contains(&c.id), "the open request was deleted");
        } else if closed(c) && c.requested_at < cutoff - 3_600_000 {
            assert!(!kept.contains(&c.id), "consult {} is past retention", c.id);
            assert!(app.store.consult_events(c.id).await.unwrap().is_empty());
        } else if c.requested_at > cutoff + 3_600_000 {
            assert!(kept.contains(&c.id), "consult {} is within retention", c.id);
        }
    }
    assert_eq!(deleted as usize, before.len() - after.len());
    let counts: std::collections::HashMap<_, _> =
        app.store.row_counts().await.unwrap().into_iter().collect();
    assert_eq!(
        counts["presence_log"], 1,
        "only the recent presence row is left"
    );

    // The dashboard over the whole log counts exactly what is left: the
    // report cache did not keep the deleted days.
    let token = app.manager_token().await;
    let report = app
        .get_json("/api/reports?include_test_calls=true", &token)
        .await;
    assert_eq!(
        report["headline"]["requests"].as_u64().unwrap() as usize,
        after.len(),
        "{}",
        report["headline"]
    );
}
