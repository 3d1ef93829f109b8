//! Call set-up time, measured in real browsers: from the clinician's click
//! on "Answer" to remote video decoding (the first remote frame presented)
//! on BOTH sides, over N calls between two headless Chromiums and the real
//! server. In the same run, the floor: two RTCPeerConnections in one page
//! (no server, no second browser), from creating the offer to both first
//! frames, and to ICE connected.
//!
//! ```sh
//! cargo bench --bench call_setup            # 10 calls
//! MIULINK_BENCH_CALLS=30 cargo bench --bench call_setup
//! MIULINK_BENCH_RING_CAMERA=on cargo bench --bench call_setup   # camera already open while ringing
//! ```
//!
//! Times come from the pages' own clocks (`performance.timeOrigin +
//! performance.now()`, the same wall clock for both browsers on one
//! machine), so WebDriver's own latency is not in the figures.

#[path = "../tests/e2e/browser.rs"]
mod browser;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/e2e/flows.rs"]
mod flows;
#[path = "../tests/e2e/server.rs"]
mod server;

use browser::Browser;
use flows::*;
use serde_json::Value;
use server::Server;
use signalling::Role;

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The first time a call's trace has this event (epoch ms).
fn traced(trace: &Value, event: &str) -> f64 {
    trace
        .as_array()
        .and_then(|t| t.iter().find(|e| e[0] == event))
        .and_then(|e| e[1].as_f64())
        .unwrap_or(f64::NAN)
}

const FLOOR_SCRIPT: &str = r#"
const done = arguments[arguments.length - 1];
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
  const out = [];
  for (let i = 0; i < 10; i++) {
    const a = new RTCPeerConnection();
    const b = new RTCPeerConnection();
    a.onicecandidate = (e) => { if (e.candidate) b.addIceCandidate(e.candidate); };
    b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate); };
    for (const t of stream.getTracks()) { a.addTrack(t, stream); b.addTrack(t, stream); }
    const firstFrame = (pc) => new Promise((resolve) => {
      pc.ontrack = (e) => {
        if (e.track.kind !== 'video') return;
        const v = document.createElement('video');
        v.muted = true;
        v.srcObject = new MediaStream([e.track]);
        v.play().catch(() => {});
        v.requestVideoFrameCallback(() => resolve(performance.now()));
      };
    });
    let ice = null;
    const t0 = performance.now();
    a.oniceconnectionstatechange = () => {
      if (ice === null && a.iceConnectionState === 'connected') ice = performance.now() - t0;
    };
    const fa = firstFrame(a);
    const fb = firstFrame(b);
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    const [x, y] = await Promise.all([fa, fb]);
    out.push({ frames: Math.max(x, y) - t0, ice });
    a.close();
    b.close();
  }
  for (const t of stream.getTracks()) t.stop();
  done(out);
})().catch((e) => done({ error: String(e) }));
"#;

async fn run() {
    let calls: usize = std::env::var("MIULINK_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // The clinician's setting "turn my camera on while a request rings"
    // (off by default: then the camera opens at the Answer click).
    let ring_camera = std::env::var("MIULINK_BENCH_RING_CAMERA").as_deref() == Ok("on");
    let server = Server::start(|_| {}).await;
    server
        .add_user(
            "bench-room",
            "Bench MIU Room",
            Role::Station,
            Some("Millom"),
        )
        .await;
    server
        .add_user(
            "bench-doc",
            "Dr Bench",
            Role::Clinician,
            Some("Furness General"),
        )
        .await;
    let nurse = Browser::launch("bench-station", 1280, 800).await;
    let doctor = Browser::launch("bench-clinician", 1280, 800).await;
    sign_in(&doctor, &server, "bench-doc", "/clinician").await;
    sign_in(&nurse, &server, "bench-room", "/station").await;
    turn_on_alerts(&doctor).await;
    let checked = doctor
        .eval("return document.querySelector('#camera-ready').checked")
        .await;
    if checked.as_bool() != Some(ring_camera) {
        doctor.click("#camera-ready").await;
    }

    // The floor, in the station's browser, before any call.
    let floor = nurse.eval_async(FLOOR_SCRIPT).await;
    let floor_runs = floor.as_array().cloned().unwrap_or_else(|| {
        panic!("floor measurement failed: {floor}");
    });
    let floor_frames: Vec<f64> = floor_runs.iter().map(|r| num(r, "frames")).collect();
    let floor_ice: Vec<f64> = floor_runs.iter().map(|r| num(r, "ice")).collect();

    println!(
        "call set-up: Answer click -> remote video decoding on both sides ({calls} calls, camera while ringing: {})",
        if ring_camera { "on" } else { "off" }
    );
    println!(
        "{:>4} {:>9} {:>11} {:>10} {:>10} {:>11} {:>11}",
        "call", "total ms", "call_start", "offer in", "ICE conn", "clin frame", "stat frame"
    );
    let mut totals = Vec::new();
    let mut ices = Vec::new();
    for i in 0..calls {
        request_consult(&nurse, "urgent", "Head injury", "", "").await;
        on_screen(&nurse, "waiting").await;
        // The clinician sees it ring (and, with the setting on, their camera
        // preview open) before answering, as a person would.
        let ringing = if ring_camera {
            "return document.querySelectorAll('#queue > li.ringing').length === 1
                && !document.querySelector('#ring-preview-box').hidden"
        } else {
            "return document.querySelectorAll('#queue > li.ringing').length === 1"
        };
        doctor.wait_for("the request to ring", ringing).await;
        answer_first(&doctor).await;
        let d = doctor
            .wait_for(
                "the first remote frame (clinician)",
                "const m = window.miulink.marks; return m.firstRemoteFrame && m;",
            )
            .await;
        let s = nurse
            .wait_for(
                "the first remote frame (station)",
                "const m = window.miulink.marks; return m.firstRemoteFrame && m;",
            )
            .await;
        let dtrace = doctor.eval("return window.miulink.call.trace").await;
        let click = num(&d, "acceptClick");
        let total = num(&d, "firstRemoteFrame").max(num(&s, "firstRemoteFrame")) - click;
        let ice = traced(&dtrace, "ice-connected") - click;
        println!(
            "{:>4} {:>9.0} {:>11.0} {:>10.0} {:>10.0} {:>11.0} {:>11.0}",
            i + 1,
            total,
            num(&d, "callStart") - click,
            traced(&dtrace, "recv-offer") - click,
            ice,
            num(&d, "firstRemoteFrame") - click,
            num(&s, "firstRemoteFrame") - click,
        );
        totals.push(total);
        ices.push(ice);

        hang_up(&doctor).await;
        record_outcome(&doctor, "managed_locally", "").await;
        nurse
            .wait_for(
                "the outcome on the station",
                "return !!document.querySelector('#outcome-value')",
            )
            .await;
        nurse.click("#new-request").await;
    }

    let m = median(&totals);
    let fm = median(&floor_frames);
    println!();
    println!(
        "answer -> video on both sides: median {:.0} ms, max {:.0} ms (answer -> ICE connected: median {:.0} ms)",
        m,
        max(&totals),
        median(&ices)
    );
    println!(
        "floor, two peer connections in one page: offer -> both first frames median {:.0} ms (max {:.0}); offer -> ICE connected median {:.0} ms",
        fm,
        max(&floor_frames),
        median(&floor_ice)
    );
    println!(
        "ratio of medians (call / floor, to first frames): {:.1}x",
        m / fm
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}
