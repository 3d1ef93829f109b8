//! One browser: the station's form refuses what the server would refuse,
//! a request can be cancelled, and the device check page works.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use serde_json::Value;
use signalling::Role;

const DESKTOP: (u32, u32) = (1366, 768);
const PHONE: (u32, u32) = (390, 844);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_form_refuses_a_name_and_a_request_can_be_cancelled() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "millom-room1",
            "Millom MIU Room 1",
            Role::Station,
            Some("Millom"),
        )
        .await;
    let nurse = Browser::launch("station-form", 1280, 800).await;

    // A wrong password is refused with a clear message.
    nurse.goto(&server.url("/")).await;
    nurse.type_text("#username", "millom-room1").await;
    nurse.type_text("#password", "not-the-password").await;
    nurse.click("#login-button").await;
    let error = nurse
        .wait_for(
            "the login error",
            "const box = document.querySelector('#login-error');
             return !box.hidden && box.textContent;",
        )
        .await;
    assert!(error.as_str().unwrap_or("").contains("wrong"), "{error}");

    sign_in(&nurse, &server, "millom-room1", "/station").await;

    // Nothing chosen: told what is missing, nothing sent.
    on_screen(&nurse, "request").await;
    nurse.click("#request-button").await;
    nurse
        .wait_for(
            "the error summary",
            "return !document.querySelector('#request-errors').hidden",
        )
        .await;
    let summary = nurse.text("#request-errors").await;
    assert!(summary.contains("how urgent"), "{summary}");
    assert!(summary.contains("reason"), "{summary}");

    // A name as the local reference is refused before anything is sent.
    request_consult(&nurse, "routine", "Possible fracture", "", "John Smith").await;
    let problem = nurse
        .wait_for(
            "the reference error",
            "const e = document.querySelector('#ref-error'); return !e.hidden && e.textContent;",
        )
        .await;
    assert!(
        problem.as_str().unwrap_or("").contains("digit"),
        "{problem}"
    );
    assert_eq!(
        nurse.eval("return document.body.dataset.screen").await,
        "request"
    );
    assert_eq!(
        server.consults().await["total"],
        0,
        "nothing reached the server"
    );
    nurse.screenshot("11-station-form-errors").await;

    // Corrected, it goes; with nobody on call the nurse is told so.
    nurse
        .eval("document.querySelector('#patient-ref').value = ''; return true;")
        .await;
    nurse.type_text("#patient-ref", "MIU-202677").await;
    nurse.click("#request-button").await;
    on_screen(&nurse, "waiting").await;
    nurse
        .wait_for(
            "the no-clinician message",
            "return !document.querySelector('#nobody').hidden",
        )
        .await;
    // The signalling connection drops (a Wi-Fi blip): the page reconnects
    // by itself and the request is still waiting.
    nurse
        .eval("window.miulink.socket.ws.close(); return true;")
        .await;
    nurse
        .wait_for(
            "the page to reconnect",
            "return window.miulink.socket.welcomes >= 2 && window.miulink.socket.state === 'open'",
        )
        .await;
    on_screen(&nurse, "waiting").await;
    nurse
        .wait_for(
            "the queue position after reconnecting",
            "return document.querySelector('#wait-position').textContent === '1'",
        )
        .await;
    assert_eq!(server.consults().await["consults"][0]["status"], "waiting");

    // No fallback phone configured: the message still says what to do.
    assert!(nurse
        .text("#fallback-text")
        .await
        .contains("phone A&E directly"));

    // Cancelled (two presses: a mis-tap does not withdraw it): back to
    // the form, told so, and logged as cancelled.
    nurse.click("#cancel-button").await;
    nurse
        .wait_for(
            "the cancel button to ask for a second press",
            "return document.querySelector('#cancel-button').classList.contains('armed')",
        )
        .await;
    nurse.click("#cancel-button").await;
    on_screen(&nurse, "request").await;
    let notice = nurse.text("#request-notice").await;
    assert!(notice.contains("cancelled"), "{notice}");
    let log = server.consults().await;
    assert_eq!(log["total"], 1);
    assert_eq!(log["consults"][0]["status"], "cancelled");
    assert_eq!(log["consults"][0]["patient_ref"], "MIU-202677");

    // The device check page: camera, microphone, server.
    nurse.goto(&server.url("/check")).await;
    nurse
        .wait_for(
            "the camera check",
            "return window.miulink && window.miulink.checks.cam && window.miulink.checks.cam.status === 'ok'",
        )
        .await;
    nurse
        .wait_for(
            "the network check",
            "const n = window.miulink.checks.net; return n && n.status !== 'pending' && n.status;",
        )
        .await;
    let network = nurse.text("#net-list").await;
    assert!(network.contains("MIU Link server reachable"), "{network}");
    assert!(
        network.contains("No STUN or TURN servers are configured"),
        "{network}"
    );
    nurse
        .wait_for(
            "the microphone to start",
            "const m = window.miulink.checks.mic; return m && m.status !== 'pending' || (document.querySelector('#mic-level').value > 0);",
        )
        .await;
    nurse.screenshot("12-device-check").await;
}

