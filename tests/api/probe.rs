//! `miulink probe` (the real binary) against the app on port 0: a real
//! WebRTC call between two `webrtc` peers, logged as a test call.

use crate::helpers::*;
use serde_json::Value;
use signalling::Role;
use std::process::Output;

const STEPS_BOTH: [&str; 8] = [
    "login",
    "websocket_connect",
    "request_to_ring",
    "accept_to_ice_connected",
    "accept_to_dtls_connected",
    "accept_to_first_video",
    "data_channel_rtt",
    "hangup_logged",
];

/// Runs the probe binary to the end against the app.
async fn probe(app: &TestApp, args: &[&str], password: &str) -> (Output, Value) {
    spawn_probe(&app.base, args, password).await.expect("join")
}

async fn probe_accounts(app: &TestApp) {
    app.add_user(
        "probe-station",
        "Probe station",
        Role::Station,
        Some("Millom"),
    )
    .await;
    app.add_user(
        "probe-clinician",
        "Probe clinician",
        Role::Clinician,
        Some("Furness General"),
    )
    .await;
    // As `miulink user add --monitoring` would: probe accounts are not people.
    for user in ["probe-station", "probe-clinician"] {
        assert!(app.store.set_monitoring(user, true).await.unwrap());
    }
}

#[tokio::test]
async fn the_probe_makes_a_real_call_and_it_is_logged_as_a_test_call() {
    let app = TestApp::spawn().await;
    probe_accounts(&app).await;
    app.add_user("probe-manager", "Probe manager", Role::Manager, None)
        .await;
    // A real clinician is signed in and available: the directed test call
    // must not ring them.
    let mut real = app.user("dr-jones", "Dr Jones", Role::Clinician).await;
    real.expect("queue").await;
    let textfile = tempfile::tempdir().unwrap();
    let prom = textfile.path().join("miulink_probe.prom");

    let (output, report) = probe(
        &app,
        &[
            "--station-user",
            "probe-station",
            "--clinician-user",
            "probe-clinician",
            "--manager-user",
            "probe-manager",
            "--prometheus-file",
            prom.to_str().unwrap(),
        ],
        PASSWORD,
    )
    .await;
    // For node_exporter's textfile collector: the alert rules in
    // deploy/prometheus/ read these.
    let text = std::fs::read_to_string(&prom).expect("the probe wrote its metrics");
    let server = format!("server=\"{}\"", app.base);
    assert!(
        text.contains(&format!("miulink_probe_success{{{server}}} 1\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "miulink_probe_step_seconds{{{server},step=\"accept_to_first_video\"}}"
        )),
        "{text}"
    );
    assert!(text.contains("# TYPE miulink_probe_last_run_timestamp_seconds gauge"));
    let code = output.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "exit {code:?} (2 is failed): {report:#}"
    );
    assert_eq!(report["exit_code"].as_i64().map(|c| c as i32), code);
    assert_eq!(report["role"], "both");
    for name in STEPS_BOTH {
        let s = probe_step(&report, name);
        assert!(
            s["status"] == "ok" || s["status"] == "slow",
            "step {name} did not complete: {s}"
        );
        assert!(s["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{s}");
    }
    // Real VP8 key frames of the test card arrived, both ways.
    for side in ["video_at_station", "video_at_clinician"] {
        assert_eq!(report[side]["first_key_frame"], "320x240", "{report:#}");
        assert!(report[side]["packets"].as_u64().unwrap_or(0) >= 1);
    }
    assert_eq!(report["logged_as_test_call"], true);

    // The log: a test call, left out of the managers' default figures.
    let consult_id = report["consult_id"].as_i64().expect("consult id");
    let token = app.manager_token().await;
    let default_view = app.get_json("/api/consults", &token).await;
    assert_eq!(default_view["total"], 0, "{default_view:#}");
    let all = app
        .get_json("/api/consults?include_test_calls=true", &token)
        .await;
    assert_eq!(all["total"], 1);
    let c = &all["consults"][0];
    assert_eq!(c["id"], consult_id);
    assert_eq!(c["test_call"], true);
    assert_eq!(c["station"], "Probe station");
    assert_eq!(c["clinician"], "Probe clinician");
    assert_eq!(c["status"], "completed");
    assert_eq!(c["end_reason"], "hung_up_by_station");
    assert!(c["connected_at"].as_i64().is_some(), "media connected: {c}");
    let events = app
        .get_json(&format!("/api/consults/{consult_id}/events"), &token)
        .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "requested",
            "rung",
            "accepted",
            "media_connected",
            "media_connected",
            "call_ended",
            "outcome_recorded"
        ]
    );

    // The real clinician was not rung and never saw the request (only
    // the count of available clinicians changed while the probe was on).
    real.send(msg::ping(77)).await;
    loop {
        let m = real.recv().await;
        if m["type"] == "pong" {
            break;
        }
        assert_eq!(m["type"], "queue", "{m}");
        assert_eq!(m["requests"], serde_json::json!([]), "{m}");
    }
}

