//! Cameras that are missing or many: a station without a camera holds the
//! consult with audio only and says so; a clinician with more than one
//! camera switches between them in the call.
//!
//! And the device check page (/check): its verdict counts only the checks
//! that really ran and names the others; signed in, it tries the account's
//! own STUN and TURN servers (a real coturn on loopback, as in `turn.rs`)
//! and passes the relay only when a relay candidate was gathered.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use crate::turn::{Coturn, SECRET as TURN_SECRET};
use serde_json::Value;
use signalling::Role;
use std::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_camera_means_audio_only_and_a_second_camera_can_be_switched_to() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "millom-room4",
            "Millom MIU Room 4",
            Role::Station,
            Some("Millom"),
        )
        .await;
    server
        .add_user(
            "dr-ahmed",
            "Dr Sara Ahmed",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let nurse = Browser::launch_with_cameras("station-no-camera", 1280, 800, 0).await;
    // Chromium's fake cameras: 0 is I420, 1 is a Y16 depth camera (its
    // frames cannot be encoded, so it sends no video), 2 is MJPEG.
    let doctor = Browser::launch_with_cameras("clinician-three-cameras", 1280, 800, 3).await;
    sign_in(&doctor, &server, "dr-ahmed", "/clinician").await;
    sign_in(&nurse, &server, "millom-room4", "/station").await;

    request_consult(&nurse, "urgent", "Wound or laceration", "hand", "").await;
    on_screen(&nurse, "waiting").await;
    let warning = nurse
        .wait_for(
            "the audio-only warning while waiting",
            "const w = document.querySelector('#media-warning'); return !w.hidden && w.textContent;",
        )
        .await;
    assert!(
        warning.as_str().unwrap_or("").contains("Audio only"),
        "{warning}"
    );

    doctor
        .wait_for(
            "the request",
            "return document.querySelectorAll('#queue > li').length === 1",
        )
        .await;
    answer_first(&doctor).await;
    on_screen(&nurse, "call").await;
    // The station still sees the clinician; the clinician is told why there
    // is no picture of the patient, and the consult still connects.
    nurse.wait_for_remote_video().await;
    let notice = nurse
        .wait_for(
            "the audio-only notice in the call",
            "const n = document.querySelector('.call-notice'); return !n.hidden && n.textContent;",
        )
        .await;
    assert!(
        notice
            .as_str()
            .unwrap_or("")
            .contains("No camera was found"),
        "{notice}"
    );
    doctor
        .wait_for(
            "the clinician to be told the station has no camera",
            "return [...document.querySelectorAll('.remote-flags li')].some((li) => li.textContent.includes('Camera off'))",
        )
        .await;
    assert!(doctor
        .text(".remote-placeholder")
        .await
        .contains("Audio only"));
    doctor
        .wait_for(
            "the call to show as connected",
            "return document.querySelector('.call-status .label').textContent === 'Connected'",
        )
        .await;

    // More than one camera: the switch button is offered and moves on to
    // the next camera each time.
    doctor
        .wait_for(
            "the switch camera button",
            "return !document.querySelector('.control-switch').hidden",
        )
        .await;
    for next in ["fake_device_1", "fake_device_2"] {
        doctor.click(".control-switch").await;
        doctor
            .wait_for(
                &format!("the camera {next}"),
                &format!(
                    "const t = window.miulink.call.local.stream.getVideoTracks()[0];
                     return t && t.readyState === 'live' && t.label === '{next}'
                         && window.miulink.call.videoTransceiver.sender.track === t;"
                ),
            )
            .await;
    }
    // The station receives video from the new (MJPEG) camera.
    let frames = nurse.frames_decoded().await;
    wait_for_more_frames(&nurse, frames, 1).await;
    nurse.screenshot("13-station-in-call-audio-only").await;
    doctor
        .screenshot("14-clinician-in-call-station-audio-only")
        .await;

    hang_up(&doctor).await;
    record_outcome(&doctor, "managed_locally", "").await;
    let log = server.consults().await;
    assert_eq!(log["total"], 1);
    assert!(
        log["consults"][0]["connect_ms"].as_i64().is_some(),
        "an audio-only call still counts as connected: {log}"
    );
}

/// Opens /check and waits until every automatic check has finished (the
/// network check at least once, the camera and microphone started).
async fn open_check(b: &Browser, server: &Server) -> Value {
    b.goto(&server.url("/check")).await;
    b.wait_for(
        "the device check to finish its automatic checks",
        "const m = window.miulink;
         return m && m.verdict && m.verdict.settled && m.network.runs >= 1 && !m.network.running
             && m.checks.cam.status === 'ok' && m.verdict.checks.mic.status !== 'pending';",
    )
    .await;
    verdict(b).await
}

