//! A consult over HTTPS served by MIU Link itself (no proxy), reached by a
//! host name that is not `localhost`: there a browser grants the camera
//! only to a secure context, so this is the set-up a trust really runs.
//! The certificate is the test's own (rcgen), signed by a test CA; each
//! Chromium maps the name to this machine and is told to trust that one
//! certificate by its public key, nothing more.

use crate::browser::Browser;
use crate::common::tls::{TestCa, HOST};
use crate::flows::*;
use crate::server::Server;
use signalling::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consult_runs_over_https_on_a_real_host_name() {
    let _one = crate::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let leaf = ca.leaf("MIU Link test server");
    let (cert, key) = leaf.write(dir.path());
    let server = Server::start(|s| {
        s.tls = Some(miulink::tls::TlsFiles { cert, key });
    })
    .await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://{HOST}:{port}");
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
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let flags = vec![
        format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"),
        format!("--ignore-certificate-errors-spki-list={}", leaf.spki_sha256),
    ];
    let nurse = Browser::launch_with_flags("https-station", 1280, 800, &flags).await;
    let doctor = Browser::launch_with_flags("https-clinician", 1440, 900, &flags).await;

    sign_in_at(&nurse, &base, "millom-room1", "/station").await;
    sign_in_at(&doctor, &base, "dr-patel", "/clinician").await;
    for b in [&nurse, &doctor] {
        let page = b
            .eval(
                "return {secure: window.isSecureContext, protocol: location.protocol,
                         host: location.hostname}",
            )
            .await;
        assert_eq!(page["secure"], true, "{}: {page}", b.name);
        assert_eq!(page["protocol"], "https:", "{}: {page}", b.name);
        assert_eq!(page["host"], HOST, "{}: {page}", b.name);
    }
    turn_on_alerts(&doctor).await;
    // The camera works only in a secure context: video both ways proves it.
    video_call(&nurse, &doctor, "urgent", "Head injury").await;
    let frames = nurse.frames_decoded().await;
    wait_for_more_frames(&nurse, frames, 10).await;
    nurse.screenshot("https-call").await;
    hang_up(&doctor).await;
    record_outcome(&doctor, "managed_locally", "").await;
    let log = server
        .store
        .consults(&miulink::store::ConsultFilter::default())
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, "completed", "{log:?}");
}
