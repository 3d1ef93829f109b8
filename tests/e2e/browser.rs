//! A small WebDriver client for headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/setup.sh`).
//!
//! Each [`Browser`] is its own `chromedriver` on a free port, driving its own
//! Chromium with a fresh profile, a fake camera and a fake microphone. On
//! drop the session is ended (Chromium quits) and the driver's whole process
//! group is killed, so nothing outlives a test, even one that panicked.
//!
//! Every wait polls a condition in the page until a generous deadline: a
//! loaded 2-core CI machine can be slow, and a fixed sleep is never a test.

#![allow(dead_code)]

use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one thing may take before a test gives up.
pub const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);
/// The W3C WebDriver key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Flags for a headless Chromium that is a real WebRTC peer on loopback
/// and touches nothing outside this machine.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-crash-reporter",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
];

pub struct Browser {
    pub name: String,
    http: reqwest::Client,
    base: String,
    port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Where screenshots go: `artifacts/screenshots/` (gitignored).
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join("screenshots")
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

impl Browser {
    /// Starts chromedriver and a Chromium window of this size, with one
    /// fake camera and a fake microphone.
    pub async fn launch(name: &str, width: u32, height: u32) -> Browser {
        Self::launch_with_cameras(name, width, height, 1).await
    }

    /// As [`Browser::launch`], with this many fake cameras (0: none).
    pub async fn launch_with_cameras(name: &str, width: u32, height: u32, cameras: u32) -> Browser {
        Self::launch_with(name, width, height, cameras, &[]).await
    }

    /// As [`Browser::launch`], with these Chromium flags added (e.g. a host
    /// name mapped to this machine and a certificate it should trust).
    pub async fn launch_with_flags(
        name: &str,
        width: u32,
        height: u32,
        flags: &[String],
    ) -> Browser {
        Self::launch_with(name, width, height, 1, flags).await
    }

