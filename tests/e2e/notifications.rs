//! Desktop notifications blocked in the browser (by the user, or by a
//! trust's policy): the clinician's screen says so plainly, says that the
//! tone and the tab title still alert them, and how to allow notifications,
//! until they dismiss it for this browser session.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use signalling::Role;

const DESKTOP: (u32, u32) = (1366, 768);
const PHONE: (u32, u32) = (390, 844);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_notifications_are_explained_until_dismissed() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let doctor = Browser::launch("notifications-blocked", DESKTOP.0, DESKTOP.1).await;
    doctor.goto(&server.url("/")).await;
    doctor.deny_notifications().await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;
    on_screen(&doctor, "queue").await;
    assert_eq!(
        doctor.eval("return Notification.permission").await,
        "denied"
    );

    let banner = doctor
        .wait_for(
            "the blocked-notifications banner",
            "const b = document.querySelector('#notify-blocked');
             return !b.hidden && b.textContent.replace(/\\s+/g, ' ');",
        )
        .await;
    let banner = banner.as_str().unwrap_or("");
    for part in [
        "Desktop notifications are blocked in this browser",
        "ring tone",
        "tab\u{2019}s title",
        "padlock or site settings icon",
        "Allow",
        "ask IT",
    ] {
        assert!(banner.contains(part), "{part:?} in {banner:?}");
    }
    assert_eq!(
        doctor
            .eval("return document.querySelector('#notify-blocked').getAttribute('role')")
            .await,
        "status",
        "a status region, in words"
    );
    assert_eq!(doctor.text("#notify-state").await, "Blocked in the browser");
    doctor
        .screenshots_at("notifications-blocked", &[DESKTOP, PHONE])
        .await;
    doctor
        .assert_accessible("queue with notifications blocked")
        .await;

    // Dismissed with the keyboard: it goes, and focus stays in the page.
    doctor
        .eval("document.querySelector('#notify-blocked-dismiss').focus(); return true;")
        .await;
    assert_eq!(
        doctor.eval("return document.activeElement.id").await,
        "notify-blocked-dismiss"
    );
    doctor.click("#notify-blocked-dismiss").await;
    doctor
        .wait_for(
            "the banner to go",
            "return document.querySelector('#notify-blocked').hidden",
        )
        .await;
    assert_eq!(
        doctor
            .eval("const a = document.activeElement; return !!a && a !== document.body && !a.closest('[hidden]');")
            .await,
        true,
        "focus is not lost"
    );
    doctor
        .screenshots_at("notifications-blocked-dismissed", &[DESKTOP])
        .await;
    doctor
        .assert_accessible("queue, blocked notice dismissed")
        .await;

    // A reload in the same browser session: it stays dismissed, and the
    // status card still says notifications are blocked.
    doctor.refresh().await;
    on_screen(&doctor, "queue").await;
    doctor
        .wait_for(
            "the status card after the reload",
            "return document.querySelector('#notify-state').textContent === 'Blocked in the browser'",
        )
        .await;
    assert_eq!(
        doctor
            .eval("return document.querySelector('#notify-blocked').hidden")
            .await,
        true,
        "dismissed for the session"
    );

    // A new browser session (sessionStorage cleared) shows it again.
    doctor
        .eval("window.sessionStorage.clear(); return true;")
        .await;
    doctor.refresh().await;
    on_screen(&doctor, "queue").await;
    doctor
        .wait_for(
            "the banner again in a new session",
            "return !document.querySelector('#notify-blocked').hidden",
        )
        .await;
}