#[tokio::test]
async fn one_side_modes_call_each_other() {
    let app = TestApp::spawn().await;
    probe_accounts(&app).await;
    let common = ["--answer-wait-seconds", "30"];
    // The clinician side holds the call for a while, as a person would, so
    // the station side (which hangs up as soon as it has every figure) has
    // its own data channel round trips echoed; with both holding 0 s the
    // first side to finish hung up on the other's last ping.
    let mut clinician_args = vec![
        "--role",
        "clinician-only",
        "--clinician-user",
        "probe-clinician",
        "--hold-seconds",
        "3",
    ];
    clinician_args.extend(common);
    let mut station_args = vec![
        "--role",
        "station-only",
        "--station-user",
        "probe-station",
        "--clinician-user",
        "probe-clinician",
        "--hold-seconds",
        "0",
    ];
    station_args.extend(common);
    let calling = probe(&app, &station_args, PASSWORD);
    // The clinician side signs in after the test call is already waiting,
    // so it is rung as it connects.
    let answering = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        probe(&app, &clinician_args, PASSWORD).await
    };
    let ((c_out, c_report), (s_out, s_report)) = tokio::join!(answering, calling);
    for (out, report) in [(&c_out, &c_report), (&s_out, &s_report)] {
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "exit {:?} (2 is failed): {report:#}",
            out.status.code()
        );
        assert_probe_call_came_up(report);
    }
    assert_eq!(c_report["role"], "clinician-only");
    // Each side timed the data channel round trip itself.
    assert!(probe_step(&c_report, "data_channel_rtt")["ms"]
        .as_f64()
        .is_some());
    assert_eq!(s_report["consult_id"], c_report["consult_id"]);
    // The clinician-only probe echoes, so the station side measures it.
    assert!(probe_step(&s_report, "data_channel_rtt")["ms"]
        .as_f64()
        .is_some());
    // The station side hung up and saw the end logged; the clinician side
    // saw the person (the station) end it first.
    let hung_up = probe_step(&s_report, "hangup_logged");
    assert!(hung_up["ms"].as_f64().is_some(), "{hung_up}");
    assert_eq!(probe_step(&c_report, "hangup_logged")["status"], "skipped");
    assert!(probe_step(&s_report, "request_to_accept")["ms"]
        .as_f64()
        .is_some());
    assert_eq!(
        s_report["video_at_station"]["first_key_frame"], "320x240",
        "{s_report:#}"
    );
}

#[tokio::test]
async fn a_clinician_only_probe_never_answers_a_real_patient() {
    let app = TestApp::spawn().await;
    probe_accounts(&app).await;
    let mut station = app
        .user("millom-room1", "Millom MIU Room 1", Role::Station)
        .await;
    station
        .send(msg::request(signalling::Urgency::Urgent, "Wrist injury"))
        .await;
    station
        .expect_where("request_update", |v| v["state"] == "waiting")
        .await;
    let (out, report) = probe(
        &app,
        &[
            "--role",
            "clinician-only",
            "--clinician-user",
            "probe-clinician",
            "--answer-wait-seconds",
            "2",
        ],
        PASSWORD,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert!(report["error"]
        .as_str()
        .is_some_and(|e| e.contains("test call")));
    // The patient's request is still waiting for a real clinician.
    let token = app.manager_token().await;
    let log = app.get_json("/api/consults", &token).await;
    assert_eq!(log["consults"][0]["status"], "waiting");
}

#[tokio::test]
async fn a_wrong_password_fails_with_exit_code_2_and_says_so() {
    let app = TestApp::spawn().await;
    probe_accounts(&app).await;
    let (out, report) = probe(
        &app,
        &[
            "--station-user",
            "probe-station",
            "--clinician-user",
            "probe-clinician",
        ],
        "not-the-password",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(report["result"], "failed");
    assert_eq!(probe_step(&report, "login")["status"], "failed");
    assert!(probe_step(&report, "login")["detail"]
        .as_str()
        .is_some_and(|d| d.contains("wrong username or password")));
    assert_eq!(probe_step(&report, "hangup_logged")["status"], "failed");
}
