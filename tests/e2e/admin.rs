//! The admin console (/admin, issue 15): an IT admin adds a station through
//! the form and is shown its one-time password (which works), sees a
//! clinician on line, disables the clinician (whose open screen is signed
//! out at once, and who can no longer sign in), and finds both changes in
//! the audit trail. Every tab, the form with its errors and the dialogs
//! pass axe-core.

use crate::browser::Browser;
use crate::flows::sign_in;
use crate::server::{Server, PASSWORD};
use serde_json::{json, Value};
use signalling::Role;
use std::time::{Duration, Instant};

const DESKTOP: (u32, u32) = (1366, 900);
const PHONE: (u32, u32) = (390, 844);

/// The login page after a sign-out, once it says so (as in signout.rs).
const SIGNED_OUT_PAGE: &str = "
    if (location.pathname !== '/' || !new URLSearchParams(location.search).get('signed_out')) return null;
    const box = document.querySelector('#login-notice');
    if (!box || box.hidden || !box.textContent.includes('You have been signed out')) return null;
    return box.textContent;";

/// Signs in on the login page and waits for the admin console to be ready.
async fn sign_in_admin(b: &Browser, server: &Server, username: &str) {
    b.goto(&server.url("/")).await;
    b.wait_for(
        "the login form",
        "return !!document.querySelector('#username')",
    )
    .await;
    b.type_text("#username", username).await;
    b.type_text("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.wait_for(
        "the admin console after signing in",
        "return location.pathname === '/admin' && document.body.dataset.screen === 'console'",
    )
    .await;
}