    async fn launch_with(
        name: &str,
        width: u32,
        height: u32,
        cameras: u32,
        flags: &[String],
    ) -> Browser {
        let chromedriver = find_on_path("chromedriver").unwrap_or_else(|| {
            panic!("chromedriver is not installed: run scripts/setup.sh (installs chromium and chromium-driver)")
        });
        let chromium = find_on_path("chromium").unwrap_or_else(|| {
            panic!("chromium is not installed: run scripts/setup.sh (installs chromium and chromium-driver)")
        });
        let port = free_port();
        let profile = tempfile::tempdir().expect("a temporary Chromium profile");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that Chromium can be killed with it.
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            name: name.to_owned(),
            http,
            base,
            port,
            session: String::new(),
            driver,
            _profile: profile,
        };
        browser.wait_for_driver().await;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(if cameras == 1 {
            "--use-fake-device-for-media-stream".to_owned()
        } else {
            format!("--use-fake-device-for-media-stream=device-count={cameras}")
        });
        args.push(format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        ));
        args.push(format!("--window-size={width},{height}"));
        args.extend(flags.iter().cloned());
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                    "timeouts": {"script": 120_000, "pageLoad": 120_000},
                }
            }
        });
        let created = browser
            .raw("POST", "/session", Some(caps))
            .await
            .unwrap_or_else(|e| panic!("{name}: Chromium did not start: {e}"));
        browser.session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.set_viewport(width, height).await;
        browser
    }

    /// Makes the page area (not the window) this size, as on the device.
    /// A headless window narrower than 500 px reports an outer width of
    /// 500, so the window's extra width is measured again after each try.
    async fn set_viewport(&self, width: u32, height: u32) {
        for _ in 0..3 {
            let sizes = self
                .eval("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight, window.innerWidth, window.innerHeight]")
                .await;
            let at = |i: usize| sizes[i].as_i64().unwrap_or(0);
            if at(2) == i64::from(width) && at(3) == i64::from(height) {
                return;
            }
            // The window's extra as measured now (overstated after a
            // clamped narrow window; the next try corrects it).
            let want = |i: usize, target: u32| i64::from(target) + at(i).max(0);
            self.cmd(
                "POST",
                "/window/rect",
                Some(json!({"width": want(0, width), "height": want(1, height)})),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: could not size the window: {e}", self.name));
        }
    }

    async fn wait_for_driver(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = self.http.get(format!("{}/status", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: chromedriver did not start listening on port {}",
                self.name,
                self.port
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// One WebDriver command; `Err` carries WebDriver's error and message.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("chromedriver unreachable: {e}"))?;
        let status = response.status();
        let v: Value = response
            .json()
            .await
            .map_err(|e| format!("chromedriver sent no JSON ({status}): {e}"))?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!(
                "{}: {}",
                value["error"].as_str().unwrap_or("error"),
                value["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            ))
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("{}: could not open {url}: {e}", self.name));
    }

    pub async fn refresh(&self) {
        self.cmd("POST", "/refresh", None)
            .await
            .unwrap_or_else(|e| panic!("{}: could not reload: {e}", self.name));
    }

    /// Runs a script (`return ...`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.try_eval(script)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    pub async fn try_eval(&self, script: &str) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs a script that finishes by calling its last argument.
    pub async fn eval_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: async script failed: {e}\n{script}", self.name))
    }

    /// Polls `script` until it returns something truthy, and returns that.
    /// On timeout: a screenshot and the browser's console, then a panic.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match self.try_eval(script).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => v.to_string(),
                // The page may be between two documents: try again.
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                self.fail(&format!("waited {WAIT:?} for {what}; last result: {last}"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a screenshot and the console, then panics with `message`.
    pub async fn fail(&self, message: &str) -> ! {
        let shot = format!("FAILED-{}", self.name);
        self.screenshot(&shot).await;
        let console = self.console().await.join("\n  ");
        // The live call's own account of itself, if there is one.
        let call = self
            .try_eval(
                "const c = window.miulink && window.miulink.call;
                 return c ? JSON.stringify({link: c.link, recovery: c.recovery && {attempt: c.recovery.attempt, why: c.recovery.why},
                   recoveries: c.recoveries, negotiation: c.negotiation, quality: c.quality, trace: c.trace.slice(-50)}) : null;",
            )
            .await
            .unwrap_or_default();
        panic!(
            "{}: {message}\n(screenshot: artifacts/screenshots/{shot}.png)\nbrowser console:\n  {console}\ncall: {call}",
            self.name
        );
    }

    async fn element(&self, css: &str) -> Result<String, String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        v[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element reference for {css}: {v}"))
    }

    /// Clicks the element, waiting until it exists and can be clicked.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let attempt = async {
                let id = self.element(css).await?;
                self.cmd("POST", &format!("/element/{id}/click"), None)
                    .await
            };
            match attempt.await {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => {
                    self.fail(&format!("could not click {css}: {e}")).await
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Types into the element, as a user would (key by key).
    pub async fn type_text(&self, css: &str, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let attempt = async {
                let id = self.element(css).await?;
                self.cmd(
                    "POST",
                    &format!("/element/{id}/value"),
                    Some(json!({ "text": text })),
                )
                .await
            };
            match attempt.await {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => {
                    self.fail(&format!("could not type into {css}: {e}")).await
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent.trim() : null;",
            json!(css)
        );
        self.eval(&script).await.as_str().unwrap_or("").to_owned()
    }

    /// Waits until the element `css` is shown (not `hidden`) with some text,
    /// and returns that text.
    pub async fn shown_text(&self, what: &str, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return !!e && !e.hidden && e.textContent;",
            json!(css)
        );
        let text = self.wait_for(what, &script).await;
        text.as_str().unwrap_or("").to_owned()
    }

    /// Lets the current page's site show desktop notifications (a user's
    /// "Allow"): open a page of the site first.
    pub async fn grant_notifications(&self) {
        self.cmd(
            "POST",
            "/permissions",
            Some(json!({"descriptor": {"name": "notifications"}, "state": "granted"})),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: could not allow notifications: {e}", self.name));
    }

    /// Blocks desktop notifications for the current page's site, as a
    /// user's "Block" or a trust's policy does: open a page of the site first.
    pub async fn deny_notifications(&self) {
        self.cmd(
            "POST",
            "/permissions",
            Some(json!({"descriptor": {"name": "notifications"}, "state": "denied"})),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: could not block notifications: {e}", self.name));
    }

    /// Resizes the page area (a phone, a tablet) without a new browser.
    pub async fn resize(&self, width: u32, height: u32) {
        self.set_viewport(width, height).await;
    }

    /// Saves a screenshot at each of these page sizes, then goes back to
    /// the first: `NAME-WIDTHxHEIGHT.png`.
    pub async fn screenshots_at(&self, name: &str, sizes: &[(u32, u32)]) {
        for &(w, h) in sizes {
            self.resize(w, h).await;
            // What has focus (the button just pressed) in sight, clear of a
            // sticky footer; then a frame for the layout to settle.
            let _ = self
                .eval_async(
                    "const done = arguments[arguments.length - 1];
                     const a = document.activeElement;
                     if (a && a !== document.body && a.id !== 'main') {
                       const r = a.getBoundingClientRect();
                       if (r.top < 0 || r.bottom > window.innerHeight - 120) a.scrollIntoView({ block: 'center' });
                     }
                     requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                )
                .await;
            self.screenshot(&format!("{name}-{w}x{h}")).await;
        }
        if let Some(&(w, h)) = sizes.first() {
            self.resize(w, h).await;
        }
    }

    /// Runs axe-core (the npm package in tests/e2e, installed by
    /// scripts/setup.sh) on the page as it is now; its violations, each as
    /// `{id, impact, help, nodes}`.
    pub async fn axe(&self) -> Vec<Value> {
        let source = axe_source();
        // WebDriver scripts are not subject to the page's CSP, a <script>
        // element would be.
        let loaded = self
            .try_eval(&format!(
                "{source}\n;return typeof window.axe === 'object';"
            ))
            .await
            .unwrap_or_else(|e| panic!("{}: could not load axe-core: {e}", self.name));
        assert_eq!(
            loaded,
            Value::Bool(true),
            "{}: axe-core did not load",
            self.name
        );
        let result = self
            .eval_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ')),
                   }))))
                   .catch(e => done([{ id: 'axe-failed', impact: 'critical', help: String(e), nodes: [] }]));",
            )
            .await;
        result.as_array().cloned().unwrap_or_default()
    }

    /// Fails (with a screenshot) unless axe-core finds no violation at all
    /// on the page in this state; prints the result for the notes.
    pub async fn assert_accessible(&self, state: &str) {
        let violations = self.axe().await;
        eprintln!(
            "axe: {} / {state}: {} violations",
            self.name,
            violations.len()
        );
        if !violations.is_empty() {
            let list: Vec<String> = violations
                .iter()
                .map(|v| {
                    format!(
                        "{} ({}): {} at {}",
                        v["id"], v["impact"], v["help"], v["nodes"]
                    )
                })
                .collect();
            self.fail(&format!(
                "axe-core violations in {state}:\n{}",
                list.join("\n")
            ))
            .await;
        }
    }

    /// Saves `artifacts/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        let Ok(v) = self.cmd("GET", "/screenshot", None).await else {
            return;
        };
        let Some(data) = v.as_str() else { return };
        let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return;
        };
        let dir = screenshot_dir();
        if std::fs::create_dir_all(&dir).is_ok() {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }

    /// The browser console since the last call (for failure reports).
    pub async fn console(&self) -> Vec<String> {
        match self
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await
        {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["level"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect(),
            Ok(other) => vec![other.to_string()],
            Err(e) => vec![format!("(console unavailable: {e})")],
        }
    }

    /// Video frames decoded so far on the page's live call
    /// (`window.miulink.pc`), from `getStats()`.
    pub async fn frames_decoded(&self) -> u64 {
        let v = self
            .eval_async(
                "const done = arguments[arguments.length - 1];
                 const pc = window.miulink && window.miulink.pc;
                 if (!pc) { done(0); return; }
                 pc.getStats().then((report) => {
                   let frames = 0;
                   report.forEach((s) => {
                     if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
                   });
                   done(frames);
                 }).catch(() => done(0));",
            )
            .await;
        v.as_u64().unwrap_or(0)
    }

    /// Waits until the live call decodes remote video; returns the frame count.
    pub async fn wait_for_remote_video(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let frames = self.frames_decoded().await;
            if frames > 0 {
                return frames;
            }
            if Instant::now() >= deadline {
                self.fail("no remote video frames decoded (getStats framesDecoded stayed 0)")
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Ends the WebDriver session without an async runtime (for `Drop`).
fn delete_session_blocking(port: u16, session: &str) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // Read the answer to its end by its Content-Length: chromedriver
        // keeps the connection open whatever `Connection: close` says, so
        // reading until it closes would sit out the whole read timeout
        // (15 s for every browser of every test).
        let mut reply = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
            if http_reply_complete(&reply) {
                break;
            }
        }
    }
}

/// Whether `reply` holds a whole HTTP response (headers, and as many body
/// bytes as its Content-Length says).
fn http_reply_complete(reply: &[u8]) -> bool {
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    reply.len() >= end + 4 + length
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            delete_session_blocking(self.port, &self.session);
        }
        // Whatever is left of chromedriver and Chromium: the whole group.
        if let Ok(pgid) = i32::try_from(self.driver.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group
            // that this test created for chromedriver (process_group(0)).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// axe-core's browser bundle, read once.
fn axe_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/e2e/node_modules/axe-core/axe.min.js");
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}): run scripts/setup.sh, which installs axe-core with npm ci",
                path.display()
            )
        })
    })
}
