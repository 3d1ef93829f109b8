//! The admin console's API and the audit trail: the same rules as the
//! command line, changes that end sessions close live sockets at once, and
//! every kind of audit entry written.

use crate::helpers::*;
use miulink::store::{AuditFilter, AuditRecord};
use serde_json::{json, Value};
use signalling::Role;
use std::time::Duration;

async fn admin_token(app: &TestApp) -> String {
    app.add_user("it-admin", "IT Admin", Role::Admin, None)
        .await;
    app.login("it-admin").await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn entries(app: &TestApp, action: &str) -> Vec<AuditRecord> {
    app.store
        .audit_entries(
            &AuditFilter {
                action: Some(action.into()),
                ..AuditFilter::default()
            },
            false,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_adds_accounts_with_one_time_passwords_and_the_rules_hold() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let admin = admin_token(&app).await;
    // Only admins.
    app.add_user("mgr", "Manager", Role::Manager, None).await;
    let manager = app.login("mgr").await;
    let (status, _) = call(&app, Method::GET, "/api/admin/accounts", &manager, None).await;
    assert_eq!(status, 403);

    // The same rules as the command line, with clear errors.
    for (body, says) in [
        (
            json!({"username": "room 2", "display_name": "R", "role": "station", "site": "Millom"}),
            "letters",
        ),
        (
            json!({"username": "room2", "display_name": "R", "role": "station"}),
            "needs a site",
        ),
        (
            json!({"username": "room2", "display_name": "", "role": "station", "site": "Millom"}),
            "display name",
        ),
        (
            json!({"username": "room2", "display_name": "R", "role": "chef"}),
            "station, clinician",
        ),
        (
            json!({"username": "mgr", "display_name": "R", "role": "manager"}),
            "already exists",
        ),
        (
            json!({"username": "x1", "display_name": "R", "role": "manager", "escalation_duty": true}),
            "only a clinician",
        ),
        (
            json!({"username": "x2", "display_name": "R", "role": "clinician", "break_glass": true}),
            "only an admin",
        ),
    ] {
        let (status, answer) = call(
            &app,
            Method::POST,
            "/api/admin/accounts",
            &admin,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/admin/accounts",
        &admin,
        Some(json!({"username": "millom-room3", "display_name": "Millom MIU Room 3", "role": "station", "site": "Millom"})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let password = answer["password"]
        .as_str()
        .expect("a one-time password")
        .to_owned();
    assert_eq!(
        answer["account"]["must_change_password"], false,
        "a station's password is the device's"
    );
    assert_eq!(login_status(&app, "millom-room3", &password).await, 200);

    // A person's generated password must be changed at first sign-in.
    let (_, answer) = call(
        &app,
        Method::POST,
        "/api/admin/accounts",
        &admin,
        Some(json!({"username": "dr-new", "display_name": "Dr New", "role": "clinician", "escalation_duty": true})),
    )
    .await;
    assert_eq!(answer["account"]["must_change_password"], true);
    assert_eq!(answer["account"]["escalation_duty"], true);

    // Edits: duty, site, monitoring, each audited.
    let (status, answer) = call(
        &app,
        Method::PATCH,
        "/api/admin/accounts/dr-new",
        &admin,
        Some(json!({"escalation_duty": false, "site": "Furness General"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["account"]["escalation_duty"], false);
    assert_eq!(answer["account"]["site"], "Furness General");
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/admin/accounts/millom-room3",
        &admin,
        Some(json!({"site": null})),
    )
    .await;
    assert_eq!(status, 400, "a station keeps a site");
    let (status, _) = call(
        &app,
        Method::PATCH,
        "/api/admin/accounts/nobody",
        &admin,
        Some(json!({"monitoring": true})),
    )
    .await;
    assert_eq!(status, 404);

    let (_, list) = call(
        &app,
        Method::GET,
        "/api/admin/accounts?q=millom",
        &admin,
        None,
    )
    .await;
    assert_eq!(list["count"], 1, "{list}");
    let (_, list) = call(
        &app,
        Method::GET,
        "/api/admin/accounts?role=clinician",
        &admin,
        None,
    )
    .await;
    assert_eq!(list["accounts"][0]["username"], "dr-new", "{list}");

    let created = entries(&app, "account_created").await;
    assert_eq!(created.len(), 2);
    assert_eq!(created[0].actor, "it-admin");
    assert_eq!(created[0].target.as_deref(), Some("millom-room3"));
    assert_eq!(created[0].client.as_deref(), Some("127.0.0.1"));
    let duty = entries(&app, "escalation_duty_changed").await;
    assert_eq!(duty.len(), 1);
    assert_eq!(duty[0].detail["escalation_duty"], false);
    assert_eq!(entries(&app, "site_changed").await.len(), 1);
}

#[tokio::test]
async fn disabling_or_resetting_a_connected_account_signs_it_out_at_once() {
    use reqwest::Method;
    // Sessions are checked against the database only every 10 s: the
    // admin's change must not wait for that.
    let app = TestApp::spawn().await;
    let admin = admin_token(&app).await;
    let mut doc = app.user("dr-a", "Dr A", Role::Clinician).await;
    doc.expect("queue").await;
    let mut room = app.user("room1", "Room 1", Role::Station).await;

    let (_, online) = call(&app, Method::GET, "/api/admin/online", &admin, None).await;
    let row = online["online"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == "dr-a")
        .cloned()
        .expect("dr-a on line");
    assert_eq!(row["role"], "clinician");
    assert_eq!(row["availability"], "available");
    assert_eq!(row["activity"], "idle");
    assert_eq!(row["screen"], true);
    assert!(row["since"].as_i64().unwrap() > 0);
    // The admin has no call screen open (this console), and is listed too.
    let me = online["online"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == "it-admin")
        .cloned()
        .expect("the admin's own sign-in");
    assert_eq!(me["screen"], false, "{me}");
    assert_eq!(me["activity"], "signed_in");

    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/admin/accounts/dr-a/disable",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sessions_closed"], 1);
    let (code, errors) = doc.expect_close(Duration::from_secs(2)).await;
    assert_eq!(code, Some(4001), "{errors:?}");
    assert_eq!(errors[0]["code"], "signed_out");
    assert_eq!(login_status(&app, "dr-a", PASSWORD).await, 401);
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/admin/accounts/it-admin/disable",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 400, "not your own account");
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/admin/accounts/dr-a/enable",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);

    // A new password ends the station's session too, and works.
    let (status, answer) = call(
        &app,
        Method::POST,
        "/api/admin/accounts/room1/password",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (code, _) = room.expect_close(Duration::from_secs(2)).await;
    assert_eq!(code, Some(4001));
    assert_eq!(
        login_status(
            &app,
            "room1",
            answer["password"].as_str().expect("a new password")
        )
        .await,
        200
    );

    // Ending one session from "who is on line".
    let token = app.login("dr-a").await;
    let mut doc = app.connect(&token).await;
    doc.expect("queue").await;
    let (_, online) = call(&app, Method::GET, "/api/admin/online", &admin, None).await;
    let session = online["online"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == "dr-a")
        .unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/admin/sessions/zz/end",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, answer) = call(
        &app,
        Method::POST,
        &format!("/api/admin/sessions/{session}/end"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (code, _) = doc.expect_close(Duration::from_secs(2)).await;
    assert_eq!(code, Some(4001));
    assert_eq!(app.get("/api/me", &token).await.status(), 401);

    for action in [
        "account_disabled",
        "account_enabled",
        "password_reset",
        "session_ended",
    ] {
        let e = entries(&app, action).await;
        assert_eq!(e.len(), 1, "{action}");
        assert_eq!(e[0].actor, "it-admin", "{action}");
    }
    assert_eq!(
        entries(&app, "session_ended").await[0].target.as_deref(),
        Some("dr-a")
    );
}

#[tokio::test]
async fn the_audit_trail_records_sign_ins_reads_exports_and_the_server() {
    use reqwest::Method;
    let mut app = TestApp::spawn_with(|s| {
        s.session_check_ms = 100;
        s.session_idle_ms = 300;
    })
    .await;
    assert_eq!(entries(&app, "server_started").await.len(), 1);
    app.add_user("mgr", "Manager", Role::Manager, None).await;
    // A wrong password for an account: its name; an unknown one: none.
    for username in ["mgr", "no-such-person"] {
        assert_eq!(login_status(&app, username, "wrong-password-1").await, 401);
    }
    let failed = entries(&app, "login_failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].target.as_deref(), Some("mgr"));
    assert_eq!(failed[1].target, None, "what was typed is never kept");
    assert!(!failed[1].detail.to_string().contains("no-such-person"));

    let token = app.login("mgr").await;
    assert_eq!(entries(&app, "login_succeeded").await.len(), 1);
    let (status, _) = call(
        &app,
        Method::GET,
        "/api/consults?site=Millom&from=2026-01-01",
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let res = client()
        .get(app.url("/api/consults.csv?station=Room%201"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.text().await.unwrap();
    let read = entries(&app, "log_read").await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].actor, "mgr");
    assert_eq!(read[0].detail["site"], "Millom");
    assert_eq!(read[0].detail["rows"], 0);
    let export = entries(&app, "log_exported").await;
    assert_eq!(export[0].detail["station"], "Room 1");

    // The CLI's changes name the person at the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args([
            "--database",
            &app.database_url,
            "user",
            "duty",
            "--username",
            "mgr",
        ])
        .env("USER", "it-tech")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a manager cannot hold the duty");
    app.add_user("dr-b", "Dr B", Role::Clinician, None).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args([
            "--database",
            &app.database_url,
            "user",
            "duty",
            "--username",
            "dr-b",
        ])
        .env("USER", "it-tech")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duty = entries(&app, "escalation_duty_changed").await;
    assert_eq!(duty[0].actor, "command line (it-tech)");
    assert_eq!(duty[0].target.as_deref(), Some("dr-b"));

    // Sign-out; then a session left idle expires and says so.
    let res = client()
        .post(app.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        entries(&app, "logout").await[0].target.as_deref(),
        Some("mgr")
    );
    let _idle = app.login("mgr").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let e = entries(&app, "session_expired").await;
        if !e.is_empty() {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no session_expired entry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(expired[0].target.as_deref(), Some("mgr"));
    assert_eq!(expired[0].detail["reason"], "idle");

    // The admin's view, filtered, and as CSV.
    app.add_user("it-admin", "IT", Role::Admin, None).await;
    let admin = app.login("it-admin").await;
    let (status, page) = call(
        &app,
        Method::GET,
        "/api/audit?actor=mgr&limit=10",
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let actions: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"log_exported") && actions.contains(&"log_read"),
        "{actions:?}"
    );
    let (status, _) = call(&app, Method::GET, "/api/audit", &token, None).await;
    assert_eq!(status, 401, "the manager's session has ended");
    let csv = client()
        .get(app.url("/api/audit.csv?action=login_failed"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("id,at,actor,action,target,detail,client\r\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // Append-only: the database itself refuses to change or delete an
    // entry, whoever asks.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    for sql in [
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(sql).execute(&raw).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    raw.close().await;

    app.stop().await;
    let store = miulink::store::Store::open(&app.database_url)
        .await
        .unwrap();
    let stopped = store
        .audit_entries(
            &AuditFilter {
                action: Some("server_stopped".into()),
                ..AuditFilter::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(stopped.len(), 1);
    store.close().await;
}

/// The status of a password sign-in.
async fn login_status(app: &TestApp, username: &str, password: &str) -> u16 {
    client()
        .post(app.url("/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("the server answers a sign-in")
        .status()
        .as_u16()
}
