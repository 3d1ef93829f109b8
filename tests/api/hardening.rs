//! Issue 10: what a penetration test found, each finding as a test that
//! failed before its fix. The finding's number is in each test's comment.

use crate::helpers::*;
use serde_json::{json, Value};
use signalling::{Role, Urgency};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SIGNED_OUT: u16 = 4001;

async fn post_login(app: &TestApp, client: &reqwest::Client, body: Value) -> reqwest::Response {
    client
        .post(format!("{}/api/login", app.base))
        .json(&body)
        .send()
        .await
        .expect("login request")
}

/// A client whose connections come from another loopback address (a
/// different user's machine, as far as the server can tell).
fn client_from(addr: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(addr)))
        .cookie_store(true)
        .build()
        .expect("client")
}

// 1. Revoking access ends a live WebSocket.

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_at_once_and_only_those() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let token = app.login("dr-a").await;
    let other = app.login("dr-a").await;
    let mut first = app.connect(&token).await;
    let mut second = app.connect(&token).await; // Replaces the first (one per account).
    let _ = first.expect_close(Duration::from_secs(5)).await;
    second.expect("queue").await;
    let res = app
        .http()
        .post(format!("{}/api/logout", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (code, errors) = second.expect_close(Duration::from_secs(2)).await;
    assert_eq!(code, Some(SIGNED_OUT));
    assert_eq!(errors.last().expect("told why")["code"], "signed_out");
    assert_eq!(
        app.get("/api/me", &other).await.status(),
        200,
        "another session carries on"
    );
}

#[tokio::test]
async fn a_disabled_clinician_is_cut_off_within_the_check_and_no_longer_rung() {
    let app = TestApp::spawn_with(|s| s.session_check_ms = 300).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    let mut room = app.user("room1", "Room 1", Role::Station).await;
    doc.expect("queue").await;
    // Disabled from the command line: another process, only the database changes.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args(["--database", &app.database_url])
        .args(["user", "disable", "--username", "dr-a"])
        .env("MIULINK_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (code, errors) = doc.expect_close(Duration::from_secs(5)).await;
    assert_eq!(code, Some(SIGNED_OUT));
    assert_eq!(errors.last().unwrap()["code"], "signed_out");
    room.send(msg::request(Urgency::Immediate, "Chest pain"))
        .await;
    let waiting = room
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    assert_eq!(
        waiting["clinicians_available"], 0,
        "the revoked clinician does not count"
    );
}

#[tokio::test]
async fn a_new_password_from_the_command_line_ends_the_old_sessions_sockets() {
    let app = TestApp::spawn_with(|s| s.session_check_ms = 300).await;
    let mut room = app.user("room1", "Room 1", Role::Station).await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args(["--database", &app.database_url])
        .args(["user", "passwd", "--username", "room1", "--password-stdin"])
        .env("MIULINK_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(cmd.stdin.take().unwrap(), "slate quarry lantern").unwrap();
    assert!(cmd.wait().unwrap().success());
    let (code, _) = room.expect_close(Duration::from_secs(5)).await;
    assert_eq!(code, Some(SIGNED_OUT));
}

#[tokio::test]
async fn a_session_expiring_closes_its_socket_at_its_expiry() {
    let app = TestApp::spawn_with(|s| s.session_ttl_ms = 1_500).await;
    let started = std::time::Instant::now();
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    let (code, errors) = doc.expect_close(Duration::from_secs(5)).await;
    assert_eq!(code, Some(SIGNED_OUT));
    assert!(errors.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    assert!(
        started.elapsed() >= Duration::from_millis(1_000),
        "not before the expiry"
    );
}

// 2 and 3. Login bursts: bounded password checks, throttling counted before
// checking, per address, never locking the real user out.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_bad_logins_is_bounded_and_the_real_user_still_gets_in() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let attacker = client_from([127, 0, 0, 1]);
    let burst: Vec<_> = (0..100)
        .map(|i| {
            let (attacker, url) = (attacker.clone(), app.url("/api/login"));
            tokio::spawn(async move {
                let res = attacker
                    .post(url)
                    .json(&json!({"username": "dr-a", "password": format!("guess-{i}")}))
                    .send()
                    .await
                    .unwrap();
                (
                    res.status().as_u16(),
                    res.headers().get("retry-after").is_some(),
                )
            })
        })
        .collect();
    // The real user, from their own machine, in the middle of the burst.
    let real = post_login(
        &app,
        &client_from([127, 0, 0, 2]),
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    let mut answers = std::collections::BTreeMap::new();
    for t in burst {
        let (status, retry_after) = t.await.unwrap();
        if status != 401 {
            assert!(retry_after, "{status} says when to come back");
        }
        *answers.entry(status).or_insert(0) += 1;
    }
    assert_eq!(real.status(), 200, "the real user gets in during the burst");
    let checked = answers.get(&401).copied().unwrap_or(0);
    assert!(
        checked <= 30,
        "at most the per-address budget was checked: {answers:?}"
    );
    assert!(
        answers.keys().all(|s| [401, 429, 503].contains(s)),
        "{answers:?}"
    );
    // Afterwards the account is not locked: the right password from the
    // attacker's address itself only waits its back-off.
    let me = post_login(
        &app,
        &client_from([127, 0, 0, 3]),
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn unknown_usernames_never_lock_anybody_out() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let typo = client_from([127, 0, 0, 4]);
    for _ in 0..10 {
        let res = post_login(
            &app,
            &typo,
            json!({"username": "dr-aa", "password": "whatever-it-was"}),
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    // Someone typing the on-call clinician's name wrongly, or guessing,
    // from another machine does not stop the clinician.
    let res = post_login(
        &app,
        &client_from([127, 0, 0, 5]),
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn failures_back_off_per_account_and_address_without_a_lockout() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let guesser = client_from([127, 0, 0, 6]);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            post_login(
                &app,
                &guesser,
                json!({"username": "dr-a", "password": "nope-nope-nope"}),
            )
            .await
            .status()
            .as_u16(),
        );
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "three free tries");
    let res = post_login(
        &app,
        &guesser,
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        res.status(),
        429,
        "then a back-off, even for the right password"
    );
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&wait),
        "seconds, not a five-minute lock: {wait}"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let res = post_login(
        &app,
        &guesser,
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        res.status(),
        200,
        "after the back-off the right password works"
    );
}

// 4. Usernames: short, plain, checked first; the login body is capped.

#[tokio::test]
async fn long_or_forged_usernames_and_big_bodies_are_refused_before_anything_else() {
    let app = TestApp::spawn().await;
    let client = app.http();
    for name in [
        "a".repeat(65),
        "dr-a\nINFO login username=admin".into(),
        "dr a".into(),
    ] {
        let res = post_login(&app, &client, json!({"username": name, "password": "x"})).await;
        assert_eq!(res.status(), 400, "{name:?}");
        let body: Value = res.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("64"), "{body}");
    }
    let huge = json!({"username": "dr-a", "password": "p".repeat(5000)});
    let res = post_login(&app, &client, huge).await;
    assert_eq!(res.status(), 413, "the body is capped at 4 KiB");
}

// 5. Header timeout, idle keep-alive timeout, connection cap.

#[tokio::test]
async fn a_client_trickling_headers_is_dropped_and_the_connection_cap_refuses_clearly() {
    let app = TestApp::spawn_with(|s| {
        s.header_timeout_ms = 700;
        s.max_connections = 4;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let started = std::time::Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        // Keep trickling: a byte every 100 ms never finishes the headers.
        let _ = slow.write_all(b"X").await;
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a trickling client is dropped");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive connection is dropped too.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), idle.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed: {n:?}"
    );

    // Four connections held open; the fifth is told why it is refused.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), extra.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.to_lowercase().contains("retry-after"), "{answer:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ok = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(ok.status(), 200, "the slots come back");
}

// 6. The local reference lets no names through.

#[tokio::test]
async fn references_that_look_like_names_or_dates_are_refused_and_nothing_is_sent() {
    let app = TestApp::spawn().await;
    let mut room = app.user("room1", "Room 1", Role::Station).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    for bad in [
        "SMITH JOHN 1970",
        "J SMITH 12/03/1970",
        "Smith 1",
        "Smith1970",
    ] {
        room.send(msg::request_ref(Urgency::Routine, "Ankle", bad))
            .await;
        let err = room.error().await;
        assert_eq!(err["code"], "invalid_field", "{bad}");
        assert!(err["message"].as_str().unwrap().contains("digits"), "{err}");
    }
    doc.expect_nothing_pending().await;
    room.send(msg::request_ref(Urgency::Routine, "Ankle", "MIU123456"))
        .await;
    room.expect_where("request_update", |v| v["state"] == "waiting")
        .await;

    // The trust's own pattern.
    let own = TestApp::spawn_with(|s| s.patient_ref_pattern = "[0-9]{8}".into()).await;
    let mut room = own.user("room1", "Room 1", Role::Station).await;
    room.send(msg::request_ref(Urgency::Routine, "Ankle", "MIU123456"))
        .await;
    assert_eq!(room.error().await["code"], "invalid_field");
    let me = own.get_json("/api/me", &own.login("room1").await).await;
    assert_eq!(me["settings"]["patient_ref_pattern"], "[0-9]{8}");
}

// 7. --demo never touches a real database.

#[tokio::test]
async fn demo_refuses_a_real_database_and_a_normal_start_disables_demo_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("real.db").display());
    {
        let mut s = miulink::Settings::for_tests(url.clone());
        s.demo = false;
        let app = miulink::Application::build(s)
            .await
            .expect("a real first start");
        drop(app);
    }
    let mut s = miulink::Settings::for_tests(url);
    s.demo = true;
    let err = match miulink::Application::build(s).await {
        Ok(_) => panic!("--demo on a database with a real admin must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("--demo refused"), "{err}");

    // A demo database started without --demo: the demo accounts stop working.
    let demo_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let mut s = miulink::Settings::for_tests(demo_url.clone());
    s.demo = true;
    drop(miulink::Application::build(s).await.expect("a demo start"));
    let plain = miulink::Application::build(miulink::Settings::for_tests(demo_url))
        .await
        .expect("a normal start on a demo database");
    let admin = plain
        .state()
        .store
        .user_by_username("admin")
        .await
        .unwrap()
        .unwrap();
    assert!(admin.demo && admin.disabled, "admin/demo no longer works");
}

// 8. Weak passwords, every way of setting one.

#[tokio::test]
async fn weak_passwords_are_refused_on_the_command_line_and_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    for weak in [
        "aaaaaaaaaa",
        "          ",
        "password12",
        "password1234",
        "aaaaaaaaaaaa",
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
            .args([
                "--database",
                &db,
                "user",
                "add",
                "--username",
                "dr-w",
                "--display-name",
                "Dr W",
            ])
            .args(["--role", "clinician", "--password-stdin"])
            .env("MIULINK_LOG", "error")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(cmd.stdin.take().unwrap(), "{weak}").unwrap();
        let out = cmd.wait_with_output().unwrap();
        assert!(!out.status.success(), "{weak:?} was accepted");
    }
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let client = app.http();
    post_login(
        &app,
        &client,
        json!({"username": "dr-a", "password": PASSWORD}),
    )
    .await;
    let res = client
        .post(app.url("/api/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": "qwertyuiop12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "weak_password");
}

// 9 and 10. Caching and security headers.

#[tokio::test]
async fn api_answers_are_never_cached_and_pages_carry_strict_headers() {
    let app = TestApp::spawn().await;
    let token = app.manager_token().await;
    for path in [
        "/api/me",
        "/api/consults",
        "/api/consults.csv",
        "/api/consults/1/events",
        "/api/reports",
    ] {
        let res = app.get(path, &token).await;
        assert_eq!(
            res.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path} ({})",
            res.status()
        );
    }
    let login = post_login(
        &app,
        &app.http(),
        json!({"username": "nobody", "password": "x"}),
    )
    .await;
    assert_eq!(login.headers()["cache-control"], "no-store");
    let page = reqwest::get(app.url("/")).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(
        !csp.contains("ws:") && !csp.contains("wss:"),
        "no other host: {csp}"
    );
    let pp = page.headers()["permissions-policy"].to_str().unwrap();
    assert!(
        pp.contains("camera=(self)") && pp.contains("microphone=(self)"),
        "{pp}"
    );
    assert!(
        page.headers().get("strict-transport-security").is_none(),
        "not over plain HTTP"
    );
    let secure = TestApp::spawn_with(|s| s.secure_cookies = true).await;
    let page = reqwest::get(secure.url("/")).await.unwrap();
    assert!(page.headers()["strict-transport-security"]
        .to_str()
        .unwrap()
        .contains("max-age="));
}

// 11. Sessions: idle end, token only when asked for, a cap per account.

#[tokio::test]
async fn an_unused_session_ends_after_the_idle_time_but_a_live_socket_keeps_it() {
    let app = TestApp::spawn_with(|s| {
        s.session_idle_ms = 1_000;
        s.session_check_ms = 200;
    })
    .await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    app.add_user("dr-b", "Dr B", Role::Clinician, None).await;
    let idle = app.login("dr-a").await;
    let busy = app.login("dr-b").await;
    let mut socket = app.connect(&busy).await;
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    assert_eq!(
        app.get("/api/me", &idle).await.status(),
        401,
        "the shared PC's old session is gone"
    );
    socket.sync().await;
    assert_eq!(
        app.get("/api/me", &busy).await.status(),
        200,
        "a session with a live screen lasts"
    );
}

#[tokio::test]
async fn an_account_holds_a_bounded_number_of_sessions() {
    let app = TestApp::spawn_with(|s| s.max_sessions_per_account = 3).await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(app.login("dr-a").await);
    }
    assert_eq!(
        app.get("/api/me", &tokens[0]).await.status(),
        401,
        "the oldest ended"
    );
    for t in &tokens[1..] {
        assert_eq!(app.get("/api/me", t).await.status(), 200);
    }
}

// 14. Login lines carry the client's address (a trusted proxy's
// X-Forwarded-For), and never a typed unknown username.

#[tokio::test]
async fn login_lines_carry_the_client_address_and_no_typed_unknown_usernames() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = miulink::store::Store::open(&url).await.unwrap();
    store
        .create_user(miulink::store::NewUser {
            username: "dr-a",
            display_name: "Dr A",
            role: Role::Clinician,
            site: None,
            password_hash: password_hash(),
            flags: miulink::store::AccountFlags::default(),
            must_change_password: false,
            now: 0,
        })
        .await
        .unwrap();
    store.close().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database",
            &url,
        ])
        .args(["--trusted-proxy", "127.0.0.1"])
        .env("MIULINK_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        use std::io::Read;
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut log);
        log
    });
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::new();
    let login = |name: &str, password: &str, xff: &str| {
        client
            .post(format!("{base}/api/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"username": name, "password": password}))
            .send()
    };
    assert_eq!(
        login("dr-a", PASSWORD, "203.0.113.7")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        login("my-secret-pass", "x", "198.51.100.9")
            .await
            .unwrap()
            .status(),
        401
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    let log = reader.join().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("login") && l.contains("dr-a"))
        .unwrap_or_else(|| panic!("a login line in:\n{log}"));
    assert!(line.contains("203.0.113.7"), "{line}");
    assert!(
        log.contains("198.51.100.9"),
        "the failed login's address is logged:\n{log}"
    );
    assert!(
        !log.contains("my-secret-pass"),
        "an unknown typed username is not logged:\n{log}"
    );
}

// 15. TURN credentials only for the accounts that make calls.

#[tokio::test]
async fn managers_get_no_turn_credentials_and_weak_turn_secrets_refuse_to_start() {
    let app = TestApp::spawn_with(|s| {
        s.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        s.turn_secret = Some("a-turn-secret-of-at-least-32-characters".into());
    })
    .await;
    let me = app.get_json("/api/me", &app.manager_token().await).await;
    assert_eq!(me["settings"]["ice_servers"], json!([]), "{me}");
    app.add_user("room1", "Room 1", Role::Station, Some("Millom"))
        .await;
    let me = app.get_json("/api/me", &app.login("room1").await).await;
    let user = me["settings"]["ice_servers"][0]["username"]
        .as_str()
        .unwrap();
    let expiry: i64 = user.split_once(':').unwrap().0.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((expiry - now - 2 * 3600).abs() < 60, "two hours by default");

    for secret in ["change-me", "short"] {
        let dir = tempfile::tempdir().unwrap();
        let mut s =
            miulink::Settings::for_tests(format!("sqlite://{}", dir.path().join("m.db").display()));
        s.turn_urls = vec!["turn:127.0.0.1:3478".into()];
        s.turn_secret = Some(secret.into());
        let err = match miulink::Application::build(s).await {
            Ok(_) => panic!("{secret:?} accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("at least 32 characters"), "{err}");
    }
}

/// When the switchboard task dies (`src/operator/tests.rs` makes it panic and
/// sees the flag raised), `/healthz` says so at once and the server ends
/// with an error two seconds later, so that systemd restarts it rather than
/// leave it half alive.
#[tokio::test]
async fn a_dead_switchboard_is_reported_and_ends_the_server() {
    let mut app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["switchboard"], "running");

    app.operator_stats.dead.send_replace(true);
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["switchboard"], "stopped", "{body}");
    assert_eq!(body["status"], "degraded", "{body}");

    let ended = app.ended().await;
    let why = ended.expect_err("the server must not carry on without its switchboard");
    assert!(why.to_string().contains("switchboard task died"), "{why}");
}
