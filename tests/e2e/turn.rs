//! Calls through a TURN relay (a real coturn, Debian's package, on
//! loopback), as on a hospital network that allows nothing else; and what
//! happens when the relay breaks mid-call.
//!
//! With `relay_only` the browsers may use nothing but the relay
//! (`iceTransportPolicy: "relay"`), so killing coturn really cuts the
//! media path. That is used to prove recovery, twice:
//! 1. coturn comes back quickly: an ICE restart on the same peer
//!    connection (new ICE credentials, new relay allocation) recovers it;
//! 2. coturn stays away longer than the ICE restart timeout: a whole new
//!    negotiation (a new peer connection) recovers it.
//!
//! Then the station's camera is throttled to two frames a second (what a
//! congested uplink does to the picture): the clinician's page rates the
//! link poor from its real getStats figures and offers audio only, which
//! turns video off on both sides. Both quality summaries in the log say
//! "relayed".

use crate::browser::Browser;
use crate::flows::*;
use crate::server::Server;
use signalling::Role;
use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "e2e-turn-shared-secret-32-chars-long";

/// A coturn on 127.0.0.1, with TURN REST authentication (`use-auth-secret`).
pub struct Coturn {
    child: Option<Child>,
    pub port: u16,
    min_port: u16,
    max_port: u16,
    dir: tempfile::TempDir,
}

impl Coturn {
    pub fn start() -> Coturn {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free UDP port");
        // Relay ports: a block of 200 away from the listening port, spread
        // by process id so that parallel runs rarely meet.
        let min_port = 50_000 + (std::process::id() % 70) as u16 * 200;
        let mut turn = Coturn {
            child: None,
            port,
            min_port,
            max_port: min_port + 199,
            dir: tempfile::tempdir().expect("a temporary directory for coturn"),
        };
        turn.restart();
        turn
    }

    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// Starts coturn (again, on the same ports) and waits until it answers
    /// a STUN binding request.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "coturn is already running");
        let turnserver = ["/usr/bin/turnserver", "/usr/sbin/turnserver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "coturn is not installed: run scripts/setup.sh (installs the coturn package)"
                )
            });
        let dir = self.dir.path();
        let child = Command::new(turnserver)
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                &format!("--listening-port={}", self.port),
                &format!("--min-port={}", self.min_port),
                &format!("--max-port={}", self.max_port),
                "--use-auth-secret",
                &format!("--static-auth-secret={SECRET}"),
                "--realm=miulink.test",
                // Loopback peers are refused by default (and must be in
                // production); this test's peers are all on loopback.
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-stdout-log",
                &format!("--log-file={}", dir.join("turn.log").display()),
                &format!("--pidfile={}", dir.join("turn.pid").display()),
                &format!("--userdb={}", dir.join("turndb").display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("turnserver starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_stun() {
            assert!(
                Instant::now() < deadline,
                "coturn did not answer on 127.0.0.1:{} (log in {})",
                self.port,
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One STUN binding request (RFC 5389) and its success response.
    fn answers_stun(&self) -> bool {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"miulink-e2e!");
        if socket.send_to(&request, ("127.0.0.1", self.port)).is_err() {
            return false;
        }
        let mut reply = [0u8; 512];
        matches!(socket.recv_from(&mut reply), Ok((n, _)) if n >= 20 && reply[0] == 0x01 && reply[1] == 0x01 && reply[8..20] == request[8..20])
    }

    /// SIGKILL: every allocation and relayed path is gone at once.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the process group this test created
                // for coturn (process_group(0) above).
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        self.kill_9();
    }
}

async fn call_state(b: &Browser) -> serde_json::Value {
    b.eval(
        "const c = window.miulink.call;
         return {negotiation: c.negotiation, negotiations: c.negotiations, iceRestarts: c.iceRestarts,
                 link: c.link, recoveries: c.recoveries, trace: c.trace.slice(-40)};",
    )
    .await
}