/// A sign-in over the API with this password: its status.
async fn api_login(server: &Server, username: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(server.url("/api/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("login request")
        .status()
        .as_u16()
}

/// Whether the element is there and shown (not `hidden`, nor inside a
/// hidden parent).
fn shown(css: &str) -> String {
    format!(
        "const e = document.querySelector({}); return !!e && !e.closest('[hidden]');",
        json!(css)
    )
}

async fn is_shown(b: &Browser, css: &str) -> bool {
    b.eval(&shown(css)).await.as_bool().unwrap_or(false)
}

/// Replaces what a text field holds, key by key (as a user would).
async fn retype(b: &Browser, css: &str, text: &str) {
    b.eval(&format!(
        "document.querySelector({}).value = ''; return true;",
        json!(css)
    ))
    .await;
    b.type_text(css, text).await;
}

/// At phone width the page scrolls only up and down: nothing is wider
/// than the screen but a table, in its own scrolling box.
async fn assert_fits_phone(b: &Browser, what: &str) {
    b.resize(PHONE.0, PHONE.1).await;
    let wide = b
        .eval(
            "const w = document.documentElement.clientWidth;
             if (document.documentElement.scrollWidth <= w) return null;
             return [document.documentElement.scrollWidth, w, Array.from(document.querySelectorAll('body *'))
               .filter((e) => e.getBoundingClientRect().right > w + 1
                 && (!e.closest('.table-wrap') || getComputedStyle(e).position === 'absolute'))
               .slice(0, 8)
               .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} right=${Math.round(e.getBoundingClientRect().right)}`)];",
        )
        .await;
    b.resize(DESKTOP.0, DESKTOP.1).await;
    assert_eq!(wide, Value::Null, "{what}: wider than a phone's screen");
}

/// The audit table's rows, each as its cells' text.
async fn audit_rows(b: &Browser) -> Vec<Vec<String>> {
    let rows = b
        .eval(
            "return Array.from(document.querySelectorAll('#audit-table tbody tr'))
               .map((tr) => Array.from(tr.cells).map((td) => td.textContent.trim()));",
        )
        .await;
    serde_json::from_value(rows).expect("rows of cells")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_a_station_and_disables_a_clinician() {
    let _one = crate::one_at_a_time().await;
    let started = Instant::now();
    let server = Server::start(|_| {}).await;
    server
        .add_user("it-admin", "IT Admin", Role::Admin, None)
        .await;
    server
        .add_user(
            "dr-x",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;

    // 1. The clinician's screen, open and connected.
    let doctor = Browser::launch("admin-clinician", 1280, 800).await;
    sign_in(&doctor, &server, "dr-x", "/clinician").await;

    // 2. The admin lands on the console, on the Accounts tab.
    let admin = Browser::launch("admin", DESKTOP.0, DESKTOP.1).await;
    sign_in_admin(&admin, &server, "it-admin").await;
    admin
        .wait_for(
            "dr-x in the accounts table, on line",
            "const tr = document.querySelector('#accounts-table tr[data-username=\"dr-x\"]');
             return !!tr && tr.querySelector('.online').textContent.trim() === 'Yes';",
        )
        .await;
    let status = admin.text("#accounts-status").await;
    // Ours, and the first start's own `admin` (its password in a file).
    assert_eq!(status, "3 accounts.", "the count of accounts");
    admin
        .screenshots_at("admin-1-accounts", &[DESKTOP, PHONE])
        .await;
    admin.assert_accessible("the Accounts tab").await;
    assert_fits_phone(&admin, "the Accounts tab").await;

    // 3. The add form: sent with mistakes, each is said by its field and in
    // the summary, and goes as soon as it is put right.
    admin.click("#add-toggle").await;
    admin.wait_for("the add form", &shown("#add-card")).await;
    admin.type_text("#new-username", "millom room3").await;
    admin.click("#add-submit").await;
    admin
        .wait_for(
            "three errors in the summary",
            "const s = document.querySelector('#add-errors');
             return !s.hidden && s.querySelectorAll('li').length === 3 && document.activeElement === s;",
        )
        .await;
    for field in ["role", "username", "display"] {
        assert!(
            is_shown(&admin, &format!("#{field}-error")).await,
            "the {field} error is shown by its field"
        );
    }
    assert!(admin
        .text("#username-error")
        .await
        .contains("letters, digits"));
    admin
        .screenshots_at("admin-2-add-errors", &[DESKTOP, PHONE])
        .await;
    admin
        .assert_accessible("the add form with errors shown")
        .await;
    assert_fits_phone(&admin, "the add form").await;

    admin.click("#role-station").await;
    admin
        .wait_for(
            "the role error to go",
            "return document.querySelector('#role-error').hidden
                && !document.querySelector('#add-errors li[data-field=\"role\"]');",
        )
        .await;
    retype(&admin, "#new-username", "millom-room3").await;
    admin
        .wait_for(
            "the username error to go",
            "return document.querySelector('#username-error').hidden
                && document.querySelector('#new-username').getAttribute('aria-invalid') === 'false';",
        )
        .await;
    admin.type_text("#new-display", "Millom MIU Room 3").await;
    admin
        .wait_for(
            "the summary to go once everything is right",
            "return document.querySelector('#add-errors').hidden;",
        )
        .await;
    // A station needs a site.
    admin.click("#add-submit").await;
    let site_error = admin.shown_text("the site error", "#site-error").await;
    assert!(site_error.contains("needs a site"), "{site_error}");
    admin.type_text("#new-site", "Millom").await;
    admin
        .wait_for(
            "the site error to go",
            "return document.querySelector('#site-error').hidden && document.querySelector('#add-errors').hidden;",
        )
        .await;
    admin.click("#add-submit").await;

    // 4. The one-time password, shown once; it works.
    let password = admin
        .wait_for(
            "the one-time password",
            "const d = document.querySelector('#otp-dialog');
             const v = document.querySelector('#otp-value').textContent.trim();
             return d.open && v.length > 0 && v;",
        )
        .await
        .as_str()
        .expect("the password as text")
        .to_owned();
    let note = admin.text("#otp-dialog").await;
    assert!(note.contains("Shown once"), "{note}");
    assert!(note.contains("station"), "{note}");
    admin.screenshot("admin-3-one-time-password").await;
    admin
        .assert_accessible("the one-time password dialog")
        .await;
    assert_eq!(
        api_login(&server, "millom-room3", &password).await,
        200,
        "the station signs in with the password shown"
    );
    admin.click("#otp-done").await;
    admin
        .wait_for(
            "the dialog closed, the password gone from the page, the station listed",
            "return !document.querySelector('#otp-dialog').open
                && document.querySelector('#otp-value').textContent === ''
                && !!document.querySelector('#accounts-table tr[data-username=\"millom-room3\"]')
                && document.activeElement === document.querySelector('#add-toggle');",
        )
        .await;
    let row = admin
        .text("#accounts-table tr[data-username=\"millom-room3\"]")
        .await;
    assert!(
        row.contains("Millom MIU Room 3") && row.contains("Station") && row.contains("Active"),
        "{row}"
    );

    // The clinician takes the escalation duty; the focus stays on the
    // button, which now offers the opposite.
    admin
        .click("#accounts-table tr[data-username=\"dr-x\"] button[data-action=\"duty\"]")
        .await;
    admin
        .wait_for(
            "dr-x on escalation duty",
            "const tr = document.querySelector('#accounts-table tr[data-username=\"dr-x\"]');
             const b = tr && tr.querySelector('button[data-action=\"duty\"]');
             return !!b && tr.querySelector('.duty-state').textContent === 'Yes'
                && b.textContent.startsWith('Turn off') && document.activeElement === b;",
        )
        .await;
    // The station moves site, through the edit dialog.
    admin
        .click("#accounts-table tr[data-username=\"millom-room3\"] button[data-action=\"edit\"]")
        .await;
    admin
        .wait_for(
            "the edit dialog",
            "return document.querySelector('#edit-dialog').open
                && document.activeElement === document.querySelector('#edit-site');",
        )
        .await;
    retype(&admin, "#edit-site", "").await;
    admin.click("#edit-save").await;
    let site_error = admin
        .shown_text("a station's site cannot be emptied", "#edit-site-error")
        .await;
    assert!(site_error.contains("needs a site"), "{site_error}");
    admin.screenshot("admin-3-edit-site").await;
    admin
        .assert_accessible("the edit dialog with its error")
        .await;
    admin.type_text("#edit-site", "Millom North").await;
    admin.click("#edit-save").await;
    admin
        .wait_for(
            "the new site in the table",
            "const tr = document.querySelector('#accounts-table tr[data-username=\"millom-room3\"]');
             return !document.querySelector('#edit-dialog').open && !!tr
                && tr.cells[3].textContent === 'Millom North';",
        )
        .await;

    // 5. On line now, reached with the arrow key from the Accounts tab.
    admin.type_text("#tab-accounts", "\u{E014}").await;
    admin
        .wait_for(
            "the On line now tab, selected by the arrow key",
            "const t = document.querySelector('#tab-online');
             return t.getAttribute('aria-selected') === 'true' && document.activeElement === t
                && !document.querySelector('#panel-online').hidden && document.querySelector('#panel-accounts').hidden;",
        )
        .await;
    admin
        .wait_for(
            "dr-x on line",
            "return !!document.querySelector('#online-table tr[data-username=\"dr-x\"]');",
        )
        .await;
    let row = admin.text("#online-table tr[data-username=\"dr-x\"]").await;
    assert!(
        row.contains("Dr Asha Patel")
            && row.contains("Clinician")
            && (row.contains("just now") || row.contains("ago")),
        "{row}"
    );
    assert!(
        row.contains("Available") || row.contains("Busy") || row.contains("Away"),
        "availability in words: {row}"
    );
    admin
        .screenshots_at("admin-4-online", &[DESKTOP, PHONE])
        .await;
    admin.assert_accessible("the On line now tab").await;
    assert_fits_phone(&admin, "the On line now tab").await;

    // 6. Disable the clinician, confirming: their screen is signed out.
    admin.click("#tab-accounts").await;
    admin
        .click("#accounts-table tr[data-username=\"dr-x\"] button[data-action=\"disable\"]")
        .await;
    admin
        .wait_for(
            "the confirmation",
            "return document.querySelector('#confirm-dialog').open;",
        )
        .await;
    let confirm = admin.text("#confirm-dialog").await;
    assert!(
        confirm.contains("Dr Asha Patel") && confirm.contains("signed out at once"),
        "{confirm}"
    );
    admin.screenshot("admin-5-confirm-disable").await;
    admin.assert_accessible("the confirmation to disable").await;
    let disabled_at = Instant::now();
    admin.click("#confirm-ok").await;
    admin
        .wait_for(
            "dr-x shown as disabled",
            "const tr = document.querySelector('#accounts-table tr[data-username=\"dr-x\"]');
             return !!tr && tr.textContent.includes('Disabled') && !!tr.querySelector('button[data-action=\"enable\"]');",
        )
        .await;
    let said = admin.text("#accounts-status").await;
    assert!(
        said.contains("disabled") && said.contains("signed out on 1 screen"),
        "{said}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let notice = loop {
        if let Ok(Value::String(text)) = doctor.try_eval(SIGNED_OUT_PAGE).await {
            break text;
        }
        if Instant::now() >= deadline {
            doctor
                .fail("the clinician's page did not say \"You have been signed out\" within 10 s")
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "disabled: the clinician's page signed out after {:?}: {notice:?}",
        disabled_at.elapsed()
    );
    doctor.screenshot("admin-6-clinician-signed-out").await;
    assert_eq!(
        api_login(&server, "dr-x", PASSWORD).await,
        401,
        "a disabled account cannot sign in"
    );
    admin.screenshot("admin-6-accounts-after-disable").await;

    // 7. The audit trail has both changes, by the admin.
    admin.click("#tab-audit").await;
    admin
        .wait_for(
            "the audit trail",
            "return document.querySelectorAll('#audit-table tbody tr td.when').length > 0;",
        )
        .await;
    let rows = audit_rows(&admin).await;
    let find = |action: &str, target: &str| {
        rows.iter()
            .position(|r| r[1] == "it-admin" && r[2].contains(action) && r[3] == target)
    };
    let created = find("account_created", "millom-room3")
        .unwrap_or_else(|| panic!("account_created by it-admin in {rows:#?}"));
    let disabled = find("account_disabled", "dr-x")
        .unwrap_or_else(|| panic!("account_disabled by it-admin in {rows:#?}"));
    assert!(disabled < created, "newest first: {rows:#?}");
    assert!(
        find("escalation_duty_changed", "dr-x").is_some(),
        "the duty change: {rows:#?}"
    );
    assert!(
        find("site_changed", "millom-room3").is_some(),
        "the site change: {rows:#?}"
    );
    assert!(
        rows[created][4].contains("role: station") && rows[created][4].contains("site: Millom"),
        "the detail, compactly: {:?}",
        rows[created]
    );
    admin
        .screenshots_at("admin-7-audit", &[DESKTOP, PHONE])
        .await;
    admin.assert_accessible("the Audit trail tab").await;
    assert_fits_phone(&admin, "the Audit trail tab").await;

    // Filtered to one action; the CSV link carries the same filter.
    admin
        .eval("document.querySelector('#audit-action').value = 'account_disabled'; return true;")
        .await;
    admin.type_text("#audit-actor", "it-admin").await;
    admin.click("#audit-filter button[type=submit]").await;
    admin
        .wait_for(
            "one entry",
            "const rows = document.querySelectorAll('#audit-table tbody tr td.when');
             return rows.length === 1 && document.querySelector('#audit-status').textContent.startsWith('1 entry');",
        )
        .await;
    let href = admin
        .eval("return document.querySelector('#audit-csv').getAttribute('href');")
        .await;
    let href = href.as_str().unwrap_or_default().to_owned();
    assert!(
        href.starts_with("/api/audit.csv?")
            && href.contains("action=account_disabled")
            && href.contains("actor=it-admin"),
        "{href}"
    );
    let csv = admin
        .eval_async(&format!(
            "const done = arguments[arguments.length - 1];
             fetch({}, {{ credentials: 'same-origin' }}).then((r) => r.text()).then(done, (e) => done(String(e)));",
            json!(href)
        ))
        .await;
    let csv = csv.as_str().unwrap_or_default();
    assert_eq!(csv.lines().count(), 2, "a header and one entry: {csv}");
    assert!(
        csv.contains("account_disabled") && csv.contains("dr-x"),
        "{csv}"
    );
    assert_eq!(
        admin.eval("return document.querySelector('#audit-prev').disabled && document.querySelector('#audit-next').disabled;").await,
        true,
        "one page: no previous, no next"
    );
    admin.screenshot("admin-8-audit-filtered").await;

    // The page said nothing wrong along the way (the login page's own
    // "signed in already?" question is answered 401 before signing in).
    let errors: Vec<String> = admin
        .console()
        .await
        .into_iter()
        .filter(|l| l.contains("SEVERE") && !(l.contains("/api/me ") && l.contains("401")))
        .collect();
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
    println!("whole test: {:?}", started.elapsed());
}
