//! The managers' dashboard in a real browser, over a populated log:
//! signs in as a manager, lands on /reports, and checks that the figures,
//! charts and CSV export are on the page. Saves screenshots for a person
//! to judge (`artifacts/screenshots/20-*.png`).

use crate::browser::Browser;
use crate::server::{Server, PASSWORD};
use miulink::seed::{seed, SeedOptions};
use signalling::Role;

#[tokio::test]
async fn a_manager_sees_a_populated_dashboard() {
    let _serial = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    server
        .add_user("mgr", "Service Manager", Role::Manager, None)
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let summary = seed(
        &server.store,
        &SeedOptions {
            consults: 3_000,
            days: 90,
            end: now,
            rng_seed: 7,
            timezone: chrono_tz::Europe::London,
        },
    )
    .await
    .expect("history seeded");
    assert_eq!(summary.consults, 3_000);

    let b = Browser::launch("manager", 1280, 3300).await;
    b.goto(&server.url("/")).await;
    b.wait_for(
        "the login form",
        "return !!document.querySelector('#username')",
    )
    .await;
    b.type_text("#username", "mgr").await;
    b.type_text("#password", PASSWORD).await;
    b.click("#login-button").await;
    b.wait_for(
        "the dashboard, loaded",
        "return location.pathname === '/reports' && document.querySelector('#main')?.getAttribute('aria-busy') === 'false'",
    )
    .await;
    // The default period is the last 30 days: figures are numbers, not dashes.
    let requests = b.text("#cards .card:first-child .card__value").await;
    let n: u64 = requests
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("requests figure {requests:?}"));
    assert!(n > 100, "a month of synthetic history: {n}");
    // Every chart is drawn, each with a text alternative.
    let charts = b
        .eval("return document.querySelectorAll('svg[role=img]').length")
        .await;
    assert!(charts.as_u64().unwrap_or(0) >= 5, "charts drawn: {charts}");
    let unlabelled = b
        .eval("return [...document.querySelectorAll('svg[role=img]')].filter(s => !s.getAttribute('aria-label') && !s.getAttribute('aria-labelledby')).length")
        .await;
    assert_eq!(unlabelled, 0, "every chart has a text alternative");
    // Escalations and link quality are reported (the seed logs both).
    let cards = b.text("#cards").await;
    assert!(
        cards.contains("Escalated to the nurse in charge"),
        "{cards}"
    );
    assert!(cards.contains("Poor video links"), "{cards}");
    let link_rows = b
        .eval("return document.querySelectorAll('#link-table tbody tr').length")
        .await;
    assert!(
        link_rows.as_u64().unwrap_or(0) >= 2,
        "link quality by site: {link_rows}"
    );
    // The synthetic-data banner is shown, and the CSV link carries the period.
    assert!(b.text("#synthetic").await.contains("synthetic"));
    let csv = b
        .eval("return document.querySelector('#csv').getAttribute('href')")
        .await;
    assert!(
        csv.as_str()
            .is_some_and(|h| h.starts_with("/api/consults.csv?from=")),
        "{csv}"
    );
    b.screenshot("30-reports-dashboard").await;

    // A custom site filter narrows every figure.
    b.eval("const s = document.querySelector('#site'); s.value = 'Kendal'; s.dispatchEvent(new Event('change', {bubbles: true})); return true").await;
    b.wait_for(
        "the Kendal figures",
        "return document.querySelector('#main')?.getAttribute('aria-busy') === 'false' && (() => { const rows = [...document.querySelectorAll('#station-table tbody tr')]; return rows.length > 0 && rows.every(r => r.textContent.includes('Kendal')); })()",
    )
    .await;
    b.screenshot("31-reports-one-site").await;
}
