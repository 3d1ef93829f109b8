//! The call screen at the three sizes it is used at: a desktop in A&E
//! (1366x768), a tablet on a cart (1024x768) and a phone (390x844), on a
//! real call with video both ways and chat. At every size the reason and
//! the local reference are readable in full, the connection pills stay
//! clear of the name and reason, the self view stays clear of the other
//! side's status ("Camera off"), the controls can be tapped, and the remote
//! picture is the largest thing on the screen. At the tablet and the phone
//! the chat sits behind a "Chat" button that works from the keyboard and
//! counts unread messages in words. When the call ends the chat transcript
//! stays on the nurse's after-call screen and the doctor's outcome form
//! until the next request. axe-core finds nothing in any of these states.

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use serde_json::{json, Value};
use signalling::Role;

const DESKTOP: (u32, u32) = (1366, 768);
const TABLET: (u32, u32) = (1024, 768);
const PHONE: (u32, u32) = (390, 844);
const SIZES: [(u32, u32); 3] = [DESKTOP, TABLET, PHONE];

const REASON: &str = "Head injury: on warfarin, fell 2h ago";
const REFERENCE: &str = "MIU-0412202501";
const ENTER: &str = "\u{E007}";
const SPACE: &str = "\u{E00D}";
const ESCAPE: &str = "\u{E00C}";

/// Measures the call screen as it is now; every problem found, in words.
/// `reason` is the text the header must show whole.
const LAYOUT: &str = r#"
const [reason, reference] = arguments;
const view = document.querySelector('section[data-view=call]');
const W = window.innerWidth, H = window.innerHeight;
const problems = [];
const R = (e) => e.getBoundingClientRect();
const shown = (e) => !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'
  && R(e).width > 0 && R(e).height > 0;
const name = (e) => e.className && e.className.baseVal === undefined ? `${e.tagName.toLowerCase()}.${String(e.className).trim().split(/\s+/).join('.')}` : e.tagName.toLowerCase();
const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5
  && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
const inView = (r) => r.left >= -0.5 && r.top >= -0.5 && r.right <= W + 0.5 && r.bottom <= H + 0.5;
const area = (e) => shown(e) ? R(e).width * R(e).height : 0;