async fn wait_for_relay(b: &Browser) {
    let deadline = Instant::now() + crate::browser::WAIT;
    loop {
        let pair = selected_pair(b).await;
        if pair["local"] == "relay" && pair["remote"] == "relay" {
            return;
        }
        if Instant::now() >= deadline {
            b.fail(&format!(
                "the selected candidate pair is not relay to relay: {pair}"
            ))
            .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_call_recovers_from_a_broken_relay_and_offers_audio_only() {
    let _one = crate::one_at_a_time().await;
    let mut coturn = Coturn::start();
    let server = Server::start(|s| {
        s.turn_urls = vec![coturn.url()];
        s.turn_secret = Some(SECRET.into());
        s.relay_only = true;
    })
    .await;
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
    let nurse = Browser::launch("station-turn", 1280, 800).await;
    let doctor = Browser::launch("clinician-turn", 1280, 800).await;
    sign_in(&doctor, &server, "dr-patel", "/clinician").await;
    sign_in(&nurse, &server, "millom-room1", "/station").await;
    assert_eq!(
        doctor
            .eval("return window.miulink.account.settings.ice_transport_policy")
            .await,
        "relay"
    );

    video_call(&nurse, &doctor, "urgent", "Possible fracture").await;
    // Relay to relay on both sides: nothing went peer to peer.
    wait_for_relay(&nurse).await;
    wait_for_relay(&doctor).await;
    for side in [&nurse, &doctor] {
        assert_eq!(
            side.eval("return window.miulink.pc.getConfiguration().iceTransportPolicy")
                .await,
            "relay"
        );
    }

    // 1. The relay dies and comes straight back: ICE restart.
    let negotiation = nurse.eval("return window.miulink.call.negotiation").await;
    let ufrags = [
        selected_pair(&nurse).await["ufrag"].clone(),
        selected_pair(&doctor).await["ufrag"].clone(),
    ];
    coturn.kill_9();
    let cut = Instant::now();
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the reconnecting overlay",
            "return window.miulink.call.link === 'reconnecting'
                && !document.querySelector('.remote-overlay').hidden
                && document.querySelector('.call-status .label').textContent === 'Reconnecting\u{2026}'",
        )
        .await;
    }
    let noticed = cut.elapsed();
    doctor.screenshot("25-clinician-reconnecting").await;
    coturn.restart();
    let back = Instant::now();
    // (The station drives the recovery; the clinician's side may never
    // have reached the point of starting its own.)
    nurse
        .wait_for(
            "the station to recover the call",
            "const c = window.miulink.call; return c.recoveries.length >= 1 && !c.recovery;",
        )
        .await;
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the call to show as recovered",
            "const c = window.miulink.call;
             return c.link === 'ok' && !c.recovery
                 && document.querySelector('.remote-overlay').hidden
                 && document.querySelector('.call-status .label').textContent === 'Connected';",
        )
        .await;
    }
    let recovered_after = back.elapsed();
    let station = call_state(&nurse).await;
    eprintln!(
        "measured: relay cut shown as reconnecting on both pages after {} ms; ICE restart: \
         media back {} ms after coturn was up again; station recovery {}",
        noticed.as_millis(),
        recovered_after.as_millis(),
        station["recoveries"][0]
    );
    assert_eq!(
        station["recoveries"][0]["how"], "ice-restart",
        "the first recovery is an ICE restart: {station}"
    );
    assert_eq!(
        station["negotiation"], negotiation,
        "same negotiation: {station}"
    );
    assert_eq!(station["negotiations"], 1, "no new negotiation: {station}");
    for (side, before) in [&nurse, &doctor].into_iter().zip(ufrags) {
        // A new ICE generation on the same peer connection, still relayed.
        wait_for_relay(side).await;
        let pair = selected_pair(side).await;
        assert_ne!(pair["ufrag"], before, "{}: new ICE credentials", side.name);
        let frames = side.frames_decoded().await;
        wait_for_more_frames(side, frames, 20).await;
    }

    // 2. The relay stays away past the ICE restart timeout: a new
    //    negotiation, once it is back.
    coturn.kill_9();
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the reconnecting overlay again",
            "return window.miulink.call.link === 'reconnecting'",
        )
        .await;
    }
    nurse
        .wait_for(
            "the ICE restart to give up and a new negotiation to start",
            "const r = window.miulink.call.recovery; return r && r.attempt >= 2;",
        )
        .await;
    doctor
        .wait_for(
            "the overlay to say it is trying a new connection",
            "return /attempt [2-9]/.test(document.querySelector('.overlay-attempt').textContent)
                || /Finding/.test(document.querySelector('.overlay-attempt').textContent)",
        )
        .await;
    coturn.restart();
    let back = Instant::now();
    nurse
        .wait_for(
            "the station to recover the call again",
            "const c = window.miulink.call; return c.recoveries.length >= 2 && !c.recovery;",
        )
        .await;
    for side in [&nurse, &doctor] {
        side.wait_for(
            "the call to recover by a new negotiation",
            "const c = window.miulink.call;
             return c.link === 'ok' && !c.recovery && document.querySelector('.remote-overlay').hidden;",
        )
        .await;
        wait_for_relay(side).await;
        // A new peer connection: its frame count starts again.
        wait_for_more_frames(side, 0, 20).await;
    }
    let station = call_state(&nurse).await;
    eprintln!(
        "measured: renegotiation: media back {} ms after coturn was up again; station recovery {}",
        back.elapsed().as_millis(),
        station["recoveries"][1]
    );
    assert_eq!(
        station["recoveries"][1]["how"], "renegotiation",
        "{station}"
    );
    assert_ne!(
        station["negotiation"], negotiation,
        "a new negotiation: {station}"
    );
    assert_eq!(
        doctor.eval("return window.miulink.call.negotiation").await,
        station["negotiation"],
        "both sides on the new negotiation"
    );

    // 3. A poor picture: the station's camera is throttled to two frames a
    //    second. The clinician's page sees it in its own figures.
    let throttled = nurse
        .eval_async(
            "const done = arguments[arguments.length - 1];
             const sender = window.miulink.call.videoTransceiver.sender;
             const p = sender.getParameters();
             p.encodings = p.encodings && p.encodings.length ? p.encodings : [{}];
             p.encodings[0].maxFramerate = 2;
             p.encodings[0].maxBitrate = 60000;
             sender.setParameters(p).then(() => done(true), (e) => done(String(e)));",
        )
        .await;
    assert_eq!(throttled, true, "the station's camera throttled");
    doctor
        .wait_for(
            "the poor-link offer of audio only",
            "const q = document.querySelector('.quality');
             return !document.querySelector('.quality-offer').hidden
                 && q.dataset.level === 'poor' && q.textContent.includes('Poor connection');",
        )
        .await;
    doctor.screenshot("26-clinician-poor-link-offer").await;
    doctor
        .click(".quality-offer [data-action=audio-only]")
        .await;
    nurse
        .wait_for(
            "the station to follow into audio only",
            "return !document.querySelector('.audio-only-panel').hidden
                && document.querySelector('.audio-only-text').textContent.includes('Dr Asha Patel switched the call to audio only')",
        )
        .await;
    for side in [&nurse, &doctor] {
        side.wait_for(
            "no video sent",
            "const c = window.miulink.call;
             return c.audioOnly && c.videoTransceiver.sender.track === null
                 && document.querySelector('.control-audio-only').getAttribute('aria-pressed') === 'true';",
        )
        .await;
    }
    nurse.screenshot("27-station-audio-only").await;
    // Either side may bring the video back (for both), or go audio only
    // again from the toolbar.
    nurse
        .click(".audio-only-panel [data-action=video-back]")
        .await;
    for side in [&nurse, &doctor] {
        side.wait_for(
            "video back on both sides",
            "const c = window.miulink.call;
             return !c.audioOnly && c.videoTransceiver.sender.track !== null
                 && document.querySelector('.audio-only-panel').hidden;",
        )
        .await;
    }
    let frames = doctor.frames_decoded().await;
    wait_for_more_frames(&doctor, frames, 2).await;
    doctor.click(".call-controls .control-audio-only").await;
    nurse
        .wait_for(
            "audio only again",
            "return window.miulink.call.audioOnly && !document.querySelector('.audio-only-panel').hidden",
        )
        .await;

    hang_up(&doctor).await;
    record_outcome(&doctor, "referred_elsewhere", "").await;
    on_screen(&nurse, "after").await;

    let log = server.consults().await;
    let c = &log["consults"][0];
    for side in ["station_quality", "clinician_quality"] {
        assert_eq!(c[side]["relayed"], true, "{side}: {c}");
    }
    // The clinician's last summary was sent as it hung up, in audio only.
    assert_eq!(c["clinician_quality"]["audio_only"], true, "{c}");
}
