//! `miulink probe --role station-only` against a person: a clinician in a
//! real browser answers the probe's test call. Proves that the probe's
//! `webrtc` peer and Chromium agree on a call both ways (Chromium decodes
//! the probe's VP8 test card; the probe receives the browser's camera),
//! which is what a trust relies on when it tests a clinician's screen.

use crate::browser::Browser;
use crate::common::{assert_probe_call_came_up, probe_step, spawn_probe};
use crate::flows::*;
use crate::server::{Server, PASSWORD};
use signalling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_in_a_browser_answers_the_probes_test_call() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "probe-station",
            "Monitoring probe",
            Role::Station,
            Some("Millom"),
        )
        .await;
    assert!(server
        .store
        .set_monitoring("probe-station", true)
        .await
        .expect("database"));
    server
        .add_user(
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let doctor = Browser::launch("clinician-probe", 1280, 800).await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;

    // The probe asks for dr-patel, holds the call for a few seconds once
    // video flows both ways, then hangs up.
    let probe = spawn_probe(
        &server.base,
        &[
            "--role",
            "station-only",
            "--station-user",
            "probe-station",
            "--clinician-user",
            "dr-patel",
            "--hold-seconds",
            "4",
            "--answer-wait-seconds",
            "60",
        ],
        PASSWORD,
    );

    // The person sees a test call, marked as one, and answers it.
    let tag = doctor
        .wait_for(
            "the probe's test call in the queue",
            "const li = document.querySelectorAll('#queue > li');
             return li.length === 1 && li[0].textContent.includes('Test call') && li[0].textContent;",
        )
        .await;
    assert!(
        tag.as_str().unwrap_or("").contains("Monitoring probe"),
        "{tag}"
    );
    answer_first(&doctor).await;
    // Chromium decodes the probe's synthetic VP8 video.
    let frames = doctor.wait_for_remote_video().await;
    doctor.screenshot("40-clinician-probe-call").await;

    let (output, report) = probe.await.expect("join");
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "exit {:?} (2 is failed): {report:#}",
        output.status.code()
    );
    assert_probe_call_came_up(&report);
    // The browser's camera reached the probe.
    let packets = report["video_at_station"]["packets"].as_u64().unwrap_or(0);
    assert!(packets >= 1, "{report:#}");
    eprintln!(
        "measured: browser clinician and probe station: accept to first video at the probe {} ms; \
         browser decoded {frames}+ frames of the probe's video; probe received {packets} video packets",
        probe_step(&report, "accept_to_first_video")["ms"]
    );

    // The probe hung up: the person records the outcome, told that it was
    // a test call with no patient.
    on_screen(&doctor, "outcome").await;
    let summary = doctor.text("#outcome-summary").await;
    assert!(summary.contains("Test call"), "{summary}");
    doctor.screenshot("44-clinician-after-probe-call").await;
    record_outcome(&doctor, "managed_locally", "").await;

    // The call is logged as a test call, out of the managers' figures.
    let log = server.consults().await;
    assert_eq!(log["total"], 0, "test calls are left out by default: {log}");
    let token = server.manager_token().await;
    let all = server
        .get_json("/api/consults?include_test_calls=true", &token)
        .await;
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(all["consults"][0]["test_call"], true, "{all}");
    assert_eq!(all["consults"][0]["clinician"], "Dr Asha Patel", "{all}");
    assert_eq!(all["consults"][0]["outcome"], "managed_locally", "{all}");
}

/// The other way round, as the issue puts it: the probe stands in for A&E
/// (`--role clinician-only`, the trust's "test line") and a nurse at a
/// real station checks the kit with the station's "Make a test call".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_checks_the_station_with_a_test_call_to_the_probe() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|s| s.test_call_clinician = Some("probe-clinician".into())).await;
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
            "probe-clinician",
            "Test line",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    assert!(server
        .store
        .set_monitoring("probe-clinician", true)
        .await
        .expect("database"));

    let probe = spawn_probe(
        &server.base,
        &[
            "--role",
            "clinician-only",
            "--clinician-user",
            "probe-clinician",
            "--hold-seconds",
            "4",
            "--answer-wait-seconds",
            "90",
        ],
        PASSWORD,
    );

    let nurse = Browser::launch("station-test-call", 1280, 800).await;
    sign_in(&nurse, &server, "millom-room1", "/station").await;
    nurse
        .wait_for(
            "the test call button",
            "return !document.querySelector('#test-call-card').hidden",
        )
        .await;
    nurse
        .eval("document.querySelector('#test-call-card').scrollIntoView({block: 'center'}); return true;")
        .await;
    nurse.screenshot("41-station-test-call-offered").await;
    nurse.click("#test-call-button").await;
    // The probe answers by itself; the nurse sees its test card.
    on_screen(&nurse, "call").await;
    let frames = nurse.wait_for_remote_video().await;
    nurse.screenshot("42-station-test-call").await;

    let (output, report) = probe.await.expect("join");
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "exit {:?} (2 is failed): {report:#}",
        output.status.code()
    );
    assert_eq!(report["role"], "clinician-only");
    assert_probe_call_came_up(&report);
    // The station's camera reached the probe.
    let packets = report["video_at_clinician"]["packets"]
        .as_u64()
        .unwrap_or(0);
    assert!(packets >= 1, "{report:#}");
    eprintln!(
        "measured: browser station and probe clinician: accept to first video at the probe {} ms; \
         browser decoded {frames}+ frames of the probe's video; probe received {packets} video packets",
        probe_step(&report, "accept_to_first_video")["ms"]
    );

    // The probe hung up and recorded its outcome: the nurse is told.
    on_screen(&nurse, "after").await;
    assert_eq!(nurse.text("#after-title").await, "Test call finished");
    nurse
        .wait_for(
            "the verdict on the link",
            "return document.querySelector('#after-outcome').textContent.includes('The video link works');",
        )
        .await;
    nurse.screenshot("43-station-after-test-call").await;
    let token = server.manager_token().await;
    let all = server
        .get_json("/api/consults?include_test_calls=true", &token)
        .await;
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(all["consults"][0]["test_call"], true, "{all}");
    assert_eq!(all["consults"][0]["station"], "Millom MIU Room 1", "{all}");
    assert_eq!(server.consults().await["total"], 0, "not a consult");
}
