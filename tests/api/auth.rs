//! Logging in, sessions, and who may read what.

use crate::helpers::*;
use serde_json::{json, Value};
use signalling::Role;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn login_gives_a_cookie_and_a_token_and_bad_logins_look_alike() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let client = app.http();
    let res = client
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "dr-a", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["role"], "clinician");
    assert_eq!(body["display_name"], "Dr A");
    assert!(
        body.get("token").is_none(),
        "a browser's login answer does not repeat the cookie's token: {body}"
    );
    let token = app.login("dr-a").await;
    assert!(
        token.len() >= 40,
        "programs ask for the token with want_token"
    );
    // The cookie alone authenticates.
    let me: Value = client
        .get(format!("{}/api/me", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "dr-a");

    let wrong = app
        .http()
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "dr-a", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = app
        .http()
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "nobody", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown, "no hint whether the account exists");

    // Logout ends the session.
    let res = client
        .post(format!("{}/api/logout", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        client
            .get(format!("{}/api/me", app.base))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        app.get("/api/me", &token).await.status(),
        200,
        "another session carries on"
    );
}

#[tokio::test]
async fn websocket_needs_a_session() {
    let app = TestApp::spawn().await;
    let err = tokio_tungstenite::connect_async(app.ws_url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let mut req = app.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer not-a-token".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn a_cookie_from_another_site_cannot_open_the_websocket() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let token = app.login("dr-a").await;
    let mut req = app.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "cookie",
        format!("miulink_session={token}").parse().unwrap(),
    );
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn only_managers_and_admins_read_the_log() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    app.add_user("room1", "Room 1", Role::Station, Some("Millom"))
        .await;
    app.add_user("adm", "Admin", Role::Admin, None).await;
    for user in ["dr-a", "room1"] {
        let token = app.login(user).await;
        for path in ["/api/consults", "/api/consults.csv"] {
            let res = app.get(path, &token).await;
            assert_eq!(res.status(), 403, "{user} {path}");
        }
    }
    let res = app
        .http()
        .get(format!("{}/api/consults", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let token = app.login("adm").await;
    assert_eq!(app.get("/api/consults", &token).await.status(), 200);
    let csv = app
        .get("/api/consults.csv", &token)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("consult_id,requested_at_utc,station"),
        "header row even when empty"
    );
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let token = app.login("dr-a").await;
    assert!(app.store.set_disabled("dr-a", true).await.unwrap());
    assert_eq!(app.get("/api/me", &token).await.status(), 401);
    let res = app
        .http()
        .post(format!("{}/api/login", app.base))
        .json(&json!({"username": "dr-a", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn healthz_reports_ok_and_keeps_its_figures_for_admins() {
    let app = TestApp::spawn().await;
    let v: Value = reqwest::get(format!("{}/healthz", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["session_log_writable"], true);
    assert_eq!(v["switchboard"], "running");
    for detail in ["connections", "waiting_requests", "calls", "version"] {
        assert!(v.get(detail).is_none(), "{detail} shown to anyone: {v}");
    }
    // A signed-in clinician sees no more than anyone; an admin sees it all.
    app.add_user("dr-h", "Dr H", Role::Clinician, None).await;
    let token = app.login("dr-h").await;
    let v = app.get_json("/healthz", &token).await;
    assert!(v.get("version").is_none(), "{v}");
    app.add_user("it-admin", "IT", Role::Admin, None).await;
    let token = app.login("it-admin").await;
    let v = app.get_json("/healthz", &token).await;
    assert_eq!(v["status"], "ok");
    assert_eq!(v["connections"], 0);
    assert_eq!(v["waiting_requests"], 0);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn the_client_is_served_with_a_content_security_policy() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let css = reqwest::get(format!("{}/theme.css", app.base))
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    for path in ["/nope.js", "/../Cargo.toml", "/.git/config", "/api/nothing"] {
        let res = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn me_tells_the_client_its_ice_policy_and_escalation_duty() {
    let app = TestApp::spawn().await;
    app.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    app.add_user("nic", "Nurse in Charge", Role::Clinician, None)
        .await;
    app.store.set_escalation_duty("nic", true).await.unwrap();
    let me = app.get_json("/api/me", &app.login("dr-a").await).await;
    assert_eq!(me["escalation_duty"], false);
    assert_eq!(me["settings"]["ice_transport_policy"], "all");
    let me = app.get_json("/api/me", &app.login("nic").await).await;
    assert_eq!(me["escalation_duty"], true);

    // Relay only: clients are told to send media through TURN alone.
    let relay = TestApp::spawn_with(|s| {
        s.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        s.turn_secret = Some("a-turn-secret-of-at-least-32-characters".into());
        s.relay_only = true;
    })
    .await;
    relay.add_user("dr-a", "Dr A", Role::Clinician, None).await;
    let me = relay.get_json("/api/me", &relay.login("dr-a").await).await;
    assert_eq!(me["settings"]["ice_transport_policy"], "relay");
    let turn = &me["settings"]["ice_servers"][0];
    assert!(turn["username"].as_str().unwrap().ends_with(":dr-a"));
}

#[tokio::test]
async fn relay_only_without_a_turn_server_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = miulink::Settings::for_tests(format!(
        "sqlite://{}",
        dir.path().join("miulink.db").display()
    ));
    settings.relay_only = true;
    let err = match miulink::Application::build(settings).await {
        Ok(_) => panic!("a relay-only server without TURN must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("--ice-transport-policy relay needs a TURN server"),
        "{err}"
    );
}