async fn verdict(b: &Browser) -> Value {
    b.eval(
        "const v = window.miulink.verdict;
         return {text: document.querySelector('#check-summary').textContent, state: v.state,
                 passed: v.passed, total: v.total, notChecked: v.notChecked, failed: v.failed,
                 stun: v.checks.stun, turn: v.checks.turn, mic: v.checks.mic,
                 network: window.miulink.network};",
    )
    .await
}

/// The network card's line for one check (`li[data-check=...]`), as text.
async fn net_lines(b: &Browser, check: &str) -> String {
    b.eval(&format!(
        "return [...document.querySelectorAll('#net-list li[data-check={check}]')]
             .map((li) => li.textContent.trim()).join(' | ');"
    ))
    .await
    .as_str()
    .unwrap_or("")
    .to_owned()
}

/// Plays the alert tone and answers "Yes, I heard it".
async fn speakers_heard(b: &Browser) {
    b.click("#spk-button").await;
    b.wait_for(
        "the question whether the tone was heard",
        "return !document.querySelector('#spk-confirm').hidden",
    )
    .await;
    b.click("#spk-heard").await;
    b.wait_for(
        "the speakers to pass",
        "return window.miulink.verdict.checks.spk.status === 'ok'",
    )
    .await;
}

async fn station_server(adjust: impl FnOnce(&mut miulink::Settings)) -> Server {
    let server = Server::start(adjust).await;
    server
        .add_user(
            "keswick-room1",
            "Keswick MIU Room 1",
            Role::Station,
            Some("Keswick"),
        )
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_out_the_device_check_names_what_it_did_not_check() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    let b = Browser::launch("check-signed-out", 1280, 1500).await;
    let v = open_check(&b, &server).await;
    eprintln!("verdict signed out: {}", v["text"]);
    let text = v["text"].as_str().unwrap_or("");
    assert!(!text.contains("All"), "{v}");
    assert!(text.contains("checks passed; "), "{v}");
    assert!(text.contains("not checked:"), "{v}");
    assert!(text.contains("TURN relay (sign in first)"), "{v}");
    assert!(text.contains("STUN server (sign in first)"), "{v}");
    assert!(text.contains("speakers (press Play the alert tone)"), "{v}");
    assert_ne!(v["state"], "ok", "{v}");
    assert_eq!(v["total"], 6, "{v}");
    // Nothing but local addresses could be tried, and it says so rather
    // than calling peer-to-peer video possible.
    let path = net_lines(&b, "path").await;
    assert!(path.contains("host only"), "{path}");
    assert!(path.contains("sign in first"), "{path}");
    assert!(!path.contains("Peer-to-peer video possible"), "{path}");
    // The way to sign in, and how to come back.
    let link = b
        .eval(
            "const box = document.querySelector('#net-signin');
             const a = box.querySelector('a');
             return !box.hidden && {href: a.getAttribute('href'), text: box.textContent};",
        )
        .await;
    assert_eq!(link["href"], "/", "{link}");
    assert!(
        link["text"]
            .as_str()
            .unwrap_or("")
            .contains("then open this check again"),
        "{link}"
    );
    b.screenshot("check-1-signed-out").await;
    b.assert_accessible("device check, signed out").await;

    // The speakers pass only when the user says the tone was heard.
    b.click("#spk-button").await;
    b.wait_for(
        "the question whether the tone was heard",
        "return !document.querySelector('#spk-confirm').hidden",
    )
    .await;
    let asked = verdict(&b).await;
    assert!(
        asked["text"]
            .as_str()
            .unwrap_or("")
            .contains("speakers (say whether you heard the tone)"),
        "{asked}"
    );
    b.assert_accessible("device check, speaker question").await;
    b.click("#spk-not-heard").await;
    let not_heard = verdict(&b).await;
    assert!(
        not_heard["text"]
            .as_str()
            .unwrap_or("")
            .contains("failed: speakers (the tone was not heard)"),
        "{not_heard}"
    );
    b.click("#spk-heard").await;
    let heard = verdict(&b).await;
    eprintln!("verdict signed out, tone heard: {}", heard["text"]);
    let heard_text = heard["text"].as_str().unwrap_or("");
    assert!(!heard_text.contains("speakers"), "{heard}");
    assert!(!heard_text.contains("All"), "{heard}");
    assert!(heard_text.contains("TURN relay (sign in first)"), "{heard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_the_device_check_gets_a_relay_candidate_from_the_real_turn_server() {
    let _one = crate::one_at_a_time().await;
    let coturn = Coturn::start();
    let server = station_server(|s| {
        s.stun_urls = vec![format!("stun:127.0.0.1:{}", coturn.port)];
        s.turn_urls = vec![coturn.url()];
        s.turn_secret = Some(TURN_SECRET.into());
    })
    .await;
    let b = Browser::launch("check-relay", 1280, 1500).await;
    sign_in(&b, &server, "keswick-room1", "/station").await;
    let v = open_check(&b, &server).await;
    eprintln!("verdict with coturn: {}", v["text"]);
    eprintln!("network with coturn: {}", v["network"]);
    assert_eq!(v["turn"]["status"], "ok", "{v}");
    let relayed = &v["network"]["turn"][0];
    assert!(relayed["relay"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(relayed["ended"], "found", "{v}");
    assert_eq!(v["stun"]["status"], "ok", "{v}");
    let turn = net_lines(&b, "turn").await;
    assert!(
        turn.contains(&format!(
            "TURN relay turn:127.0.0.1:{} (UDP): working",
            coturn.port
        )),
        "{turn}"
    );
    assert!(turn.contains("relay candidate"), "{turn}");
    let path = net_lines(&b, "path").await;
    assert!(path.contains("relay"), "{path}");
    assert!(!b.text("#check-summary").await.contains("All"), "{v}");
    b.assert_accessible("device check, relay working").await;

    // Every check run and passed: only now does it say so.
    speakers_heard(&b).await;
    b.wait_for(
        "the microphone to pick up the fake microphone's beeps",
        "return window.miulink.verdict.checks.mic.status === 'ok'",
    )
    .await;
    let all = verdict(&b).await;
    eprintln!("verdict with coturn, tone heard: {}", all["text"]);
    assert_eq!(
        all["text"], "All 6 checks passed: this device is ready for consults.",
        "{all}"
    );
    assert_eq!(all["state"], "ok");
    b.screenshot("check-2-relay-working").await;
    b.assert_accessible("device check, all passed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_on_a_closed_port_fails_the_device_check_clearly() {
    let _one = crate::one_at_a_time().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    let server = station_server(|s| {
        s.stun_urls = vec![format!("stun:127.0.0.1:{closed}")];
        s.turn_urls = vec![format!("turn:127.0.0.1:{closed}?transport=udp")];
        s.turn_secret = Some(TURN_SECRET.into());
    })
    .await;
    let b = Browser::launch("check-relay-closed", 1280, 1500).await;
    sign_in(&b, &server, "keswick-room1", "/station").await;
    let v = open_check(&b, &server).await;
    eprintln!("verdict with a closed relay port: {}", v["text"]);
    eprintln!("network with a closed relay port: {}", v["network"]);
    assert_eq!(v["turn"]["status"], "bad", "{v}");
    assert_eq!(v["network"]["turn"][0]["relay"], 0, "{v}");
    let turn = net_lines(&b, "turn").await;
    assert!(
        turn.contains(&format!(
            "Could not reach the relay at turn:127.0.0.1:{closed} (UDP): calls through strict firewalls will fail; tell IT."
        )),
        "{turn}"
    );
    let text = v["text"].as_str().unwrap_or("");
    assert!(text.contains("checks passed; failed: "), "{v}");
    assert!(
        text.contains(&format!(
            "TURN relay (could not reach turn:127.0.0.1:{closed} (UDP))"
        )),
        "{v}"
    );
    // A STUN server that never answers is not mistaken for one that
    // answered with this device's own address.
    assert_eq!(v["stun"]["status"], "bad", "{v}");
    assert!(
        text.contains(&format!(
            "STUN server (no answer from stun:127.0.0.1:{closed})"
        )),
        "{v}"
    );
    let stun = net_lines(&b, "stun").await;
    assert!(stun.contains("no answer"), "{stun}");
    let path = net_lines(&b, "path").await;
    assert!(path.contains("host only"), "{path}");
    assert_eq!(v["state"], "bad");
    assert_eq!(
        b.eval("return document.querySelector('#net-result').dataset.state")
            .await,
        "bad"
    );
    assert!(b.text("#net-result").await.contains("Problem"));
    b.screenshot("check-3-relay-unreachable").await;
    b.assert_accessible("device check, relay unreachable").await;
}
