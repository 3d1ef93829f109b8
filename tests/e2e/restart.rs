//! The signalling server is killed (`kill -9`) in the middle of a call and
//! started again. Media is peer to peer: the picture keeps coming while
//! the server is down, both pages reconnect by themselves and keep the same
//! peer connection (no new negotiation), and the call's end is logged
//! afterwards, with each side's quality summary.

use crate::browser::Browser;
use crate::common::BinaryServer;
use crate::flows::*;
use signalling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_a_server_kill_and_restart() {
    let _one = crate::one_at_a_time().await;
    let mut server = BinaryServer::start(
        &[
            (
                "millom-room1",
                "Millom MIU Room 1",
                Role::Station,
                Some("Millom"),
            ),
            (
                "dr-patel",
                "Dr Asha Patel",
                Role::Clinician,
                Some("Furness General"),
            ),
            ("e2e-manager", "Manager", Role::Manager, None),
        ],
        &["--fallback-phone", "01229 870870"],
    )
    .await;
    let nurse = Browser::launch("station-restart", 1280, 800).await;
    let doctor = Browser::launch("clinician-restart", 1280, 800).await;
    sign_in_at(&doctor, &server.base, "dr-patel", "/clinician").await;
    sign_in_at(&nurse, &server.base, "millom-room1", "/station").await;
    video_call(&nurse, &doctor, "immediate", "Chest pain").await;
    // Mark both peer connections, to tell afterwards whether they are the
    // same objects (kept) or new ones (renegotiated).
    for side in [&nurse, &doctor] {
        mark_peer_connection(side).await;
    }
    let negotiation = nurse.eval("return window.miulink.call.negotiation").await;

    server.kill_9();
    let killed = std::time::Instant::now();
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the page to notice the server is gone",
            "return window.miulink.socket.state !== 'open'",
        )
        .await;
    }
    // The server is down, and the picture still flows both ways.
    let nurse_frames = nurse.frames_decoded().await;
    let doctor_frames = doctor.frames_decoded().await;
    let nurse_during = wait_for_more_frames(&nurse, nurse_frames, 30).await - nurse_frames;
    let doctor_during = wait_for_more_frames(&doctor, doctor_frames, 30).await - doctor_frames;
    nurse
        .wait_for(
            "the 'lost contact with the server' note in the call",
            "return !document.querySelector('.server-notice').hidden",
        )
        .await;
    assert_eq!(
        nurse.text(".call-status .label").await,
        "Connected",
        "the call itself is not interrupted"
    );
    nurse.screenshot("24-station-in-call-server-down").await;
    assert!(
        reqwest::get(server.url("/healthz")).await.is_err(),
        "the server really is down while the frames were counted"
    );

    server.restart().await;
    let down = killed.elapsed();
    let up = std::time::Instant::now();
    for side in [&nurse, &doctor] {
        back_in_the_same_call(side).await;
    }
    assert_eq!(
        nurse.eval("return window.miulink.call.negotiation").await,
        negotiation
    );
    eprintln!(
        "measured: server down {} ms; frames decoded meanwhile: station {nurse_during}, \
         clinician {doctor_during}; both pages back on the server {} ms after it was up",
        down.as_millis(),
        up.elapsed().as_millis()
    );

    // Hang up after the restart: the end and the outcome are logged.
    hang_up(&nurse).await;
    on_screen(&nurse, "after").await;
    record_outcome(&doctor, "managed_locally", "").await;
    nurse
        .wait_for(
            "the outcome on the station",
            "const e = document.querySelector('#outcome-value'); return e && e.textContent === 'Managed locally in the MIU';",
        )
        .await;
    let log = server.consults("e2e-manager").await;
    assert_eq!(log["total"], 1, "{log}");
    let c = &log["consults"][0];
    assert_eq!(c["end_reason"], "hung_up_by_station", "{c}");
    assert_eq!(c["outcome"], "managed_locally");
    assert!(c["connected_at"].as_i64().is_some(), "{c}");
    // Quality summaries from both sides reached the log (the station sent
    // its last one as it hung up).
    for side in ["station_quality", "clinician_quality"] {
        let q = &c[side];
        assert!(
            q["bitrate_kbps"].as_f64().is_some_and(|b| b > 0.0),
            "{side}: {q}"
        );
        assert!(q["packet_loss_pct"].as_f64().is_some(), "{side}: {q}");
        assert!(q["fps"].as_f64().is_some_and(|f| f > 0.0), "{side}: {q}");
        assert!(
            q.get("relayed").is_none() && q.get("audio_only").is_none(),
            "{side}: direct and with video: {q}"
        );
    }
}
