//! A real OpenID Connect provider for the tests: panva's `oidc-provider`
//! (npm, pinned by `tests/oidc/package-lock.json`, installed by
//! `scripts/setup.sh`) run by `tests/oidc/provider.mjs` on loopback, shaped
//! like NHS CIS2 (its scopes and claims, `acr_values`, PKCE, RP-initiated
//! logout). Its issuer is `http://127.0.0.1:PORT`; clients and accounts are
//! given at start as JSON (see `provider.mjs` for the formats and the login
//! page's selectors). In its own process group, with its stdin held open:
//! it exits when that closes, so even a test process killed with `kill -9`
//! leaves nothing behind; dropping [`OidcProvider`] kills it.
//!
//! [`OidcProvider::sign_in_headless`] plays the browser for API tests:
//! authorization request, login page, back to the client's redirect URI.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The password the headless sign-in types (the provider accepts any
/// non-empty password for a known login name).
pub const OIDC_PASSWORD: &str = "oidc-test-password";

const START_WITHIN: Duration = Duration::from_secs(20);

/// `tests/oidc`: the provider's script and its `node_modules`.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// The issuer of a provider started on `port`.
pub fn issuer_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A free loopback port, for [`OidcProvider::start_on`] when the issuer
/// must be known before the provider starts (e.g. to configure MIU Link
/// first and then give the provider MIU Link's redirect URI).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub issuer: String,
    pub port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
    logs: Arc<Mutex<String>>,
}

impl OidcProvider {
    /// The provider on a free port (node picks it: no race), with these
    /// clients (a JSON array of oidc-provider client metadata) and
    /// accounts (a JSON object: login name / `sub` -> claims).
    pub async fn start(clients: Value, accounts: Value) -> OidcProvider {
        Self::launch(0, clients, accounts, &[]).await
    }

    /// The same on a port chosen beforehand (see [`free_port`]).
    pub async fn start_on(port: u16, clients: Value, accounts: Value) -> OidcProvider {
        Self::launch(port, clients, accounts, &[]).await
    }

    /// With extra environment for `provider.mjs`: `OIDC_SCOPES` (JSON,
    /// scope -> claim names), `OIDC_LOGOUT_CONFIRM=auto`, `OIDC_DEBUG=1`.
    /// `port` 0 is any free port.
    pub async fn start_with(
        port: u16,
        clients: Value,
        accounts: Value,
        env: &[(&str, &str)],
    ) -> OidcProvider {
        Self::launch(port, clients, accounts, env).await
    }

