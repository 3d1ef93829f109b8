//! What a nurse and a clinician do, step by step, in the real pages.

#![allow(dead_code)]

use crate::browser::Browser;
use crate::server::{Server, PASSWORD};
use serde_json::json;

/// Signs in on the login page and waits for the role's own screen.
pub async fn sign_in(b: &Browser, server: &Server, username: &str, home: &str) {
    sign_in_at(b, &server.base, username, home).await;
}

/// [`sign_in`] on the server at `base` (e.g. `http://127.0.0.1:8080`).
pub async fn sign_in_at(b: &Browser, base: &str, username: &str, home: &str) {
    b.goto(&format!("{base}/")).await;
    b.wait_for(
        "the login form",
        "return !!document.querySelector('#username')",
    )
    .await;
    b.type_text("#username", username).await;
    b.type_text("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.wait_for(
        &format!("{home} after signing in"),
        &format!(
            "return location.pathname === {} && !!window.miulink && window.miulink.socket.state === 'open'",
            json!(home)
        ),
    )
    .await;
}

/// Waits until the page shows this screen (`body[data-screen]`).
pub async fn on_screen(b: &Browser, screen: &str) {
    b.wait_for(
        &format!("the {screen} screen"),
        &format!("return document.body.dataset.screen === {}", json!(screen)),
    )
    .await;
}

/// Fills in and sends the station's request form.
pub async fn request_consult(
    nurse: &Browser,
    urgency: &str,
    reason: &str,
    details: &str,
    reference: &str,
) {
    on_screen(nurse, "request").await;
    nurse.click(&format!(".tile.urgency-{urgency}")).await;
    nurse
        .click(&format!(
            "#reason-chips input[value={}] + span",
            json!(reason)
        ))
        .await;
    if !details.is_empty() {
        nurse.type_text("#details", details).await;
    }
    if !reference.is_empty() {
        nurse.type_text("#patient-ref", reference).await;
    }
    nurse.click("#request-button").await;
}

/// Sound may need a click on the page first (the browsers' autoplay rule);
/// then a banner asks for it. Waits until the ringer can sound.
pub async fn turn_on_alerts(doctor: &Browser) {
    let banner = doctor
        .eval("return !document.querySelector('#alerts-banner').hidden")
        .await;
    if banner.as_bool() == Some(true) {
        doctor.click("#alerts-button").await;
    }
    doctor
        .wait_for("sound to be on", "return window.miulink.alerts.soundOn")
        .await;
}

/// The clinician answers the (only) request in the queue.
pub async fn answer_first(doctor: &Browser) {
    doctor.click("#queue > li [data-action=answer]").await;
}

/// A whole call set up: the nurse requests, the clinician answers the only
/// request in the queue, and both sides decode the other's video.
pub async fn video_call(nurse: &Browser, doctor: &Browser, urgency: &str, reason: &str) {
    request_consult(nurse, urgency, reason, "", "").await;
    on_screen(nurse, "waiting").await;
    doctor
        .wait_for(
            "the request",
            "return document.querySelectorAll('#queue > li').length === 1",
        )
        .await;
    answer_first(doctor).await;
    nurse.wait_for_remote_video().await;
    doctor.wait_for_remote_video().await;
}

/// Two presses: the hang-up button asks to be pressed again.
pub async fn hang_up(b: &Browser) {
    b.click(".call-controls .control-hangup").await;
    b.wait_for(
        "the hang-up button to ask for confirmation",
        "return document.querySelector('.control-hangup').classList.contains('armed')",
    )
    .await;
    b.click(".call-controls .control-hangup").await;
}

pub async fn record_outcome(doctor: &Browser, outcome: &str, note: &str) {
    on_screen(doctor, "outcome").await;
    doctor
        .click(&format!("#outcome-options .outcome-{outcome}"))
        .await;
    if !note.is_empty() {
        doctor.type_text("#outcome-note", note).await;
    }
    doctor.click("#outcome-button").await;
    on_screen(doctor, "queue").await;
}

/// The selected ICE candidate pair of the page's live call: the local and
/// remote candidate types (`host`, `srflx`, `relay`), and the local ICE
/// username fragment (which an ICE restart changes).
pub async fn selected_pair(b: &Browser) -> serde_json::Value {
    b.eval_async(
        "const done = arguments[arguments.length - 1];
         const pc = window.miulink && window.miulink.pc;
         if (!pc) { done(null); return; }
         pc.getStats().then((report) => {
           let id = null;
           report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) id = s.selectedCandidatePairId; });
           const pair = id && report.get(id);
           const local = pair && report.get(pair.localCandidateId);
           const remote = pair && report.get(pair.remoteCandidateId);
           const ufrag = /a=ice-ufrag:([^ \\r\\n]+)/.exec(pc.localDescription ? pc.localDescription.sdp : '');
           done({
             local: local ? local.candidateType : null,
             remote: remote ? remote.candidateType : null,
             state: pair ? pair.state : null,
             ufrag: ufrag ? ufrag[1] : null,
           });
         }).catch((e) => done({error: String(e)}));",
    )
    .await
}

/// Waits until the page's live call decodes this many more video frames
/// than `from` (the picture is live, not frozen).
pub async fn wait_for_more_frames(b: &Browser, from: u64, more: u64) -> u64 {
    let deadline = std::time::Instant::now() + crate::browser::WAIT;
    loop {
        let now = b.frames_decoded().await;
        if now >= from + more {
            return now;
        }
        if std::time::Instant::now() >= deadline {
            b.fail(&format!(
                "video frames stopped: {now} decoded, wanted {} (from {from})",
                from + more
            ))
            .await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The page's timing marks (`window.miulink.marks`, epoch milliseconds).
pub async fn marks(b: &Browser) -> serde_json::Value {
    b.eval("return window.miulink.marks").await
}

/// Marks the page's peer connection, so that [`back_in_the_same_call`]
/// can tell afterwards that it is the same object (kept), not a new one.
pub async fn mark_peer_connection(b: &Browser) {
    b.eval("window.miulink.pc.__marked = true; return true;")
        .await;
}

/// After the signalling server went away (a restart, a takeover): the page
/// is back on the server, still in the call shown as connected, on the
/// peer connection marked by [`mark_peer_connection`] (never renegotiated),
/// and its picture keeps decoding.
pub async fn back_in_the_same_call(b: &Browser) {
    b.wait_for(
        "the page to reconnect to the signalling server",
        "return window.miulink.socket.state === 'open'
            && document.querySelector('#connection .label').textContent === 'Connected'",
    )
    .await;
    b.wait_for(
        "the call to show as connected",
        "return document.body.dataset.screen === 'call'
            && document.querySelector('.call-status .label').textContent === 'Connected'
            && document.querySelector('.server-notice').hidden
            && document.querySelector('.peer-notice').hidden",
    )
    .await;
    assert_eq!(
        b.eval(
            "return window.miulink.pc.__marked === true && window.miulink.call.negotiations <= 1"
        )
        .await,
        true,
        "{}: the peer connection was kept",
        b.name
    );
    let frames = b.frames_decoded().await;
    wait_for_more_frames(b, frames, 10).await;
}
