//! The whole consult in two real browsers: the nurse requests, the
//! clinician is rung and answers, both see each other's video, chat, the
//! clinician hangs up and records the outcome, and the log has it all.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use signalling::Role;

const PHONE: &str = "01229 870870";

/// "m:ss" on a clock, as seconds.
fn seconds(clock: &str) -> u64 {
    let (m, s) = clock
        .split_once(':')
        .unwrap_or_else(|| panic!("not an m:ss clock: {clock:?}"));
    let part = |p: &str| {
        p.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("not an m:ss clock: {clock:?}"))
    };
    part(m) * 60 + part(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_and_a_clinician_hold_a_video_consult() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|s| s.fallback_phone = Some(PHONE.into())).await;
    server
        .add_user(
            "millom-room2",
            "Millom MIU Room 2",
            Role::Station,
            Some("Millom"),
        )
        .await;
    server
        .add_user(
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    // A treatment-room tablet and a desktop in A&E.
    let nurse = Browser::launch("station", 1280, 800).await;
    let doctor = Browser::launch("clinician", 1440, 900).await;

    // The login page.
    nurse.goto(&server.url("/")).await;
    nurse
        .wait_for(
            "the login form",
            "return !!document.querySelector('#login-button')",
        )
        .await;
    nurse.screenshot("01-login").await;

    // The nurse signs in and asks for a consult. No clinician is on yet.
    sign_in(&nurse, &server, "millom-room2", "/station").await;
    on_screen(&nurse, "request").await;
    nurse.screenshot("02-station-request-form").await;
    request_consult(&nurse, "urgent", "Head injury", "on warfarin", "MIU-0412").await;
    on_screen(&nurse, "waiting").await;
    assert_eq!(nurse.text("#wait-position").await, "1");
    let phone = nurse
        .wait_for(
            "the no-clinician message with the fallback phone",
            "const box = document.querySelector('#nobody');
             return !box.hidden && document.querySelector('#fallback-phone').textContent;",
        )
        .await;
    assert_eq!(phone, PHONE);
    assert_eq!(nurse.text("#wait-clinicians").await, "0");
    nurse
        .screenshot("03-station-waiting-nobody-available")
        .await;

    // The wait clock ticks.
    let first = nurse.text("#wait-clock").await;
    nurse
        .wait_for(
            "the wait clock to tick",
            &format!(
                "return document.querySelector('#wait-clock').textContent !== {}",
                serde_json::json!(first)
            ),
        )
        .await;

    // The clinician comes on: the request is in the queue with its wait.
    // The clinician allowed desktop notifications for the site before.
    doctor.goto(&server.url("/")).await;
    doctor.grant_notifications().await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;
    on_screen(&doctor, "queue").await;
    doctor
        .wait_for(
            "the request in the queue",
            "const li = document.querySelector('#queue > li');
             return li && li.querySelector('.request-reason').textContent === 'Head injury: on warfarin';",
        )
        .await;
    assert_eq!(
        doctor.text("#queue > li .request-station").await,
        "Millom MIU Room 2"
    );
    let meta = doctor.text("#queue > li .request-meta").await;
    assert!(
        meta.contains("Millom") && meta.contains("Ref MIU-0412"),
        "{meta}"
    );
    assert_eq!(doctor.text("#queue > li .badge").await, "Urgent");
    turn_on_alerts(&doctor).await;
    // This clinician likes a camera preview while a request rings.
    doctor.click("#camera-ready").await;
    doctor
        .wait_for(
            "the camera preview while ringing",
            "return !document.querySelector('#ring-preview-box').hidden",
        )
        .await;

    // It rings: a repeating tone, a notification, the title.
    doctor
        .wait_for(
            "the tone to repeat",
            "return window.miulink.alerts.chimesPlayed() >= 2",
        )
        .await;
    doctor
        .wait_for(
            "the title to announce the request",
            "return /Consult request waiting|Answer the MIU/.test(document.title)",
        )
        .await;
    doctor
        .wait_for(
            "a desktop notification",
            "return window.miulink.alerts.notified >= 1",
        )
        .await;
    assert!(!doctor
        .eval("return document.querySelector('#ringing-banner').hidden")
        .await
        .as_bool()
        .unwrap_or(true));

    // The wait shown to the clinician ticks too.
    let shown = doctor.text("#queue > li .wait-value").await;
    assert!(shown.contains(':'), "wait shown as m:ss, got {shown:?}");
    doctor
        .wait_for(
            "the clinician's wait clock to tick",
            &format!(
                "return document.querySelector('#queue > li .wait-value').textContent !== {}",
                serde_json::json!(shown)
            ),
        )
        .await;

    doctor.screenshot("05-clinician-queue-ringing").await;

    // A long wait is marked in words, not only colour. (The real threshold
    // for an urgent request is 5 minutes; the page's is shortened here.)
    assert!(doctor
        .eval("return document.querySelector('#queue > li .long-tag').hidden")
        .await
        .as_bool()
        .unwrap_or(false));
    doctor
        .eval("window.miulink.longWaitMs.urgent = 1000; return true;")
        .await;
    doctor
        .wait_for(
            "the long-wait mark",
            "const li = document.querySelector('#queue > li');
             return li.classList.contains('long-wait') && !li.querySelector('.long-tag').hidden
                 && li.querySelector('.long-tag').textContent === 'Long wait';",
        )
        .await;

    // And the station now has a clinician available.
    nurse
        .wait_for(
            "one clinician available",
            "return document.querySelector('#wait-clinicians').textContent === '1'
                 && document.querySelector('#nobody').hidden",
        )
        .await;
    nurse.screenshot("04-station-waiting").await;
    let waited_before_answer = seconds(&doctor.text("#queue > li .wait-value").await);

    // The clinician answers; both sides get each other's video.
    answer_first(&doctor).await;
    on_screen(&doctor, "call").await;
    on_screen(&nurse, "call").await;
    let doctor_frames = doctor.wait_for_remote_video().await;
    let nurse_frames = nurse.wait_for_remote_video().await;
    assert!(doctor_frames > 0 && nurse_frames > 0);
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the call to show as connected",
            "return document.querySelector('.call-status .label').textContent === 'Connected'",
        )
        .await;
    }
    assert_eq!(nurse.text(".peer-name").await, "Dr Asha Patel");
    assert_eq!(doctor.text(".peer-name").await, "Millom MIU Room 2");

    // A chat message each way over the data channel.
    doctor
        .wait_for(
            "the chat to open",
            "return !document.querySelector('#chat-input').disabled",
        )
        .await;
    doctor
        .type_text("#chat-input", "Tranexamic acid 1 g IV")
        .await;
    doctor.click(".chat-send").await;
    nurse
        .wait_for(
            "the clinician's chat message",
            "return [...document.querySelectorAll('.chat-log li.theirs .chat-text')]
                 .some((e) => e.textContent === 'Tranexamic acid 1 g IV')",
        )
        .await;
    nurse
        .type_text("#chat-input", "Given at 14:05, GCS 15")
        .await;
    nurse.click(".chat-send").await;
    doctor
        .wait_for(
            "the nurse's chat message",
            "return [...document.querySelectorAll('.chat-log li.theirs .chat-text')]
                 .some((e) => e.textContent === 'Given at 14:05, GCS 15')",
        )
        .await;
    // Frames keep coming (the picture is live, not one frame).
    wait_for_more_frames(&doctor, doctor_frames, 10).await;
    nurse.screenshot("06-station-in-call").await;
    doctor.screenshot("07-clinician-in-call").await;
    nurse
        .assert_accessible("station in a call, with chat")
        .await;
    doctor
        .assert_accessible("clinician in a call, with chat")
        .await;

    // The clinician hangs up: the outcome is required.
    hang_up(&doctor).await;
    on_screen(&doctor, "outcome").await;
    on_screen(&nurse, "after").await;
    doctor.screenshot("08-clinician-outcome-form").await;
    doctor
        .assert_accessible("outcome form, with the chat transcript")
        .await;
    nurse
        .assert_accessible("after the call, waiting for the outcome, with the chat transcript")
        .await;
    doctor.click("#outcome-button").await;
    doctor
        .wait_for(
            "the outcome to be required",
            "return !document.querySelector('#outcome-errors').hidden",
        )
        .await;
    assert_eq!(
        doctor.eval("return document.body.dataset.screen").await,
        "outcome",
        "nothing saved without an outcome"
    );
    doctor
        .assert_accessible("outcome form, outcome missing")
        .await;
    record_outcome(&doctor, "managed_locally", "Glued; head injury advice").await;
    doctor
        .wait_for(
            "the outcome saved notice",
            "return document.querySelector('#queue-notice').textContent.includes('Outcome saved')",
        )
        .await;
    let outcome = nurse
        .wait_for(
            "the outcome on the station",
            "const e = document.querySelector('#outcome-value'); return e && e.textContent;",
        )
        .await;
    assert_eq!(outcome, "Managed locally in the MIU");
    nurse.screenshot("09-station-after-call").await;
    doctor.screenshot("10-clinician-after-outcome").await;
    nurse
        .assert_accessible("after the call, outcome recorded")
        .await;

    // The session log has the consult with its times and outcome.
    let log = server.consults().await;
    assert_eq!(log["total"], 1, "{log}");
    let c = &log["consults"][0];
    assert_eq!(c["station"], "Millom MIU Room 2");
    assert_eq!(c["clinician"], "Dr Asha Patel");
    assert_eq!(c["urgency"], "urgent");
    assert_eq!(c["reason"], "Head injury: on warfarin");
    assert_eq!(c["patient_ref"], "MIU-0412");
    assert_eq!(c["outcome"], "managed_locally");
    assert_eq!(c["outcome_note"], "Glued; head injury advice");
    assert_eq!(c["end_reason"], "hung_up_by_clinician");
    let wait_ms = c["wait_ms"].as_i64().expect("wait_ms");
    assert!(
        wait_ms >= waited_before_answer as i64 * 1000,
        "the log's wait ({wait_ms} ms) covers the {waited_before_answer} s shown before answering"
    );
    let connect_ms = c["connect_ms"]
        .as_i64()
        .expect("connect_ms: media connected on both sides");
    assert!(connect_ms >= 0);
    let duration_ms = c["duration_ms"].as_i64().expect("duration_ms");
    assert!(duration_ms > 0);
    assert!(c["connected_at"].as_i64().is_some());
}
