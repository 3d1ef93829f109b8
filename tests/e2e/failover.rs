//! Leader and standby under two real browsers: two `miulink` binaries on
//! one real PostgreSQL behind a real HAProxy, a nurse and a clinician in a
//! live video call through HAProxy's address. The leader is killed with
//! SIGKILL; the picture keeps decoding (media is peer to peer), both pages
//! say "Reconnecting…" (never an error page), come back on the standby that
//! now leads, through the same URL, and resume the same call on the same
//! peer connection; its end and outcome are logged by the new leader.

use crate::browser::Browser;
use crate::common::haproxy::Haproxy;
use crate::common::{postgres_with_accounts, BinaryServer};
use crate::flows::*;
use signalling::Role;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_call_survives_a_takeover() {
    let _one = crate::one_at_a_time().await;
    let url = postgres_with_accounts(&[
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
    ])
    .await;
    let mut a = BinaryServer::on(&url, &[]).await;
    a.wait_for_role("leader", Duration::from_secs(10)).await;
    let b = a.beside(&[]).await;
    b.wait_for_role("standby", Duration::from_secs(5)).await;
    let proxy = Haproxy::start(&[a.port(), b.port()]).await;

    let nurse = Browser::launch("station-failover", 1280, 800).await;
    let doctor = Browser::launch("clinician-failover", 1280, 800).await;
    sign_in_at(&doctor, &proxy.base(), "dr-patel", "/clinician").await;
    sign_in_at(&nurse, &proxy.base(), "millom-room1", "/station").await;
    video_call(&nurse, &doctor, "urgent", "Wound or laceration").await;
    for side in [&nurse, &doctor] {
        mark_peer_connection(side).await;
    }
    let negotiation = nurse.eval("return window.miulink.call.negotiation").await;

    a.kill_9();
    let killed = Instant::now();
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the pill to say 'Reconnecting…' during the takeover",
            "return window.miulink.socket.state !== 'open'
                && document.querySelector('#connection .label').textContent === 'Reconnecting\u{2026}'",
        )
        .await;
        assert_eq!(
            side.eval("return document.body.dataset.screen").await,
            "call",
            "{}: still on the call screen, not an error page",
            side.name
        );
    }
    nurse.screenshot("25-station-in-call-during-takeover").await;
    // The picture still flows both ways while the standby waits for the
    // dead leader's lease to run out (3 s).
    let nurse_frames = nurse.frames_decoded().await;
    let doctor_frames = doctor.frames_decoded().await;
    let nurse_during = wait_for_more_frames(&nurse, nurse_frames, 20).await - nurse_frames;
    let doctor_during = wait_for_more_frames(&doctor, doctor_frames, 20).await - doctor_frames;
    let counted = killed.elapsed();

    b.wait_for_role("leader", Duration::from_secs(5)).await;
    let led = killed.elapsed();
    assert!(led < Duration::from_secs(5), "the standby led within 5 s");
    let mut reconnected = Vec::new();
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the page to be back on the signalling server",
            "return window.miulink.socket.state === 'open'",
        )
        .await;
        reconnected.push(killed.elapsed().as_millis());
    }
    for side in [&nurse, &doctor] {
        back_in_the_same_call(side).await;
    }
    let back = killed.elapsed();
    assert_eq!(
        nurse.eval("return window.miulink.call.negotiation").await,
        negotiation
    );
    eprintln!(
        "measured: frames decoded in the first {} ms after the kill: station {nurse_during}, \
         clinician {doctor_during}; the standby led {} ms after the kill; pages back on the signalling server at \
         {} ms (station) and {} ms (clinician), both back in the call (10 more frames) at {} ms",
        counted.as_millis(),
        led.as_millis(),
        reconnected[0],
        reconnected[1],
        back.as_millis()
    );

    // The new leader ends the call and logs it whole.
    hang_up(&doctor).await;
    on_screen(&nurse, "after").await;
    record_outcome(&doctor, "managed_locally", "").await;
    nurse
        .wait_for(
            "the outcome on the station",
            "const e = document.querySelector('#outcome-value'); return e && e.textContent === 'Managed locally in the MIU';",
        )
        .await;
    let log = b.consults("e2e-manager").await;
    assert_eq!(log["total"], 1, "{log}");
    let c = &log["consults"][0];
    assert_eq!(c["status"], "completed", "{c}");
    assert_eq!(c["end_reason"], "hung_up_by_clinician", "{c}");
    assert_eq!(c["outcome"], "managed_locally", "{c}");
    assert!(c["connected_at"].as_i64().is_some(), "{c}");
}
