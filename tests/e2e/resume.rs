//! A station page reloaded in the middle of a call (a tablet restarted, a
//! browser crash) comes back to the same call, with video again.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use signalling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_station_page_resumes_its_call() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "millom-room3",
            "Millom MIU Room 3",
            Role::Station,
            Some("Millom"),
        )
        .await;
    server
        .add_user(
            "dr-jones",
            "Dr Rhys Jones",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let nurse = Browser::launch("station-resume", 1280, 800).await;
    let doctor = Browser::launch("clinician-resume", 1280, 800).await;
    sign_in(&doctor, &server, "dr-jones", "/clinician").await;
    sign_in(&nurse, &server, "millom-room3", "/station").await;

    video_call(&nurse, &doctor, "immediate", "Chest pain").await;
    let before = doctor.eval("return window.miulink.call.negotiation").await;

    nurse.refresh().await;
    on_screen(&nurse, "call").await;
    // The page says it has found the call again.
    let back = nurse
        .wait_for(
            "the 'back in your call' note",
            "const n = document.querySelector('.info-notice'); return !n.hidden && n.textContent;",
        )
        .await;
    assert_eq!(
        back,
        "Back in your call with Dr Rhys Jones. The picture returns in a moment."
    );
    // A fresh negotiation: a new peer connection on both sides, video again.
    doctor
        .wait_for(
            "the clinician to take the new offer",
            &format!(
                "return window.miulink.call && window.miulink.call.negotiation !== {}",
                before
            ),
        )
        .await;
    nurse.wait_for_remote_video().await;
    doctor.wait_for_remote_video().await;
    assert_eq!(nurse.text(".peer-name").await, "Dr Rhys Jones");

    // Two negotiations overlapping on the station (the clinician asked for
    // an offer just as the station's own recovery made one): the first
    // peer connection is closed under its pending createOffer, which a
    // browser then never settles. The signals behind it must still be
    // handled, or the call never connects again.
    let overlapped = nurse
        .eval(
            "const c = window.miulink.call;
             c.handleSignal({ negotiation: c.negotiation, want_offer: true });
             window.setTimeout(() => c.restart('test: a second negotiation over the first'), 0);
             return c.negotiation;",
        )
        .await;
    nurse
        .wait_for(
            "the second negotiation to connect",
            &format!(
                "const c = window.miulink.call;
                 return c.negotiation !== {overlapped} && c.negotiations >= 3
                     && c.pc.signalingState === 'stable' && c.iceConnected;"
            ),
        )
        .await;
    // (Frames are counted on the newest peer connection, from zero.)
    nurse.wait_for_remote_video().await;
    doctor.wait_for_remote_video().await;

    // The clinician's side asks for an ICE restart while the station's own
    // link is fine: the station shows "Reconnecting" while it restarts ICE
    // and, once recovered, clears it again (it once stayed over live video).
    nurse
        .wait_for(
            "the station to accept another restart",
            "return Date.now() - window.miulink.call.lastRestart > 4500",
        )
        .await;
    let recoveries = nurse
        .eval("return window.miulink.call.recoveries.length")
        .await;
    doctor
        .eval(
            "const c = window.miulink.call;
             return c.sendSignal({ negotiation: c.negotiation, want_ice_restart: true });",
        )
        .await;
    nurse
        .wait_for(
            "the station to recover for the clinician",
            &format!(
                "const c = window.miulink.call;
                 return c.recoveries.length > {recoveries} && !c.recovery && c.link === 'ok'
                     && document.querySelector('.remote-overlay').hidden
                     && document.querySelector('.call-status .label').textContent === 'Connected';"
            ),
        )
        .await;

    // Still one consult, ended and recorded normally.
    hang_up(&nurse).await;
    on_screen(&nurse, "after").await;
    record_outcome(&doctor, "transfer_to_ed", "").await;
    nurse
        .wait_for(
            "the outcome on the station",
            "const e = document.querySelector('#outcome-value'); return e && e.textContent === 'Transfer to A&E';",
        )
        .await;
    let log = server.consults().await;
    assert_eq!(log["total"], 1, "{log}");
    assert_eq!(log["consults"][0]["end_reason"], "hung_up_by_station");
    assert_eq!(log["consults"][0]["outcome"], "transfer_to_ed");
    assert!(log["consults"][0]["connect_ms"].as_i64().is_some());
}