    async fn launch(
        port: u16,
        clients: Value,
        accounts: Value,
        env: &[(&str, &str)],
    ) -> OidcProvider {
        let dir = oidc_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed in {}: run scripts/setup.sh",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("provider.mjs"))
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .env("OIDC_CLIENTS", clients.to_string())
            .env("OIDC_ACCOUNTS", accounts.to_string());
        for name in ["OIDC_SCOPES", "OIDC_LOGOUT_CONFIRM", "OIDC_DEBUG"] {
            cmd.env_remove(name);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node ({e}): run scripts/setup.sh"));

        let logs = Arc::new(Mutex::new(String::new()));
        let (ready_tx, mut ready_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let out_logs = logs.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(issuer) = line.strip_prefix("ready ") {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(issuer.trim().to_owned());
                    }
                }
                let mut logs = out_logs.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let err_logs = logs.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_logs
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let stdin = child.stdin.take();
        let mut provider = OidcProvider {
            issuer: String::new(),
            port,
            child,
            stdin,
            logs,
        };
        let started = Instant::now();
        let issuer = loop {
            match tokio::time::timeout(Duration::from_millis(100), &mut ready_rx).await {
                Ok(Ok(issuer)) => break issuer,
                Ok(Err(_)) => {
                    // stdout closed without `ready`: it has exited.
                    let status = provider.child.wait().ok();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!(
                        "the test OpenID provider exited ({status:?}) before it was ready:\n{}",
                        provider.logs()
                    );
                }
                Err(_) => {
                    if let Ok(Some(status)) = provider.child.try_wait() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        panic!(
                            "the test OpenID provider exited ({status}) before it was ready:\n{}",
                            provider.logs()
                        );
                    }
                    assert!(
                        started.elapsed() < START_WITHIN,
                        "the test OpenID provider was not ready within {START_WITHIN:?}:\n{}",
                        provider.logs()
                    );
                }
            }
        };
        provider.port = url::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.port())
            .unwrap_or_else(|| panic!("bad ready line: {issuer}"));
        provider.issuer = issuer;
        provider
    }

    /// What the provider printed so far (stdout and stderr): its errors,
    /// e.g. why a client assertion or a code was refused.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A URL on the provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Its discovery document.
    pub async fn discovery(&self) -> Value {
        let res = reqwest::get(self.url("/.well-known/openid-configuration"))
            .await
            .expect("GET discovery");
        assert_eq!(res.status(), 200, "discovery");
        res.json().await.expect("discovery JSON")
    }

    /// True when `url` is on this provider (same scheme, host and port).
    pub fn is_on_provider(&self, url: &str) -> bool {
        match (url::Url::parse(url), url::Url::parse(&self.issuer)) {
            (Ok(a), Ok(b)) => a.origin() == b.origin(),
            _ => false,
        }
    }

    /// Signs in as `login` in a fresh headless browser: follows
    /// `authorization_url` through the provider's login page (and a
    /// consent page if one comes) and returns the first redirect that
    /// leaves the provider, e.g.
    /// `http://127.0.0.1:5555/auth/oidc/callback?code=...&state=...&iss=...`
    /// (or the client's redirect URI with `error=...`). `Err` with the
    /// page's text when the provider refuses (unknown login, bad request).
    pub async fn sign_in_headless(
        &self,
        authorization_url: &str,
        login: &str,
    ) -> Result<String, String> {
        self.sign_in_with(&headless_browser(), authorization_url, login, None)
            .await
    }

    /// Like [`sign_in_headless`](Self::sign_in_headless) in `browser`
    /// (see [`headless_browser`]), which keeps the provider's session
    /// cookie: a second sign-in there skips the login page, and
    /// [`sign_out_headless`](Self::sign_out_headless) ends it. `acr`:
    /// what to submit in the login form's acr field (what the ID token's
    /// `acr` will be; `Some("")` for none); `None` leaves it to the
    /// provider (the first supported `acr_values` entry).
    pub async fn sign_in_with(
        &self,
        browser: &reqwest::Client,
        authorization_url: &str,
        login: &str,
        acr: Option<&str>,
    ) -> Result<String, String> {
        let mut url = authorization_url.to_owned();
        let mut form: Option<Vec<(String, String)>> = None;
        let mut submitted_login = false;
        for _ in 0..20 {
            let req = match form.take() {
                Some(fields) => browser.post(&url).form(&fields),
                None => browser.get(&url),
            };
            let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = res.status();
            if status.is_redirection() {
                let next = redirect_target(&url, &res)?;
                if !self.is_on_provider(&next) {
                    return Ok(next);
                }
                url = next;
                continue;
            }
            let body = res.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("{status} at {url}: {}", page_text(&body)));
            }
            if let Some(action) = form_action(&body, "login-form") {
                if submitted_login {
                    let why = login_error(&body).unwrap_or_else(|| page_text(&body));
                    return Err(format!(
                        "the provider refused the sign-in of {login}: {why}"
                    ));
                }
                submitted_login = true;
                let mut fields = vec![
                    ("login".to_owned(), login.to_owned()),
                    ("password".to_owned(), OIDC_PASSWORD.to_owned()),
                ];
                if let Some(acr) = acr {
                    fields.push(("acr".to_owned(), acr.to_owned()));
                }
                url = join(&url, &action)?;
                form = Some(fields);
                continue;
            }
            if let Some(action) = form_action(&body, "consent-form") {
                url = join(&url, &action)?;
                form = Some(Vec::new());
                continue;
            }
            return Err(format!("unexpected page at {url}: {}", page_text(&body)));
        }
        Err(format!("too many redirects from {authorization_url}"))
    }

    /// RP-initiated logout in `browser`: opens `end_session_url` (the
    /// discovery document's `end_session_endpoint` with `id_token_hint`,
    /// `post_logout_redirect_uri`, `state`...), confirms on the provider's
    /// page ("Yes, sign me out") and returns the first redirect that
    /// leaves the provider (the `post_logout_redirect_uri` with `state`),
    /// or, without one, the URL of the provider's "signed out" page.
    pub async fn sign_out_headless(
        &self,
        browser: &reqwest::Client,
        end_session_url: &str,
    ) -> Result<String, String> {
        let mut url = end_session_url.to_owned();
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..10 {
            let req = match form.take() {
                Some(fields) => browser.post(&url).form(&fields),
                None => browser.get(&url),
            };
            let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = res.status();
            if status.is_redirection() {
                let next = redirect_target(&url, &res)?;
                if !self.is_on_provider(&next) {
                    return Ok(next);
                }
                url = next;
                continue;
            }
            let body = res.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!("{status} at {url}: {}", page_text(&body)));
            }
            // The confirmation page (form#op.logoutForm, its button
            // name=logout value=yes) or, without a session, the page that
            // posts the same form by itself.
            let logout_form = match form_action(&body, "op.logoutForm") {
                Some(action) => Some(action),
                None if body.contains("name=\"xsrf\"") => first_form_action(&body),
                None => None,
            };
            if let Some(action) = logout_form {
                let mut fields = hidden_inputs(&body);
                if !fields.iter().any(|(k, _)| k == "logout") {
                    fields.push(("logout".to_owned(), "yes".to_owned()));
                }
                url = join(&url, &action)?;
                form = Some(fields);
                continue;
            }
            return Ok(url);
        }
        Err(format!("too many redirects from {end_session_url}"))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            // Its own process group: anything it started goes with it.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A client that behaves like a browser for [`OidcProvider::sign_in_with`]:
/// a cookie store, and redirects left to the caller.
pub fn headless_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The claims of a JWT (an ID token), not verified.
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

fn redirect_target(from: &str, res: &reqwest::Response) -> Result<String, String> {
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| format!("{} from {from} without a Location", res.status()))?;
    join(from, location)
}

fn join(base: &str, href: &str) -> Result<String, String> {
    url::Url::parse(base)
        .and_then(|b| b.join(href))
        .map(String::from)
        .map_err(|e| format!("bad URL {href} from {base}: {e}"))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"\s{name}="([^"]*)""#)).expect("regex");
    re.captures(tag).map(|c| unescape(&c[1]))
}

/// The action of the form with this id.
fn form_action(html: &str, id: &str) -> Option<String> {
    let re = regex::Regex::new(r"<form\b[^>]*>").expect("regex");
    for tag in re.find_iter(html) {
        if attr(tag.as_str(), "id").as_deref() == Some(id) {
            return attr(tag.as_str(), "action");
        }
    }
    None
}

fn first_form_action(html: &str) -> Option<String> {
    let re = regex::Regex::new(r"<form\b[^>]*>").expect("regex");
    re.find(html).and_then(|m| attr(m.as_str(), "action"))
}

/// Every `<input type="hidden">` of the page: (name, value).
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r"<input\b[^>]*>").expect("regex");
    re.find_iter(html)
        .map(|m| m.as_str())
        .filter(|tag| attr(tag, "type").as_deref() == Some("hidden"))
        .filter_map(|tag| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))
        .collect()
}

/// The text of the login page's `#login-error`, if it has one.
fn login_error(html: &str) -> Option<String> {
    regex::Regex::new(r#"(?s)id="login-error"[^>]*>(.*?)</"#)
        .expect("regex")
        .captures(html)
        .map(|c| page_text(&c[1]))
}

/// A page's text, for error messages: tags, styles and scripts removed.
pub fn page_text(html: &str) -> String {
    let blocks = regex::Regex::new(r"(?s)<(style|script)\b.*?</(style|script)>").expect("regex");
    let tags = regex::Regex::new(r"<[^>]*>").expect("regex");
    let without_blocks = blocks.replace_all(html, " ");
    let text = tags.replace_all(&without_blocks, " ");
    unescape(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}
