//! The managers' dashboard in a real browser, over a populated log:
//! signs in as a manager, lands on /reports, and checks that the figures,
//! charts and CSV export are on the page, that the first screen answers
//! "are we meeting our answer targets?" and "how many journeys to A&E did
//! this save?", on a laptop and on a phone, and that axe-core finds nothing.
//! Saves screenshots for a person to judge (`artifacts/screenshots/20-*.png`).

use crate::browser::Browser;
use crate::server::{Server, PASSWORD};
use miulink::seed::{seed, SeedOptions};
use serde_json::Value;
use signalling::Role;

/// Signs in as the manager and waits for the dashboard's figures.
async fn open_dashboard(b: &Browser, server: &Server) {
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
        "return location.pathname === '/reports' && document.querySelector('#main')?.getAttribute('aria-busy') === 'false' && !document.querySelector('#report').hidden",
    )
    .await;
}

/// Where the two answers are on the screen, scrolled to the top: each
/// `{top, bottom}` in CSS pixels, and the height of the window.
async fn first_screen(b: &Browser) -> Value {
    b.eval(
        "window.scrollTo(0, 0);
         const at = (id) => { const r = document.getElementById(id).getBoundingClientRect(); return { top: r.top, bottom: r.bottom }; };
         return { verdict: at('verdict'), saved: at('saved'), height: innerHeight, width: innerWidth, page_width: document.documentElement.scrollWidth };",
    )
    .await
}

