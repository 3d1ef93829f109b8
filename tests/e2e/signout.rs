//! A session that ends somewhere else ends the open screen too: the page
//! stops reconnecting and lands on the login page, which says "You have
//! been signed out". Two ways a session ends under an open page: the
//! account is disabled (the server's periodic session check finds it), and
//! another tab of the same browser signs out (the socket closes at once).

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use serde_json::Value;
use signalling::Role;
use std::time::{Duration, Instant};

/// The login page after a sign-out: its status box, once it says so.
const SIGNED_OUT_PAGE: &str = "
    if (location.pathname !== '/' || !new URLSearchParams(location.search).get('signed_out')) return null;
    const box = document.querySelector('#login-notice');
    if (!box || box.hidden || !box.textContent.includes('You have been signed out')) return null;
    return box.textContent;";

/// Waits (at most `within`) for the login page to say the session ended.
async fn wait_signed_out(b: &Browser, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Value::String(text)) = b.try_eval(SIGNED_OUT_PAGE).await {
            return text;
        }
        if Instant::now() >= deadline {
            b.fail(&format!(
                "the login page did not say \"You have been signed out\" within {within:?}"
            ))
            .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The signed-out login page is a real one: the notice is a status region
/// in words, the form is there to sign in again, and it stays put (no
/// reconnecting, no redirect loop).
async fn check_login_page(b: &Browser) {
    let role = b
        .eval("return document.querySelector('#login-notice').getAttribute('role')")
        .await;
    assert_eq!(role, "status", "the notice is a status region");
    b.wait_for(
        "the sign-in form",
        "const f = document.querySelector('#login-form'); return !!f && !f.hidden && !!document.querySelector('#username');",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        b.eval("return location.pathname").await,
        "/",
        "the login page stays"
    );
    assert!(
        b.eval("return !window.miulink")
            .await
            .as_bool()
            .unwrap_or(false),
        "no signed-in screen (nor its socket) is running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_elsewhere_signs_the_open_screen_out() {
    let _one = crate::one_at_a_time().await;
    let started = Instant::now();
    let server = Server::start(|s| s.session_check_ms = 500).await;
    server
        .add_user("dr-x", "Dr X", Role::Clinician, Some("Furness General"))
        .await;
    let doctor = Browser::launch("signout", 1280, 800).await;

    // 1. The account is disabled while its screen is open and connected:
    // the server's next session check ends the session, and the page says
    // so with the server's own words.
    sign_in(&doctor, &server, "dr-x", "/clinician").await;
    let disabled_at = Instant::now();
    assert!(
        server.store.set_disabled("dr-x", true).await.expect("db"),
        "dr-x exists"
    );
    let notice = wait_signed_out(&doctor, Duration::from_secs(30)).await;
    println!(
        "disabled: signed out after {:?}: {notice:?}",
        disabled_at.elapsed()
    );
    assert!(
        !notice.contains("Sign in again to carry on"),
        "the server's reason reached the login page: {notice:?}"
    );
    doctor.screenshot("signout-1-disabled").await;
    check_login_page(&doctor).await;

    // 2. Another tab of the same browser signs out (the same cookie): this
    // screen's socket closes at once, without waiting for a check.
    assert!(server.store.set_disabled("dr-x", false).await.expect("db"));
    sign_in(&doctor, &server, "dr-x", "/clinician").await;
    let signed_out_at = Instant::now();
    doctor
        .eval(
            "fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
             return true;",
        )
        .await;
    let notice = wait_signed_out(&doctor, Duration::from_secs(10)).await;
    println!(
        "logout elsewhere: signed out after {:?}: {notice:?}",
        signed_out_at.elapsed()
    );
    doctor.screenshot("signout-2-logout-elsewhere").await;
    check_login_page(&doctor).await;

    // Signing in again from here works and goes back to the screen.
    sign_in(&doctor, &server, "dr-x", "/clinician").await;
    println!("whole test: {:?}", started.elapsed());
}

const DESKTOP: (u32, u32) = (1366, 768);
const PHONE: (u32, u32) = (390, 844);

/// Waits for the login page after this screen's own "Sign out".
async fn wait_login_page(b: &Browser) {
    b.wait_for(
        "the login page",
        "return location.pathname === '/' && !!document.querySelector('#username')",
    )
    .await;
}

/// Mis-taps with gloves: "Cancel request" and "Sign out" on a waiting
/// request each ask for a second press, and say what would be lost; left
/// alone they go back to normal and nothing changes. With nothing to lose,
/// "Sign out" signs out at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_sign_out_ask_twice_while_a_request_waits() {
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
    let nurse = Browser::launch("signout-twice", DESKTOP.0, DESKTOP.1).await;
    sign_in(&nurse, &server, "millom-room1", "/station").await;
    request_consult(&nurse, "immediate", "Chest pain", "", "").await;
    on_screen(&nurse, "waiting").await;

    // One press on "Cancel request": armed, in words; nothing sent.
    nurse.click("#cancel-button").await;
    nurse
        .wait_for(
            "the cancel button to ask for a second press",
            "const b = document.querySelector('#cancel-button');
             return b.classList.contains('armed') && b.textContent.trim() === 'Press again to cancel the request';",
        )
        .await;
    nurse
        .screenshots_at("cancel-armed", &[DESKTOP, PHONE])
        .await;
    nurse
        .assert_accessible("waiting, cancel pressed once")
        .await;
    nurse
        .wait_for(
            "the cancel button to go back by itself",
            "const b = document.querySelector('#cancel-button');
             return !b.classList.contains('armed') && b.textContent.trim() === 'Cancel request';",
        )
        .await;
    assert_eq!(
        nurse.eval("return document.body.dataset.screen").await,
        "waiting"
    );
    assert_eq!(
        server.consults().await["consults"][0]["status"],
        "waiting",
        "one press cancels nothing"
    );

    // One press on "Sign out": the page says the request would be
    // cancelled and asks for a second press.
    nurse.click("#sign-out").await;
    let warning = nurse
        .shown_text("the sign-out warning", "#sign-out-warning")
        .await;
    assert!(
        warning.contains("your request will be cancelled"),
        "{warning}"
    );
    assert!(
        warning.contains("Press \u{201c}Sign out\u{201d} again"),
        "{warning}"
    );
    nurse
        .screenshots_at("signout-warning-waiting", &[DESKTOP, PHONE])
        .await;
    nurse
        .assert_accessible("waiting, sign out pressed once")
        .await;
    // The screenshots resized the page; the warning is still up (5 s).
    if nurse
        .eval("return document.querySelector('#sign-out-warning').hidden")
        .await
        .as_bool()
        .unwrap_or(true)
    {
        nurse.click("#sign-out").await;
    }
    assert_eq!(
        server.consults().await["consults"][0]["status"],
        "waiting",
        "one press signs nobody out"
    );
    // The second press signs out, and the request is withdrawn.
    nurse.click("#sign-out").await;
    wait_login_page(&nurse).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.consults().await["consults"][0]["status"].clone();
        if status == "cancelled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request was not withdrawn: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing waiting: one press signs out.
    sign_in(&nurse, &server, "millom-room1", "/station").await;
    on_screen(&nurse, "request").await;
    nurse.click("#sign-out").await;
    wait_login_page(&nurse).await;
}
