//! The sign-in page says what went wrong in words a nurse can act on, and
//! an account with a generated password must choose its own before it can
//! do anything else (pentest findings: login hardening, initial admin
//! password).

use crate::browser::Browser;
use crate::server::{Server, PASSWORD};
use signalling::Role;

/// Waits for the sign-in button to be usable again and returns the error
/// box's text ("" when hidden).
async fn after_sign_in(b: &Browser) -> String {
    b.wait_for(
        "the sign-in button back",
        "return !document.querySelector('#login-button').disabled",
    )
    .await;
    b.eval(
        "const box = document.querySelector('#login-error');
         return box.hidden ? '' : box.textContent;",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

async fn clear(b: &Browser, css: &str) {
    b.eval(&format!(
        "document.querySelector({}).value = ''; return true;",
        serde_json::json!(css)
    ))
    .await;
}

/// The page's answer to the server's documented `503 busy` (with
/// `Retry-After`): the next `times` sign-ins are answered so by the page's
/// own `fetch`, as the server does when the password checker is saturated
/// (that side is tested in tests/api/hardening.rs).
async fn busy_for(b: &Browser, times: u32) {
    b.eval(&format!(
        "const real = window.fetch; let left = {times};
         window.fetch = (url, options) => {{
           if (String(url).includes('/api/login') && left > 0) {{
             left -= 1;
             return Promise.resolve(new Response(JSON.stringify({{
               error: 'busy',
               message: 'the server is checking too many passwords at once; try again in a second'
             }}), {{ status: 503, headers: {{ 'retry-after': '1', 'content-type': 'application/json' }} }}));
           }}
           return real(url, options);
         }};
         return true;"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_says_what_to_do_about_each_refusal() {
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
    server
        .add_user(
            "millom-room2",
            "Millom MIU Room 2",
            Role::Station,
            Some("Millom"),
        )
        .await;
    let b = Browser::launch("login", 1024, 768).await;
    b.goto(&server.url("/")).await;
    b.wait_for("the form", "return !!document.querySelector('#username')")
        .await;

    // A username the server would refuse is refused by the field, unsent.
    b.type_text("#username", &"x".repeat(70)).await;
    b.type_text("#password", "whatever").await;
    b.click("#login-button").await;
    let field = b.text("#username-error").await;
    assert!(field.contains("at most 64"), "username error: {field:?}");
    assert_eq!(
        b.eval("return document.querySelector('#username').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    b.assert_accessible("sign-in with a username error").await;

    // Wrong passwords: first "wrong", then the back-off with a time to try again.
    clear(&b, "#username").await;
    b.type_text("#username", "millom-room1").await;
    let mut said = Vec::new();
    for _ in 0..6 {
        clear(&b, "#password").await;
        b.type_text("#password", "wrong-password").await;
        b.click("#login-button").await;
        said.push(after_sign_in(&b).await);
    }
    assert!(
        said[0].contains("username or password is wrong"),
        "first refusal: {said:?}"
    );
    assert!(
        said.iter().any(|s| s.contains("try again at")),
        "the back-off says when to try again: {said:?}"
    );
    b.screenshot("login-1-back-off").await;
    b.assert_accessible("sign-in backed off").await;

    // Busy once: the page waits as asked and tries again by itself (another
    // account: this one is still backing off).
    b.goto(&server.url("/")).await;
    b.wait_for("the form", "return !!document.querySelector('#username')")
        .await;
    busy_for(&b, 1).await;
    b.type_text("#username", "millom-room2").await;
    b.type_text("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.wait_for(
        "the busy label",
        "return document.querySelector('#login-button').textContent.includes('Busy')",
    )
    .await;
    b.wait_for(
        "the station after one retry",
        "return location.pathname === '/station' && !!window.miulink",
    )
    .await;

    // Busy twice: it says so and leaves the user in charge.
    b.eval("window.miulink.socket.stop(); return fetch('/api/logout', {method: 'POST'}).then(() => true);")
        .await;
    b.goto(&server.url("/")).await;
    b.wait_for("the form", "return !!document.querySelector('#username')")
        .await;
    busy_for(&b, 2).await;
    b.type_text("#username", "millom-room2").await;
    b.type_text("#password", PASSWORD).await;
    b.click("#login-button").await;
    let twice = after_sign_in(&b).await;
    assert!(twice.contains("still busy"), "busy twice: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_password_is_changed_before_anything_else() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    let file =
        miulink::bootstrap::data_dir(&server.database_url).join("initial-admin-password.txt");
    let generated = std::fs::read_to_string(&file).expect("the one-time admin password file");
    let generated = generated.trim();
    let b = Browser::launch("password-change", 1024, 768).await;
    b.goto(&server.url("/")).await;
    b.wait_for("the form", "return !!document.querySelector('#username')")
        .await;
    b.type_text("#username", "admin").await;
    b.type_text("#password", generated).await;
    b.click("#login-button").await;
    b.wait_for(
        "the password form",
        "return !document.querySelector('#password-form').hidden",
    )
    .await;
    assert_eq!(
        b.eval("return document.activeElement.id").await,
        "new-password",
        "the current password is what was just typed: start at the new one"
    );
    b.screenshot("login-2-choose-password").await;
    b.assert_accessible("choose a new password").await;

    // The page refuses what it can see is weak; the server refuses the rest.
    b.type_text("#new-password", "aaaaaaaaaaaa").await;
    b.type_text("#confirm-password", "aaaaaaaaaaaa").await;
    b.click("#password-button").await;
    let repeated = b.text("#new-password-error").await;
    assert!(repeated.contains("repeated"), "repeated: {repeated:?}");
    clear(&b, "#new-password").await;
    clear(&b, "#confirm-password").await;
    b.type_text("#new-password", "password1234").await;
    b.type_text("#confirm-password", "password1234").await;
    b.click("#password-button").await;
    let weak = b
        .wait_for(
            "the server's refusal",
            "const e = document.querySelector('#new-password-error');
             return !e.hidden && e.textContent.length > 0 && !e.textContent.includes('repeated') && e.textContent;",
        )
        .await;
    println!("weak password: {weak}");
    b.assert_accessible("choose a new password, refused").await;

    // Any other page sends the account back to the form.
    for page in ["/admin", "/reports", "/station"] {
        b.goto(&server.url(page)).await;
        b.wait_for(
            &format!("{page} sends back to the form"),
            "return location.search.includes('change_password') && !document.querySelector('#password-form').hidden",
        )
        .await;
    }
    // A wrong current password is said by its field.
    clear(&b, "#current-password").await;
    b.type_text("#current-password", "not-it-at-all").await;
    b.type_text("#new-password", "violet kettle harbour moss")
        .await;
    b.type_text("#confirm-password", "violet kettle harbour moss")
        .await;
    b.click("#password-button").await;
    b.wait_for(
        "the wrong current password",
        "const e = document.querySelector('#current-password-error'); return !e.hidden && e.textContent.includes('wrong');",
    )
    .await;
    clear(&b, "#current-password").await;
    b.type_text("#current-password", generated).await;
    b.click("#password-button").await;
    // An admin lands on the admin console.
    b.wait_for("the admin console", "return location.pathname === '/admin'")
        .await;
    // The old password no longer works; the new one does.
    for (password, status) in [(generated, 401), ("violet kettle harbour moss", 200)] {
        let res = reqwest::Client::new()
            .post(server.url("/api/login"))
            .json(&serde_json::json!({"username": "admin", "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status().as_u16(), status, "admin with {password:?}");
    }
}