fn px(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Every table box that scrolls sideways is a named region the keyboard
/// can reach (axe-core's `scrollable-region-focusable`).
const SCROLLERS_REACHABLE: &str =
    "const wraps = [...document.querySelectorAll('.table-wrap')].filter(w => w.checkVisibility() && w.scrollWidth > w.clientWidth);
     const bad = wraps.filter(w => w.tabIndex !== 0 || w.getAttribute('role') !== 'region' || !(w.getAttribute('aria-label') || '').includes('table'));
     return bad.length === 0 && { scrolling: wraps.length };";

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

    // A laptop's screen.
    let b = Browser::launch("manager", 1366, 768).await;
    open_dashboard(&b, &server).await;
    // The default period is the last 30 days: figures are numbers, not dashes.
    let requests = b.text("#cards .card:first-child .card__value").await;
    let n: u64 = requests
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("requests figure {requests:?}"));
    assert!(n > 100, "a month of synthetic history: {n}");

    // The same header as the other signed-in pages, and a favicon that is
    // there (no request for a missing /favicon.ico).
    assert_eq!(b.text("#account-name").await, "Service Manager");
    assert!(b.text("#sign-out").await.contains("Sign out"));
    let icon = b
        .eval("return document.querySelector('link[rel=icon]')?.getAttribute('href') ?? null")
        .await;
    assert_eq!(icon, "/favicon.svg", "the favicon link");
    let favicon = b
        .eval_async(
            "const done = arguments[arguments.length - 1];
             fetch('/favicon.svg').then(r => done({ status: r.status, type: r.headers.get('content-type') }), e => done({ status: 0, type: String(e) }));",
        )
        .await;
    assert_eq!(favicon["status"], 200, "GET /favicon.svg: {favicon}");
    assert_eq!(
        favicon["type"], "image/svg+xml",
        "GET /favicon.svg: {favicon}"
    );
    let missing: Vec<String> = b
        .console()
        .await
        .into_iter()
        .filter(|line| line.contains("favicon") || line.contains("404"))
        .collect();
    assert!(
        missing.is_empty(),
        "nothing on the page is missing: {missing:?}"
    );

    // What the server says, to check the page against (the page's own query).
    let facts = b
        .eval_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/reports' + location.search, { headers: { Accept: 'application/json' } }).then(r => r.json()).then(r => {
               const nf = new Intl.NumberFormat('en-GB');
               const text = (id) => document.getElementById(id).innerText.replace(/\\s+/g, ' ').trim();
               const never = r.wait_distribution.by_urgency.map(d => `${nf.format(d.unanswered_over_target)} ${d.unanswered_over_target === 1 ? 'was' : 'were'} never answered`);
               done({
                 verdict: r.verdict,
                 share: r.verdict.share == null ? null : `${(r.verdict.share * 100).toFixed(1)}%`,
                 aim: `aim ${+(r.verdict.target_share * 100).toFixed(1)}%`,
                 journeys: nf.format(r.outcomes.journeys_avoided),
                 untimed: r.outcomes.sites_without_travel_time,
                 verdict_text: text('verdict'),
                 saved_text: text('saved'),
                 flags: document.querySelector('#saved .saved__flag')?.textContent ?? '',
                 never, dist_text: text('dist'),
                 plural_one: document.querySelector('#report').textContent.replace(/\\s+/g, ' ')
                   .match(/(^|[^0-9,.])1 (were|requests|answered requests|journeys|days|synthetic consults|measured calls)\\b/)?.[0] ?? null,
               });
             }, e => done({ error: String(e) }));",
        )
        .await;
    println!("verdict: {}", facts["verdict_text"]);
    println!("journeys: {}", facts["saved_text"]);

    // 1. Are we meeting our answer targets? In words, with the aim.
    let verdict = facts["verdict_text"].as_str().unwrap_or_default();
    let meeting = facts["verdict"]["meeting_target"].as_bool();
    assert!(
        meeting.is_some(),
        "a month of history can be judged: {facts}"
    );
    let expected = if meeting == Some(true) {
        "Meeting the answer target"
    } else {
        "Not meeting the answer target"
    };
    assert!(
        verdict.starts_with(expected),
        "{verdict:?} should start {expected:?}"
    );
    assert!(verdict.to_lowercase().contains("meeting"), "{verdict}");
    let aim = facts["aim"].as_str().unwrap_or("aim ?");
    assert_eq!(aim, "aim 90%", "the default aim");
    assert!(verdict.contains(aim), "{verdict:?} names the {aim}");
    let share = facts["share"].as_str().unwrap_or("?");
    assert!(
        verdict.contains(&format!(
            "{share} of requests answered within target ({aim})"
        )),
        "{verdict:?} gives the share {share}"
    );
    // Not by colour alone: an icon as well as the words.
    assert!(
        b.eval("return !!document.querySelector('#verdict svg.verdict__icon use')")
            .await
            .as_bool()
            .unwrap_or(false),
        "the verdict has its icon"
    );

    // 2. How many journeys to A&E did this save? The figure, and the sites
    // whose journeys the time saved leaves out, said next to it.
    let saved = facts["saved_text"].as_str().unwrap_or_default();
    let journeys = facts["journeys"].as_str().unwrap_or("?");
    assert!(
        saved.contains(&format!(
            "Journeys to A&E avoided {journeys} patients treated at the MIU"
        )),
        "{saved:?} gives the {journeys} journeys"
    );
    assert!(saved.contains("patient travel saved"), "{saved}");
    let untimed: Vec<&str> = facts["untimed"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        !untimed.is_empty(),
        "the seeded sites without a travel time (only Millom has one): {facts}"
    );
    let flags = facts["flags"].as_str().unwrap_or_default();
    assert!(
        flags.starts_with("Travel time to A&E not set, so not counted in the time saved: + "),
        "{flags}"
    );
    for site in &untimed {
        assert!(
            flags.contains(&format!(" journeys at {site}")),
            "{site} is flagged next to the time saved: {flags}"
        );
    }

    // Both answers on the first screen, without scrolling.
    let screen = first_screen(&b).await;
    println!("first screen at 1366x768: {screen}");
    b.screenshot("20-dashboard-laptop").await;
    for part in ["verdict", "saved"] {
        assert!(
            px(&screen[part]["top"]) >= 0.0 && px(&screen[part]["bottom"]) <= px(&screen["height"]),
            "the {part} is on the first screen: {screen}"
        );
    }

    // The never-answered sentences agree with their numbers ("1 was").
    let dist = facts["dist_text"].as_str().unwrap_or_default();
    for sentence in facts["never"].as_array().into_iter().flatten() {
        let sentence = sentence.as_str().unwrap_or("?");
        assert!(dist.contains(sentence), "{sentence:?} in {dist:?}");
    }
    let plural_one = &facts["plural_one"];
    assert!(plural_one.is_null(), "a plural after 1: {plural_one}");

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
    let scrolling = b
        .wait_for(
            "scrolling tables reachable by keyboard",
            SCROLLERS_REACHABLE,
        )
        .await;
    println!("laptop: tables that scroll sideways: {scrolling}");
    b.assert_accessible("dashboard").await;

    // Every table shown (the folded ones too): the wide ones scroll, and
    // can still be reached and scrolled from the keyboard.
    b.eval("document.querySelectorAll('details.as-table').forEach(d => { d.open = true; }); return true")
        .await;
    let scrolling = b
        .wait_for(
            "opened tables that scroll reachable by keyboard",
            SCROLLERS_REACHABLE,
        )
        .await;
    println!("laptop, every table open: tables that scroll sideways: {scrolling}");
    b.assert_accessible("dashboard, every table open").await;
    b.eval("document.querySelector('#h-stations').scrollIntoView(); return true")
        .await;
    let focused = b
        .eval("const w = document.querySelector('#station-table').parentElement; w.focus(); return document.activeElement === w && w.getAttribute('aria-label')")
        .await;
    println!("the station table's box, focused: {focused}");
    b.screenshot("20-dashboard-laptop-stations").await;

    // A custom site filter narrows every figure.
    b.eval("const s = document.querySelector('#site'); s.value = 'Kendal'; s.dispatchEvent(new Event('change', {bubbles: true})); return true").await;
    b.wait_for(
        "the Kendal figures",
        "return document.querySelector('#main')?.getAttribute('aria-busy') === 'false' && (() => { const rows = [...document.querySelectorAll('#station-table tbody tr')]; return rows.length > 0 && rows.every(r => r.textContent.includes('Kendal')); })()",
    )
    .await;
    let saved = b.text("#saved").await;
    assert!(
        saved.contains("not counted in the time saved: ") && saved.contains(" journeys at Kendal."),
        "Kendal alone, no travel time: {saved}"
    );
    first_screen(&b).await;
    b.screenshot("20-dashboard-laptop-one-site").await;
    drop(b);

    // A phone: the filters fold away under one line, the answers come first.
    let b = Browser::launch("manager-phone", 390, 844).await;
    open_dashboard(&b, &server).await;
    let folded = b
        .eval("return !document.querySelector('#filters-panel').open")
        .await;
    assert_eq!(folded, true, "the filters are folded on a phone");
    let screen = first_screen(&b).await;
    println!("first screen at 390x844: {screen}");
    b.screenshot("20-dashboard-phone").await;
    assert!(
        px(&screen["page_width"]) <= px(&screen["width"]),
        "nothing wider than the phone: {screen}"
    );
    assert!(
        px(&screen["verdict"]["bottom"]) <= px(&screen["height"]),
        "the verdict is on the phone's first screen: {screen}"
    );
    assert!(
        px(&screen["saved"]["top"]) < px(&screen["height"]),
        "the journeys start on the phone's first screen: {screen}"
    );
    let scrolling = b
        .wait_for(
            "scrolling tables reachable by keyboard",
            SCROLLERS_REACHABLE,
        )
        .await;
    println!("phone: tables that scroll sideways: {scrolling}");
    b.assert_accessible("dashboard, phone").await;
    b.eval("document.querySelector('#saved').scrollIntoView(); return true")
        .await;
    b.screenshot("20-dashboard-phone-journeys").await;
    b.eval("document.querySelector('#h-stations').scrollIntoView(); return true")
        .await;
    b.screenshot("20-dashboard-phone-stations").await;
    b.click("#filters-panel summary").await;
    b.wait_for(
        "the filters, unfolded",
        "return document.querySelector('#filters-panel').open",
    )
    .await;
    first_screen(&b).await;
    b.screenshot("20-dashboard-phone-filters").await;
    b.assert_accessible("dashboard, phone, filters open").await;

    // A week with no requests says so, rather than showing a verdict.
    b.goto(&server.url("/reports?from=2020-01-06&to=2020-01-12"))
        .await;
    b.wait_for(
        "the empty week",
        "return document.querySelector('#main')?.getAttribute('aria-busy') === 'false' && !document.querySelector('#report').hidden && document.querySelector('#verdict').textContent.length > 0",
    )
    .await;
    let verdict = b.text("#verdict").await;
    assert!(
        verdict.starts_with("No requests in this period"),
        "{verdict}"
    );
    assert!(verdict.contains("aim 90%"), "{verdict}");
    let saved = b.text("#saved").await;
    assert!(saved.contains("no patient recorded"), "{saved}");
    first_screen(&b).await;
    b.screenshot("20-dashboard-phone-no-requests").await;
    b.assert_accessible("dashboard, phone, no requests").await;

    // The header's sign out, as on the other pages.
    b.click("#sign-out").await;
    b.wait_for(
        "the login page, signed out",
        "return location.pathname === '/' && !!document.querySelector('#username')",
    )
    .await;
}