/// The field errors and the summary's entries, as the nurse sees them.
async fn errors_shown(nurse: &Browser) -> Value {
    nurse
        .eval(
            "const shown = (id) => { const e = document.querySelector(id); return e.hidden ? null : e.textContent; };
             const summary = document.querySelector('#request-errors');
             return {
               urgency: shown('#urgency-error'), reason: shown('#reason-error'), ref: shown('#ref-error'),
               summary: summary.hidden ? [] : [...summary.querySelectorAll('li')].map((li) => li.textContent),
               marked: [...document.querySelectorAll('#request-form .has-error')].map((f) => f.id),
               invalid: document.querySelector('#patient-ref').getAttribute('aria-invalid'),
             };",
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_form_errors_clear_as_soon_as_the_field_is_corrected() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "millom-room1",
            "Millom MIU Room 1",
            Role::Station,
            Some("Millom"),
        )
        .await;
    let nurse = Browser::launch("station-form-fix", DESKTOP.0, DESKTOP.1).await;
    sign_in(&nurse, &server, "millom-room1", "/station").await;
    on_screen(&nurse, "request").await;

    // Nothing chosen: both errors, by the fields and in the summary.
    nurse.click("#request-button").await;
    nurse
        .wait_for(
            "the error summary",
            "return !document.querySelector('#request-errors').hidden",
        )
        .await;
    let shown = errors_shown(&nurse).await;
    assert_eq!(
        shown["summary"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    assert!(
        !shown["urgency"].is_null() && !shown["reason"].is_null(),
        "{shown}"
    );
    nurse
        .screenshots_at("form-errors-1-both", &[DESKTOP, PHONE])
        .await;
    nurse.assert_accessible("request form, two errors").await;

    // The urgency chosen: its error goes at once, the reason's stays.
    nurse.click(".tile.urgency-urgent").await;
    let shown = errors_shown(&nurse).await;
    assert!(shown["urgency"].is_null(), "urgency error cleared: {shown}");
    assert_eq!(
        shown["marked"],
        serde_json::json!(["reason-field"]),
        "{shown}"
    );
    assert_eq!(
        shown["summary"],
        serde_json::json!(["Choose a reason."]),
        "{shown}"
    );

    // "Other" needs a few words: the message says so, then goes as they
    // are typed; with nothing left the summary goes too.
    // (Scrolled to the middle: the sticky request button covers the
    // bottom of the window, as it would for a finger.)
    nurse
        .eval("document.querySelector('#reason-chips input[value=\"Other\"] + span').scrollIntoView({block: 'center'}); return true;")
        .await;
    nurse
        .click("#reason-chips input[value=\"Other\"] + span")
        .await;
    let shown = errors_shown(&nurse).await;
    let other = shown["reason"].as_str().unwrap_or("");
    assert!(other.contains("say in a few words"), "{shown}");
    assert_eq!(
        shown["summary"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
    nurse
        .screenshots_at("form-errors-2-one-left", &[DESKTOP, PHONE])
        .await;
    nurse
        .assert_accessible("request form, one error left")
        .await;
    nurse.type_text("#details", "Dog bite, hand").await;
    let shown = errors_shown(&nurse).await;
    assert!(shown["reason"].is_null(), "reason error cleared: {shown}");
    assert_eq!(shown["summary"], serde_json::json!([]), "{shown}");
    assert_eq!(shown["marked"], serde_json::json!([]), "{shown}");

    // A name as the reference: refused; corrected, its error goes as soon
    // as the reference is a valid one (not before).
    nurse.type_text("#patient-ref", "John Smith").await;
    nurse.click("#request-button").await;
    let shown = errors_shown(&nurse).await;
    assert!(
        shown["ref"].as_str().unwrap_or("").contains("digit"),
        "{shown}"
    );
    assert_eq!(shown["invalid"], "true");
    nurse
        .eval("document.querySelector('#patient-ref').value = ''; return true;")
        .await;
    nurse.type_text("#patient-ref", "MIU-").await;
    let shown = errors_shown(&nurse).await;
    assert!(!shown["ref"].is_null(), "still wrong, still said: {shown}");
    nurse.type_text("#patient-ref", "0412").await;
    let shown = errors_shown(&nurse).await;
    assert!(shown["ref"].is_null(), "reference error cleared: {shown}");
    assert_eq!(shown["invalid"], "false");
    assert_eq!(shown["summary"], serde_json::json!([]), "{shown}");
    nurse
        .screenshots_at("form-errors-3-corrected", &[DESKTOP, PHONE])
        .await;
    nurse.assert_accessible("request form, corrected").await;

    // And it goes.
    nurse.click("#request-button").await;
    on_screen(&nurse, "waiting").await;
    assert_eq!(server.consults().await["total"], 1);
}
