//! A clinician filling in the outcome form is not rung (the outcome is owed
//! before the next ring), but is not out of the rota without knowing it:
//! the form shows how many wait and the most urgent of them, the tab title
//! counts them, and immediate or escalated requests sound the ring tone.
//! Saving the outcome rings at once. Signing out with the outcome unsaved
//! asks to be pressed again.

use crate::browser::Browser;
use crate::common::msg;
use crate::flows::*;
use crate::server::Server;
use serde_json::json;
use signalling::{EscalationPolicy, Role, Urgency};

const DESKTOP: (u32, u32) = (1366, 768);
const PHONE: (u32, u32) = (390, 844);

/// Screenshots at both sizes and axe-core on the state as it is.
async fn record_state(b: &Browser, name: &str, state: &str) {
    b.screenshots_at(name, &[DESKTOP, PHONE]).await;
    b.assert_accessible(state).await;
}

async fn chimes(b: &Browser) -> u64 {
    b.eval("return window.miulink.alerts.chimesPlayed()")
        .await
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outcome_form_shows_and_sounds_what_waits_and_saving_it_rings() {
    let _one = crate::one_at_a_time().await;
    // Urgent requests are re-alerted after 8 s (the default is 150 s).
    let server = Server::start(|s| {
        s.escalation[1] = EscalationPolicy {
            realert_after_ms: 8_000,
            escalate_after_ms: 600_000,
        };
    })
    .await;
    for (user, name, site) in [
        ("millom-room1", "Millom MIU Room 1", "Millom"),
        ("millom-room2", "Millom MIU Room 2", "Millom"),
        ("ulverston-room1", "Ulverston MIU Room 1", "Ulverston"),
    ] {
        server.add_user(user, name, Role::Station, Some(site)).await;
    }
    server
        .add_user(
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;

    let nurse = Browser::launch("owed-station", 1280, 800).await;
    let doctor = Browser::launch("owed-clinician", DESKTOP.0, DESKTOP.1).await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;
    on_screen(&doctor, "queue").await;
    turn_on_alerts(&doctor).await;
    let plain_title = doctor.eval("return document.title").await;

    sign_in(&nurse, &server, "millom-room1", "/station").await;
    video_call(&nurse, &doctor, "urgent", "Head injury").await;
    hang_up(&doctor).await;
    on_screen(&doctor, "outcome").await;

    // Nobody waits: the form says so quietly, and the title is plain.
    doctor
        .wait_for(
            "the quiet queue panel on the outcome form",
            "const box = document.querySelector('#owed-queue');
             return !box.hidden && box.dataset.level === 'none' && box.textContent.includes('No one is waiting');",
        )
        .await;
    assert_eq!(doctor.eval("return document.title").await, plain_title);
    record_state(
        &doctor,
        "owed-0-nobody-waiting",
        "outcome form, nobody waiting",
    )
    .await;

    // Signing out would lose the unsaved outcome: the first press says so
    // and asks for a second; left alone, it goes back to normal.
    doctor.click("#sign-out").await;
    let warning = doctor
        .shown_text("the sign-out warning", "#sign-out-warning")
        .await;
    assert!(
        warning.contains("the outcome of your last call is not saved yet"),
        "{warning}"
    );
    assert!(warning.contains("again"), "{warning}");
    assert_eq!(doctor.text("#sign-out").await, "Press again to sign out");
    assert_eq!(
        doctor
            .eval("return document.querySelector('#sign-out').getAttribute('aria-describedby')")
            .await,
        "sign-out-warning-text"
    );
    record_state(
        &doctor,
        "owed-signout-warning",
        "sign-out warning with the outcome unsaved",
    )
    .await;
    doctor
        .wait_for(
            "the sign-out warning to go by itself",
            "return document.querySelector('#sign-out-warning').hidden
                 && !document.querySelector('#sign-out').classList.contains('armed')
                 && document.querySelector('#sign-out').textContent.trim() === 'Sign out';",
        )
        .await;
    assert_eq!(
        doctor.eval("return location.pathname").await,
        "/clinician",
        "still signed in"
    );

    // An urgent request from another MIU: counted, shown and in the
    // title, but it does not sound (not immediate, not escalated yet).
    let mut room2 = server.ws_client("millom-room2").await;
    room2
        .send(msg::request(Urgency::Urgent, "Possible fracture"))
        .await;
    room2.expect("request_update").await;
    doctor
        .wait_for(
            "the count on the outcome form",
            "return document.querySelector('#owed-queue-title').textContent === 'Save the outcome to answer: 1 request waiting'",
        )
        .await;
    let top = doctor.text("#owed-top").await;
    for part in [
        "Urgent",
        "Millom MIU Room 2",
        "Millom",
        "Possible fracture",
        "waiting 0:",
    ] {
        assert!(top.contains(part), "{part:?} in {top:?}");
    }
    doctor
        .wait_for(
            "the title to count it",
            "return document.title === '(1) Waiting: URGENT \u{2013} MIU Link'",
        )
        .await;
    assert_eq!(
        doctor
            .eval("return window.miulink.alerts.ringing.size")
            .await,
        0,
        "an urgent request does not sound on the outcome form"
    );
    assert_eq!(
        doctor.eval("return document.body.dataset.screen").await,
        "outcome",
        "still on the form: nothing was answered"
    );
    record_state(
        &doctor,
        "owed-1-urgent-waiting",
        "outcome form, an urgent request waiting",
    )
    .await;

    // Nobody answers it: re-alerted, and now it sounds.
    let before = chimes(&doctor).await;
    doctor
        .wait_for(
            "the re-alerted request on the form",
            "const tag = document.querySelector('#owed-top .esc-tag');
             return tag && tag.textContent === 'Re-alerted';",
        )
        .await;
    doctor
        .wait_for(
            "the tone for the re-alerted request",
            &format!(
                "return window.miulink.alerts.chimesPlayed() >= {}",
                before + 1
            ),
        )
        .await;

    // An immediate request: on top, in the title, and it sounds.
    let mut room3 = server.ws_client("ulverston-room1").await;
    room3
        .send(msg::request(Urgency::Immediate, "Chest pain"))
        .await;
    room3.expect("request_update").await;
    doctor
        .wait_for(
            "two waiting, the immediate one on top",
            "const box = document.querySelector('#owed-queue');
             return box.dataset.level === 'immediate'
                 && document.querySelector('#owed-queue-title').textContent === 'Save the outcome to answer: 2 requests waiting';",
        )
        .await;
    let top = doctor.text("#owed-top").await;
    for part in [
        "Most urgent",
        "Immediate",
        "Ulverston MIU Room 1",
        "Ulverston",
        "Chest pain",
        "waiting 0:",
    ] {
        assert!(top.contains(part), "{part:?} in {top:?}");
    }
    doctor
        .wait_for(
            "the title to name the immediate request",
            "return document.title.startsWith('(2) Waiting: IMMEDIATE')
                 || document.title.startsWith('(2) Save the outcome to answer')",
        )
        .await;
    let before = chimes(&doctor).await;
    doctor
        .wait_for(
            "the tone to repeat",
            &format!(
                "return window.miulink.alerts.chimesPlayed() >= {}",
                before + 2
            ),
        )
        .await;
    assert_eq!(
        doctor.eval("return window.miulink.state.rung.size").await,
        0,
        "the switchboard rang nobody here: the outcome comes first"
    );
    // The wait ticks on the form.
    let shown = doctor.text("#owed-top .owed-wait-value").await;
    doctor
        .wait_for(
            "the wait on the form to tick",
            &format!(
                "return document.querySelector('#owed-top .owed-wait-value').textContent !== {}",
                json!(shown)
            ),
        )
        .await;
    record_state(
        &doctor,
        "owed-2-immediate-waiting",
        "outcome form, an immediate request waiting",
    )
    .await;

    // The outcome saved: back to the queue, where both ring at once.
    record_outcome(&doctor, "managed_locally", "").await;
    doctor
        .wait_for(
            "both requests to ring",
            "return window.miulink.state.rung.size === 2 && !document.querySelector('#ringing-banner').hidden",
        )
        .await;
    doctor
        .wait_for(
            "the ringing title",
            "return /Consult request waiting|Answer the MIU/.test(document.title)",
        )
        .await;
    let ringing = doctor.text("#ringing-text").await;
    assert!(ringing.contains("2 requests"), "{ringing}");
    assert_eq!(
        doctor.text("#queue > li .request-station").await,
        "Ulverston MIU Room 1",
        "the immediate request first"
    );
}