/// With an aim the service does not reach, the verdict says so in words,
/// with a warning sign, and by how much.
#[tokio::test]
async fn the_verdict_says_when_the_answer_target_is_missed() {
    let _serial = crate::one_at_a_time().await;
    let server = Server::start(|s| s.reports.target_share = 0.995).await;
    server
        .add_user("mgr", "Service Manager", Role::Manager, None)
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    seed(
        &server.store,
        &SeedOptions {
            consults: 600,
            days: 30,
            end: now,
            rng_seed: 11,
            timezone: chrono_tz::Europe::London,
        },
    )
    .await
    .expect("history seeded");

    let b = Browser::launch("manager-missed", 1366, 768).await;
    open_dashboard(&b, &server).await;
    let verdict = b
        .eval("return document.querySelector('#verdict').innerText.replace(/\\s+/g, ' ').trim()")
        .await;
    let verdict = verdict.as_str().unwrap_or_default();
    println!("verdict: {verdict}");
    assert!(
        verdict.starts_with("Not meeting the answer target"),
        "{verdict}"
    );
    assert!(
        verdict.contains("of requests answered within target (aim 99.5%)"),
        "{verdict}"
    );
    assert!(
        verdict.contains("percentage points short of the aim"),
        "{verdict}"
    );
    let sign = b
        .eval("return document.querySelector('#verdict.verdict--missed use')?.getAttribute('href') ?? null")
        .await;
    assert_eq!(sign, "/icons.svg#alert", "a warning sign, not only red");
    // The day-by-day chart draws the same aim.
    let chart = b.text("#daily-target").await;
    assert!(chart.contains("the aim of 99.5%"), "{chart}");
    let screen = first_screen(&b).await;
    b.screenshot("20-dashboard-laptop-target-missed").await;
    assert!(
        px(&screen["verdict"]["bottom"]) <= px(&screen["height"]),
        "the verdict is on the first screen: {screen}"
    );
    b.assert_accessible("dashboard, target missed").await;
}
