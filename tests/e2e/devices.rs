//! Cameras that are missing or many: a station without a camera holds the
//! consult with audio only and says so; a clinician with more than one
//! camera switches between them in the call.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use signalling::Role;

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