if (document.documentElement.scrollWidth > W + 1) problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${W})`);

// The reason and the reference, whole and on screen.
const full = (sel, want) => {
  const e = view.querySelector(sel);
  if (!shown(e)) { problems.push(`${sel} is not shown`); return; }
  if (e.textContent.trim() !== want) problems.push(`${sel} says ${JSON.stringify(e.textContent)}, not ${JSON.stringify(want)}`);
  if (e.scrollWidth > e.clientWidth + 1) problems.push(`${sel} is cut off (${e.scrollWidth} > ${e.clientWidth} px wide)`);
  if (e.scrollHeight > e.clientHeight + 1) problems.push(`${sel} is cut off (${e.scrollHeight} > ${e.clientHeight} px high)`);
  if (getComputedStyle(e).textOverflow === 'ellipsis' && getComputedStyle(e).whiteSpace === 'nowrap') problems.push(`${sel} is set to end in an ellipsis`);
  // Every line of the text inside the element, its ancestors and the screen.
  const range = document.createRange();
  range.selectNodeContents(e);
  for (const line of range.getClientRects()) {
    if (!inView(line)) problems.push(`${sel}: a line of text is off the screen`);
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
      const pr = R(p);
      if (line.left < pr.left - 0.5 || line.right > pr.right + 0.5 || line.top < pr.top - 0.5 || line.bottom > pr.bottom + 0.5) {
        problems.push(`${sel}: text clipped by ${name(p)}`);
        break;
      }
    }
  }
};
full('.consult-reason', reason);
if (reference) full('.consult-ref', `Ref ${reference}`);
full('.peer-name', view.querySelector('.peer-name').textContent.trim());

// The pills (waiting, quality, status, clock) clear of the name and reason.
const pills = [...view.querySelectorAll('.call-top-right > *')].filter(shown);
const headerText = ['.peer-name', '.peer-meta', '.call-consult .badge', '.consult-reason', '.consult-ref']
  .map((s) => view.querySelector(s)).filter(shown);
for (const p of pills) {
  if (!inView(R(p))) problems.push(`${name(p)} is off the screen`);
  for (const t of headerText) if (overlap(R(p), R(t))) problems.push(`${name(p)} overlaps ${name(t)}`);
}
for (let i = 0; i < pills.length; i++) for (let j = i + 1; j < pills.length; j++) {
  if (overlap(R(pills[i]), R(pills[j]))) problems.push(`${name(pills[i])} overlaps ${name(pills[j])}`);
}

// The self view: on screen, clear of the other side's status and the controls.
const self = view.querySelector('.self-view');
if (!shown(self)) problems.push('the self view is not shown');
else {
  if (!inView(R(self))) problems.push('the self view is off the screen');
  const status = [...view.querySelectorAll('.remote-flags li, .remote-placeholder .placeholder-text, .remote-placeholder .icon, .call-status, .call-top, .call-controls .control, .chat-toggle')]
    .filter((e) => shown(e) && !e.closest('[hidden]'));
  for (const s of status) if (overlap(R(self), R(s))) problems.push(`the self view overlaps ${name(s)} (${JSON.stringify(s.textContent.trim().slice(0, 40))})`);
}

// The controls: big enough to tap, on screen, clear of each other.
const controls = [...view.querySelectorAll('.call-controls .control')].filter(shown);
for (const c of controls) {
  const r = R(c);
  if (r.width < 44 || r.height < 44) problems.push(`${name(c)} is ${Math.round(r.width)}x${Math.round(r.height)} px, under 44 px`);
  if (!inView(r)) problems.push(`${name(c)} is off the screen`);
}
for (let i = 0; i < controls.length; i++) for (let j = i + 1; j < controls.length; j++) {
  if (overlap(R(controls[i]), R(controls[j]))) problems.push(`${name(controls[i])} overlaps ${name(controls[j])}`);
}

// The remote picture: on screen and the largest thing there.
const remote = view.querySelector('.remote');
if (!shown(remote)) problems.push('the remote video is not shown');
else if (!inView(R(remote))) problems.push('the remote video is off the screen');
const sizes = { remote: area(remote), chat: area(view.querySelector('.chat')), controls: area(view.querySelector('.call-controls')),
  top: area(view.querySelector('.call-top')), self: area(self) };

const chat = view.querySelector('.chat');
const toggle = view.querySelector('.chat-toggle');
return {
  problems,
  sizes,
  chatShown: shown(chat),
  toggleShown: shown(toggle),
  expanded: toggle ? toggle.getAttribute('aria-expanded') : null,
  dataChat: view.dataset.chat || null,
};
"#;

/// Lets the layout settle after a resize or a click (two frames).
async fn settle(b: &Browser) {
    let _ = b
        .eval_async(
            "const done = arguments[arguments.length - 1];
             requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
        )
        .await;
}

/// Makes the page this size (once: resizing a headless window again to the
/// size it has can leave it wider), and checks that it is.
async fn resize_to(b: &Browser, (w, h): (u32, u32)) {
    let inner = b
        .eval("return [window.innerWidth, window.innerHeight]")
        .await;
    if inner != json!([w, h]) {
        b.resize(w, h).await;
    }
    settle(b).await;
    let inner = b
        .eval("return [window.innerWidth, window.innerHeight]")
        .await;
    assert_eq!(
        inner,
        json!([w, h]),
        "{}: the page is {inner}, not {w}x{h}",
        b.name
    );
}

async fn measure(b: &Browser, reference: &str) -> Value {
    let script = format!(
        "return (function() {{ {LAYOUT} }}).apply(null, {});",
        json!([REASON, reference])
    );
    b.eval(&script).await
}

/// The call screen at this size: a screenshot, axe-core, and no layout
/// problem. Returns the measurements.
async fn check_call_screen(b: &Browser, state: &str, (w, h): (u32, u32), reference: &str) -> Value {
    resize_to(b, (w, h)).await;
    let m = measure(b, reference).await;
    b.screenshot(&format!("callscreen-{}-{state}-{w}x{h}", b.name))
        .await;
    let problems: Vec<String> = m["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    if !problems.is_empty() {
        b.fail(&format!(
            "call screen ({state}) at {w}x{h}:\n  {}\nsizes: {}",
            problems.join("\n  "),
            m["sizes"]
        ))
        .await;
    }
    let sizes = &m["sizes"];
    let remote = sizes["remote"].as_f64().unwrap_or(0.0);
    for other in ["chat", "controls", "top", "self"] {
        // On a phone the open chat takes the lower part of the screen.
        if other == "chat" && w <= 700 {
            continue;
        }
        let a = sizes[other].as_f64().unwrap_or(0.0);
        if remote <= a {
            b.fail(&format!(
                "call screen ({state}) at {w}x{h}: the remote video ({remote:.0} px²) is not larger than the {other} ({a:.0} px²)"
            ))
            .await;
        }
    }
    b.assert_accessible(&format!("call screen, {state}, {w}x{h}"))
        .await;
    m
}

/// The "Chat" button: its state, its words (and accessible name), and
/// whether the chat panel shows.
async fn chat_toggle(b: &Browser) -> Value {
    b.eval(
        "const t = document.querySelector('.chat-toggle');
         const panel = document.getElementById(t.getAttribute('aria-controls'));
         const view = document.querySelector('section[data-view=call]');
         return {
           expanded: t.getAttribute('aria-expanded'),
           text: t.textContent.replace(/\\s+/g, ' ').trim(),
           shown: t.getClientRects().length > 0,
           panel: !!panel && panel.classList.contains('chat'),
           panelShown: !!panel && panel.getClientRects().length > 0,
           dataChat: view.dataset.chat,
           focused: document.activeElement === t,
         };",
    )
    .await
}

async fn press(b: &Browser, css: &str, key: &str) {
    b.type_text(css, key).await;
    settle(b).await;
}

/// At the tablet and phone sizes: the chat starts closed behind its
/// button, which opens it from the keyboard (Enter), and closes it again
/// (Space, and Escape from inside the chat).
async fn chat_behind_a_button(b: &Browser, size: (u32, u32), reference: &str) {
    let (w, h) = size;
    let t = chat_toggle(b).await;
    assert_eq!(
        t["shown"], true,
        "{}: a Chat button at {w}x{h}: {t}",
        b.name
    );
    assert_eq!(
        t["panel"], true,
        "{}: aria-controls names the chat: {t}",
        b.name
    );
    assert_eq!(t["expanded"], "false", "{}: closed at first: {t}", b.name);
    assert_eq!(t["panelShown"], false, "{}: chat hidden: {t}", b.name);

    press(b, ".chat-toggle", ENTER).await;
    let t = chat_toggle(b).await;
    assert_eq!(
        t["expanded"], "true",
        "{}: Enter opens the chat: {t}",
        b.name
    );
    assert_eq!(t["dataChat"], "open", "{t}");
    assert_eq!(t["panelShown"], true, "{}: the chat shows: {t}", b.name);
    let m = check_call_screen(b, "chat-open", size, reference).await;
    assert_eq!(m["chatShown"], true, "{m}");
    // The messages are there to read.
    assert!(
        b.eval("return document.querySelector('.chat-log').getClientRects().length > 0 && document.querySelectorAll('.chat-log li').length >= 2")
            .await
            .as_bool()
            .unwrap_or(false),
        "{}: the chat messages show when open",
        b.name
    );
    press(b, ".chat-toggle", SPACE).await;
    let t = chat_toggle(b).await;
    assert_eq!(
        t["expanded"], "false",
        "{}: Space closes the chat: {t}",
        b.name
    );
    assert_eq!(t["panelShown"], false, "{t}");

    // Escape in the message box closes the chat and returns to the button.
    press(b, ".chat-toggle", ENTER).await;
    press(b, "#chat-input", ESCAPE).await;
    let t = chat_toggle(b).await;
    assert_eq!(
        t["expanded"], "false",
        "{}: Escape closes the chat: {t}",
        b.name
    );
    assert_eq!(
        t["focused"], true,
        "{}: focus back on the Chat button: {t}",
        b.name
    );
}

async fn send_chat(from: &Browser, to: &Browser, text: &str) {
    from.wait_for(
        "the chat to open",
        "return !document.querySelector('#chat-input').disabled",
    )
    .await;
    from.type_text("#chat-input", text).await;
    from.type_text("#chat-input", ENTER).await;
    to.wait_for(
        &format!("the chat message {text:?}"),
        &format!(
            "return [...document.querySelectorAll('.chat-log li.theirs .chat-text')].some((e) => e.textContent === {})",
            json!(text)
        ),
    )
    .await;
}

/// The transcript on an after-call screen: its heading and messages, and
/// that nothing in it can be typed into or pressed.
async fn transcript(b: &Browser) -> Value {
    b.eval(
        "const view = document.querySelector(`section[data-view=${document.body.dataset.screen}]`);
         const box = view.querySelector('.chat-transcript');
         if (!box || box.getClientRects().length === 0) return null;
         return {
           heading: box.querySelector('h2').textContent.trim(),
           messages: [...box.querySelectorAll('li')].map((li) => li.querySelector('.chat-text').textContent),
           who: [...box.querySelectorAll('li')].map((li) => li.querySelector('.chat-meta strong').textContent),
           controls: box.querySelectorAll('input, textarea, button, [contenteditable]').length,
           ids: [...box.querySelectorAll('[id]')].map((e) => e.id).filter((id) => document.querySelectorAll(`#${CSS.escape(id)}`).length > 1),
         };",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_call_screen_fits_a_desktop_a_cart_tablet_and_a_phone_and_the_chat_outlives_the_call() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
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
            "dr-patel",
            "Dr Asha Patel",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let nurse = Browser::launch("station", DESKTOP.0, DESKTOP.1).await;
    let doctor = Browser::launch("clinician", DESKTOP.0, DESKTOP.1).await;
    sign_in(&nurse, &server, "millom-room2", "/station").await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;
    on_screen(&doctor, "queue").await;

    request_consult(
        &nurse,
        "urgent",
        "Head injury",
        "on warfarin, fell 2h ago",
        REFERENCE,
    )
    .await;
    on_screen(&nurse, "waiting").await;
    doctor
        .wait_for(
            "the request",
            "return document.querySelectorAll('#queue > li').length === 1",
        )
        .await;
    answer_first(&doctor).await;
    on_screen(&doctor, "call").await;
    on_screen(&nurse, "call").await;
    // Video both ways, decoded.
    assert!(doctor.wait_for_remote_video().await > 0);
    assert!(nurse.wait_for_remote_video().await > 0);
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the call to show as connected",
            "return document.querySelector('.call-status .label').textContent === 'Connected'",
        )
        .await;
        side.wait_for(
            "the remote picture (placeholder gone)",
            "return document.querySelector('.remote-placeholder').hidden",
        )
        .await;
    }

    // A message each way (the chat is open beside the picture at 1366).
    send_chat(&doctor, &nurse, "Tranexamic acid 1 g IV").await;
    send_chat(&nurse, &doctor, "Given at 14:05, GCS 15").await;

    for size in SIZES {
        for side in [&nurse, &doctor] {
            let m = check_call_screen(side, "in-call", size, REFERENCE).await;
            if size.0 > 1024 {
                assert_eq!(
                    m["chatShown"], true,
                    "{}: chat beside the picture: {m}",
                    side.name
                );
                assert_eq!(
                    m["toggleShown"], false,
                    "{}: no Chat button needed: {m}",
                    side.name
                );
            } else {
                assert_eq!(m["toggleShown"], true, "{}: a Chat button: {m}", side.name);
                assert_eq!(
                    m["chatShown"], false,
                    "{}: the chat waits behind it: {m}",
                    side.name
                );
                chat_behind_a_button(side, size, REFERENCE).await;
            }
        }
    }

    // A message while the nurse's chat is closed: the button counts it, in
    // words as well as colour, and opening the chat clears the count.
    resize_to(&nurse, TABLET).await;
    resize_to(&doctor, DESKTOP).await;
    send_chat(&doctor, &nurse, "Repeat GCS every 30 min").await;
    let t = nurse
        .wait_for(
            "the unread count on the Chat button",
            "const t = document.querySelector('.chat-toggle');
             return /1 new/.test(t.textContent) && t.textContent.replace(/\\s+/g, ' ').trim();",
        )
        .await;
    let t = t.as_str().unwrap_or("").to_owned();
    assert!(t.contains("Chat") && t.contains("1 new"), "{t}");
    check_call_screen(&nurse, "chat-unread", TABLET, REFERENCE).await;
    send_chat(&doctor, &nurse, "Bloods: INR please").await;
    nurse
        .wait_for(
            "two unread",
            "return /2 new/.test(document.querySelector('.chat-toggle').textContent)",
        )
        .await;
    press(&nurse, ".chat-toggle", ENTER).await;
    let t = chat_toggle(&nurse).await;
    assert_eq!(t["expanded"], "true", "{t}");
    assert!(
        !t["text"].as_str().unwrap_or("").contains("new"),
        "opening the chat clears the count: {t}"
    );
    press(&nurse, ".chat-toggle", ENTER).await;

    // The nurse turns the camera off: on the doctor's screen "Camera off"
    // and the placeholder stay clear of the doctor's own picture.
    nurse.click(".call-controls .control-camera").await;
    doctor
        .wait_for(
            "Camera off on the clinician's screen",
            "return [...document.querySelectorAll('.remote-flags li')].some((li) => li.textContent.includes('Camera off'))
                 && !document.querySelector('.remote-placeholder').hidden",
        )
        .await;
    for size in SIZES {
        check_call_screen(&doctor, "peer-camera-off", size, REFERENCE).await;
    }
    nurse.click(".call-controls .control-camera").await;
    resize_to(&doctor, DESKTOP).await;

    // The call ends: the transcript stays on both after-call screens,
    // read-only, under its own heading.
    hang_up(&doctor).await;
    on_screen(&doctor, "outcome").await;
    on_screen(&nurse, "after").await;
    let all = [
        "Tranexamic acid 1 g IV",
        "Given at 14:05, GCS 15",
        "Repeat GCS every 30 min",
        "Bloods: INR please",
    ];
    for (side, them) in [(&nurse, "Dr Asha Patel"), (&doctor, "Millom MIU Room 2")] {
        let t = transcript(side).await;
        assert!(
            !t.is_null(),
            "{}: a chat transcript after the call",
            side.name
        );
        assert_eq!(t["heading"], "Chat from this call", "{t}");
        assert_eq!(
            t["messages"],
            json!(all),
            "{}: every message, in order: {t}",
            side.name
        );
        let who: Vec<&str> = t["who"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap_or(""))
            .collect();
        assert!(who.contains(&"You") && who.contains(&them), "{t}");
        assert_eq!(t["controls"], 0, "{}: read-only: {t}", side.name);
        assert_eq!(t["ids"], json!([]), "{}: no duplicate ids: {t}", side.name);
    }
    let screens = [(&nurse, "after-call"), (&doctor, "outcome")];
    for (side, state) in screens {
        for (w, h) in SIZES {
            resize_to(side, (w, h)).await;
            side.eval("document.querySelector('.chat-transcript').scrollIntoView({block: 'center'}); return true;")
                .await;
            settle(side).await;
            side.screenshot(&format!("callscreen-{}-{state}-{w}x{h}", side.name))
                .await;
            let wide = side
                .eval("return document.documentElement.scrollWidth <= window.innerWidth + 1")
                .await;
            assert_eq!(
                wide, true,
                "{}: {state} at {w}x{h} scrolls sideways",
                side.name
            );
            side.assert_accessible(&format!("{state} with the chat transcript, {w}x{h}"))
                .await;
        }
        resize_to(side, DESKTOP).await;
    }

    // The outcome saved, the nurse starts a new request: the transcript goes.
    record_outcome(&doctor, "managed_locally", "").await;
    assert!(
        transcript(&doctor).await.is_null(),
        "no transcript on the queue"
    );
    nurse
        .wait_for(
            "the outcome on the station",
            "const e = document.querySelector('#outcome-value'); return e && e.textContent;",
        )
        .await;
    assert!(
        !transcript(&nurse).await.is_null(),
        "the transcript stays after the outcome arrives"
    );
    nurse.click("#new-request").await;
    on_screen(&nurse, "request").await;
    assert_eq!(
        nurse
            .eval("return document.querySelectorAll('.chat-transcript li').length")
            .await,
        0,
        "the transcript is gone once a new request starts"
    );
}
