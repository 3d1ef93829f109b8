//! Nobody answers: the nurse is told that A&E was alerted again, then sees
//! the fallback phone number; the clinician on escalation duty gets an
//! alarm, a notification and a banner even while busy, and again (without
//! being able to answer) while in a call. The station's connection blips
//! on the way and it keeps its request and place.

use crate::browser::Browser;
use crate::common::msg;
use crate::flows::*;
use crate::server::Server;
use signalling::{EscalationPolicy, Role, Urgency};

const PHONE: &str = "01229 870870";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_are_realerted_then_escalated_to_the_duty_holder() {
    let _one = crate::one_at_a_time().await;
    // Short escalation times (the defaults are minutes): urgent requests
    // are re-alerted after 3 s and escalated after 7 s.
    let server = Server::start(|s| {
        s.fallback_phone = Some(PHONE.into());
        s.escalation[1] = EscalationPolicy {
            realert_after_ms: 3_000,
            escalate_after_ms: 7_000,
        };
    })
    .await;
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
            "millom-room1",
            "Millom MIU Room 1",
            Role::Station,
            Some("Millom"),
        )
        .await;
    server
        .add_user(
            "nic",
            "Sister Ruth Ellis",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    server
        .store
        .set_escalation_duty("nic", true)
        .await
        .expect("duty given");

    let nurse = Browser::launch("station-escalation", 1280, 800).await;
    let nic = Browser::launch("duty-clinician", 1440, 900).await;

    // The nurse in charge is signed in but busy: not rung for requests.
    nic.goto(&server.url("/")).await;
    nic.grant_notifications().await;
    sign_in(&nic, &server, "nic", "/clinician").await;
    on_screen(&nic, "queue").await;
    turn_on_alerts(&nic).await;
    nic.wait_for(
        "the escalation duty shown in the status card",
        "return !document.querySelector('#duty-fact').hidden",
    )
    .await;
    nic.click(".seg-busy").await;
    nic.wait_for(
        "busy",
        "return document.querySelector('#availability').dataset.status === 'busy'",
    )
    .await;

    sign_in(&nurse, &server, "millom-room2", "/station").await;
    request_consult(&nurse, "urgent", "Burn or scald", "child, hand", "").await;
    on_screen(&nurse, "waiting").await;
    let request_id = nurse
        .wait_for(
            "the request id",
            "return window.miulink.state.request && window.miulink.state.request.request_id",
        )
        .await;

    // Step 1: re-alerted, but the only clinician is busy: nobody could be
    // alerted, and the nurse is told so, with the phone number first
    // (never "A&E has been alerted again" when nobody was).
    let told = nurse
        .wait_for(
            "the nobody-alerted message",
            "const box = document.querySelector('#escalated');
             return !box.hidden && box.dataset.reach === 'none' && box.textContent;",
        )
        .await;
    let told = told.as_str().unwrap_or("");
    assert!(told.contains("Nobody could be alerted"), "{told}");
    assert!(!told.contains("senior on duty has been alerted"), "{told}");
    assert_eq!(
        nurse.text("#waiting-title").await,
        "Nobody could be alerted"
    );
    assert_eq!(
        nurse
            .eval("return document.querySelector('#realerted').hidden && document.querySelector('#escalated').firstElementChild.id")
            .await,
        "escalated-phone-box",
        "the phone comes first, and 'alerted again' is not shown"
    );
    nurse.screenshot("20-station-nobody-alerted").await;
    nic.wait_for(
        "the re-alerted tag on the queue entry",
        "const tag = document.querySelector('#queue > li .esc-tag');
         return tag && !tag.hidden && tag.textContent === 'Re-alerted';",
    )
    .await;
    nurse.screenshot("20-station-realerted").await;

    // Step 2: escalated. The busy senior on duty is alerted whatever their
    // availability, and the nurse is told that, truthfully now.
    let phone = nurse
        .wait_for(
            "the escalation to the senior with the fallback phone",
            "const box = document.querySelector('#escalated');
             return !box.hidden && box.dataset.reach === 'senior' && !document.querySelector('#escalated-phone').hidden
                 && document.querySelector('#escalated-phone-number').textContent;",
        )
        .await;
    assert!(nurse
        .text("#escalated-title")
        .await
        .contains("the A&E senior on duty has been alerted"));
    assert_eq!(phone, PHONE);
    assert_eq!(
        nurse
            .eval("return document.querySelector('#escalated-phone').getAttribute('href')")
            .await,
        "tel:01229870870"
    );
    assert!(nurse
        .text("#escalated")
        .await
        .contains("If the patient cannot wait, phone A&E now"));
    // The phone is shown once, in the escalation box.
    assert_eq!(
        nurse
            .eval("return document.querySelector('#fallback-line').hidden && document.querySelector('#nobody').hidden")
            .await,
        true
    );
    nurse.screenshot("21-station-escalated").await;

    let banner = nic
        .wait_for(
            "the escalation banner for the busy duty holder",
            "const box = document.querySelector('#duty-alerts');
             return !box.hidden && box.textContent;",
        )
        .await;
    let banner = banner.as_str().unwrap_or("");
    assert!(
        banner.contains("Escalated: nobody has answered"),
        "{banner}"
    );
    assert!(banner.contains("Millom MIU Room 2"), "{banner}");
    assert!(banner.contains("Burn or scald: child, hand"), "{banner}");
    nic.wait_for(
        "the escalation alarm to sound, repeatedly",
        "return window.miulink.alerts.alarmsPlayed() >= 2",
    )
    .await;
    nic.wait_for(
        "a desktop notification for the escalation",
        "return window.miulink.alerts.escalationsNotified >= 1",
    )
    .await;
    nic.wait_for(
        "the title to shout",
        "return document.title.includes('ESCALATED') || document.title.includes('Escalated request')",
    )
    .await;
    nic.wait_for(
        "the escalated tag on the queue entry",
        "const tag = document.querySelector('#queue > li .esc-tag');
         return tag && tag.textContent === 'Escalated';",
    )
    .await;
    nic.screenshot("22-clinician-duty-alert").await;

    // Silencing stops the alarm but keeps the banner.
    nic.click("#duty-alerts [data-action=silence]").await;
    nic.wait_for(
        "the banner marked silenced",
        "return document.querySelector('#duty-alerts .duty-alert').classList.contains('acknowledged')",
    )
    .await;
    let sounded = nic
        .eval("return window.miulink.alerts.alarmsPlayed()")
        .await
        .as_u64()
        .unwrap_or(0);
    assert!(
        nic.eval("return window.miulink.alerts.alarmTimer === null")
            .await
            .as_bool()
            .unwrap_or(false),
        "the alarm is no longer scheduled"
    );

    // The station's connection blips: it keeps its request and its place,
    // and still shows the escalation.
    nurse
        .eval("window.miulink.socket.ws.close(); return true;")
        .await;
    nurse
        .wait_for(
            "the station to reconnect",
            "return window.miulink.socket.welcomes >= 2 && window.miulink.socket.state === 'open'",
        )
        .await;
    on_screen(&nurse, "waiting").await;
    nurse
        .wait_for(
            "the same request, resumed",
            &format!(
                "const r = window.miulink.state.request;
                 return r && r.request_id === {request_id} && r.state === 'waiting' && r.escalation === 'escalated';"
            ),
        )
        .await;
    assert_eq!(nurse.text("#wait-position").await, "1");
    assert!(!nurse
        .eval("return document.querySelector('#escalated').hidden")
        .await
        .as_bool()
        .unwrap_or(true));

    // The nurse in charge answers from the banner.
    nic.click("#duty-alerts [data-action=answer-escalated]")
        .await;
    on_screen(&nic, "call").await;
    on_screen(&nurse, "call").await;
    nic.wait_for_remote_video().await;
    nurse.wait_for_remote_video().await;
    nic.wait_for(
        "the banner to go with the request",
        "return document.querySelector('#duty-alerts').hidden",
    )
    .await;

    // In the call, another station's request goes unanswered and is
    // escalated: the duty holder sees it over the call and hears one alarm,
    // but cannot answer it from there.
    let mut room1 = server.ws_client("millom-room1").await;
    room1
        .send(msg::request(Urgency::Urgent, "Eye injury"))
        .await;
    let waiting = room1.expect("request_update").await;
    let in_call = nic
        .wait_for(
            "the in-call escalation banner",
            "const box = document.querySelector('.duty-in-call');
             return box && !box.hidden && box.textContent;",
        )
        .await;
    let in_call = in_call.as_str().unwrap_or("");
    assert!(in_call.contains("Millom MIU Room 1"), "{in_call}");
    assert!(in_call.contains("Eye injury"), "{in_call}");
    assert!(in_call.contains("ask a free colleague"), "{in_call}");
    assert_eq!(
        nic.eval("return document.querySelectorAll('.duty-in-call button').length")
            .await,
        0,
        "nothing to answer from inside a call"
    );
    nic.wait_for(
        "one alarm in the call",
        &format!("return window.miulink.alerts.alarmsPlayed() > {sounded}"),
    )
    .await;
    nic.wait_for(
        "the in-call wait to tick",
        "const w = document.querySelector('.duty-in-call .duty-wait');
         return w && /Waiting 0:(0[89]|[1-9][0-9])/.test(w.textContent);",
    )
    .await;
    nic.screenshot("23-clinician-duty-alert-in-call").await;
    // The call itself is untouched by it.
    assert_eq!(
        nic.text(".call-status .label").await,
        "Connected",
        "the call carries on"
    );

    room1.send(msg::cancel(&waiting["request_id"])).await;
    nic.wait_for(
        "the in-call banner to go when the request is withdrawn",
        "return document.querySelector('.duty-in-call').hidden",
    )
    .await;

    hang_up(&nic).await;
    record_outcome(&nic, "managed_locally", "").await;

    // Both escalations are in the log.
    let log = server.consults().await;
    assert_eq!(log["total"], 2, "{log}");
    for c in log["consults"].as_array().expect("consults") {
        assert!(
            c["escalated_at"].as_i64().is_some(),
            "escalation logged: {c}"
        );
    }
}
