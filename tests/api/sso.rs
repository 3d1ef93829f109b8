//! Sign-in through the trust's identity provider, against a real OpenID
//! provider (panva's `oidc-provider`, `tests/common/oidc.rs`) shaped like
//! NHS CIS2: private_key_jwt and client_secret_post, PKCE, acr, CIS2's
//! claims; the browser's part played by a cookie-keeping HTTP client.

use crate::helpers::oidc::{headless_browser, OidcProvider};
use crate::helpers::*;
use miulink::oidc::{ClientAuth, OidcSettings, RoleMap};
use miulink::store::AuditFilter;
use serde_json::{json, Value};
use signalling::Role;

const CIS2_SCOPES: &str = "openid profile nhsperson nationalrbacaccess selectedrole";

/// An RSA key for private_key_jwt, as a trust's IT would make it.
fn rsa_key_pem(dir: &std::path::Path) -> String {
    let path = dir.join("miulink-oidc.key");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl genpkey");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(path).expect("key")
}

/// CIS2-shaped people at the provider.
fn accounts() -> Value {
    json!({
        "dr-smith": {
            "name": "Dr Jane Smith",
            "nhsid_useruid": "555000111222",
            "nhsid_nrbac_roles": [
                {"person_roleid": "1", "org_code": "RTX", "role_code": "S8000:G8000:R8000",
                 "role_name": "Clinical Practitioner Access Role"}
            ],
            "selected_roleid": "1",
        },
        "mgr-jones": {
            "name": "Sam Jones",
            "nhsid_useruid": "555000333444",
            "nhsid_nrbac_roles": [
                {"person_roleid": "2", "org_code": "RTX", "role_code": "S8001:G8005:R5080",
                 "role_name": "Business Manager"}
            ],
            "selected_roleid": "2",
        },
        "clerk-brown": {
            "name": "Alex Brown",
            "nhsid_useruid": "555000555666",
            "nhsid_nrbac_roles": [
                {"person_roleid": "3", "org_code": "RTX", "role_code": "S0080:G0450:R9999",
                 "role_name": "Admin and Clerical"}
            ],
            "selected_roleid": "3",
        }
    })
}

struct Sso {
    app: TestApp,
    provider: OidcProvider,
    _dir: tempfile::TempDir,
}

/// MIU Link and a provider that knows it: `private_key_jwt` (the CIS2
/// way) or `client_secret_post`.
async fn sso(private_key: bool) -> Sso {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::oidc::free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let client_auth = if private_key {
        ClientAuth::PrivateKey {
            pem: rsa_key_pem(dir.path()),
            key_id: "miulink-test-1".into(),
        }
    } else {
        ClientAuth::Secret("a-long-shared-client-secret-for-tests".into())
    };
    let mut settings = OidcSettings {
        public_url: public_url.clone(),
        issuer: "http://127.0.0.1:1".into(),
        client_id: if private_key {
            "miulink-jwt"
        } else {
            "miulink-secret"
        }
        .into(),
        client_auth: client_auth.clone(),
        scopes: CIS2_SCOPES.split(' ').map(str::to_owned).collect(),
        acr_values: vec!["AAL2_OR_AAL3_ANY".into()],
        roles: RoleMap {
            claim: Some("nhsid_nrbac_roles".into()),
            map: vec![
                RoleMap::parse_entry("R8000=clinician").unwrap(),
                RoleMap::parse_entry("R5080=manager").unwrap(),
            ],
        },
        display_name_claim: "name".into(),
        label: "Sign in with NHS Care Identity".into(),
        access_contact: "the Furness IT service desk".into(),
    };
    let mut client = json!({
        "client_id": settings.client_id,
        "redirect_uris": [format!("{public_url}/auth/oidc/callback")],
        "post_logout_redirect_uris": [format!("{public_url}/")],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    });
    match &client_auth {
        ClientAuth::PrivateKey { .. } => {
            // MIU Link's public key, as it publishes it at
            // /auth/oidc/jwks.json (registered with the provider).
            let jwks = miulink::oidc::Oidc::new(settings.clone())
                .unwrap()
                .jwks()
                .expect("a key to publish");
            client["token_endpoint_auth_method"] = json!("private_key_jwt");
            client["token_endpoint_auth_signing_alg"] = json!("RS512");
            client["jwks"] = jwks;
        }
        ClientAuth::Secret(secret) => {
            client["token_endpoint_auth_method"] = json!("client_secret_post");
            client["client_secret"] = json!(secret);
        }
    }
    let provider = OidcProvider::start(json!([client]), accounts()).await;
    settings.issuer = provider.issuer.clone();
    let app = TestApp::spawn_with(|s| {
        s.listen = format!("127.0.0.1:{port}");
        s.oidc = Some(settings);
    })
    .await;
    Sso {
        app,
        provider,
        _dir: dir,
    }
}

/// The browser's view of one sign-in: its cookie jar, and where MIU Link
/// sent it after the callback (or the refusal page).
struct Outcome {
    browser: reqwest::Client,
    status: u16,
    location: Option<String>,
    body: String,
    callback: String,
}

/// Starts a sign-in at MIU Link; the provider's authorization URL.
async fn start(sso: &Sso, browser: &reqwest::Client) -> String {
    let res = browser
        .get(sso.app.url("/auth/oidc/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "/auth/oidc/login redirects");
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(sso.provider.is_on_provider(&to), "{to}");
    let url = url::Url::parse(&to).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "PKCE: {to}");
    assert!(q.contains_key("state") && q.contains_key("nonce"), "{to}");
    assert_eq!(q["acr_values"], "AAL2_OR_AAL3_ANY");
    assert_eq!(q["scope"], CIS2_SCOPES);
    to
}

async fn finish(browser: reqwest::Client, callback: String) -> Outcome {
    let res = browser.get(&callback).send().await.unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap_or_default();
    Outcome {
        browser,
        status,
        location,
        body,
        callback,
    }
}

/// A whole sign-in as `login` at the provider.
async fn sign_in(sso: &Sso, login: &str) -> Outcome {
    let browser = headless_browser();
    let auth = start(sso, &browser).await;
    let callback = sso
        .provider
        .sign_in_headless(&auth, login)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sso.provider.logs()));
    assert!(
        callback.starts_with(&sso.app.url("/auth/oidc/callback?")),
        "{callback}"
    );
    finish(browser, callback).await
}

async fn me(o: &Outcome, sso: &Sso) -> reqwest::Response {
    o.browser.get(sso.app.url("/api/me")).send().await.unwrap()
}

async fn audit(sso: &Sso, action: &str) -> Vec<miulink::store::AuditRecord> {
    sso.app
        .store
        .audit_entries(
            &AuditFilter {
                action: Some(action.into()),
                ..AuditFilter::default()
            },
            false,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clinician_signs_in_with_private_key_jwt_and_cis2_claims() {
    let sso = sso(true).await;
    // MIU Link publishes the key the provider checks its assertion with.
    let jwks: Value = reqwest::get(sso.app.url("/auth/oidc/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "miulink-test-1");
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "never the private part");

    let o = sign_in(&sso, "dr-smith").await;
    assert_eq!(o.status, 303, "{}", o.body);
    assert_eq!(o.location.as_deref(), Some("/clinician"));
    let who: Value = me(&o, &sso).await.json().await.unwrap();
    assert_eq!(who["role"], "clinician", "{who}");
    assert_eq!(who["display_name"], "Dr Jane Smith");
    assert_eq!(who["username"], "555000111222", "from nhsid_useruid");
    let account = sso
        .app
        .store
        .user_by_username("555000111222")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.oidc_issuer.as_deref(), Some(sso.provider.issuer()));
    assert_eq!(account.oidc_subject.as_deref(), Some("dr-smith"));
    // No password sign-in for it.
    let res = reqwest::Client::new()
        .post(sso.app.url("/api/login"))
        .json(&json!({"username": "555000111222", "password": "!sso"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // A second sign-in is the same account, not a new one.
    let again = sign_in(&sso, "dr-smith").await;
    assert_eq!(again.location.as_deref(), Some("/clinician"));
    assert_eq!(
        sso.app
            .store
            .list_users()
            .await
            .unwrap()
            .iter()
            .filter(|u| u.oidc_subject.is_some())
            .count(),
        1
    );
    assert_eq!(audit(&sso, "sso_account_created").await.len(), 1);
    let logins = audit(&sso, "login_succeeded").await;
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].detail["via"], "oidc");
    assert_eq!(logins[0].client.as_deref(), Some("127.0.0.1"));

    // Signing out ends the provider's session too (RP-initiated logout).
    let out: Value = again
        .browser
        .post(sso.app.url("/api/logout"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let redirect = out["redirect"]
        .as_str()
        .expect("a redirect to the provider");
    let end_session = sso.provider.discovery().await["end_session_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(redirect.starts_with(&end_session), "{redirect}");
    let url = url::Url::parse(redirect).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["post_logout_redirect_uri"], sso.app.url("/"));
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(
        me(&again, &sso).await.status(),
        401,
        "MIU Link's session ended"
    );
    assert_eq!(audit(&sso, "logout").await.len(), 1);
}

#[tokio::test]
async fn a_manager_signs_in_with_a_client_secret_and_lands_on_the_dashboard() {
    let sso = sso(false).await;
    assert_eq!(
        reqwest::get(sso.app.url("/auth/oidc/jwks.json"))
            .await
            .unwrap()
            .status(),
        404,
        "no key to publish with a client secret"
    );
    let o = sign_in(&sso, "mgr-jones").await;
    assert_eq!(o.location.as_deref(), Some("/reports"), "{}", o.body);
    let who: Value = me(&o, &sso).await.json().await.unwrap();
    assert_eq!(who["role"], "manager");
    let options: Value = reqwest::get(sso.app.url("/api/auth/options"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options["sso"]["label"], "Sign in with NHS Care Identity");
    assert_eq!(options["local_login"], "stations");
}

#[tokio::test]
async fn an_unmapped_role_is_told_whom_to_ask_and_gets_no_session() {
    let sso = sso(true).await;
    let o = sign_in(&sso, "clerk-brown").await;
    assert_eq!(o.status, 403);
    assert!(o.body.contains("Access not granted"), "{}", o.body);
    assert!(o.body.contains("the Furness IT service desk"), "{}", o.body);
    assert_eq!(me(&o, &sso).await.status(), 401);
    assert!(sso
        .app
        .store
        .list_users()
        .await
        .unwrap()
        .iter()
        .all(|u| u.oidc_subject.is_none()));
    let refused = audit(&sso, "sso_refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].detail["subject"], "clerk-brown");
}

#[tokio::test]
async fn replayed_codes_tampered_states_and_other_browsers_are_refused() {
    let sso = sso(true).await;
    // A callback used twice: the state is gone after the first.
    let first = sign_in(&sso, "dr-smith").await;
    assert_eq!(first.location.as_deref(), Some("/clinician"));
    let replay = finish(headless_browser(), first.callback.clone()).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(replay.body.contains("used already"), "{}", replay.body);

    // The same code with a fresh, genuine state: the provider refuses a
    // code it has already exchanged.
    let browser = headless_browser();
    let auth = start(&sso, &browser).await;
    let fresh = sso
        .provider
        .sign_in_headless(&auth, "dr-smith")
        .await
        .unwrap();
    let fresh_state = url::Url::parse(&fresh)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let old_code = url::Url::parse(&first.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mut replayed = url::Url::parse(&sso.app.url("/auth/oidc/callback")).unwrap();
    replayed
        .query_pairs_mut()
        .append_pair("code", &old_code)
        .append_pair("state", &fresh_state);
    let o = finish(browser, replayed.to_string()).await;
    assert_eq!(o.status, 400, "{}", o.body);
    assert_eq!(me(&o, &sso).await.status(), 401);

    // A state changed on the way back.
    let browser = headless_browser();
    let auth = start(&sso, &browser).await;
    let callback = sso
        .provider
        .sign_in_headless(&auth, "dr-smith")
        .await
        .unwrap();
    let tampered = callback.replace("state=", "state=x");
    let o = finish(browser, tampered).await;
    assert_eq!(o.status, 400, "{}", o.body);
    assert_eq!(me(&o, &sso).await.status(), 401);

    // A callback finished in another browser than the one that started.
    let browser = headless_browser();
    let auth = start(&sso, &browser).await;
    let callback = sso
        .provider
        .sign_in_headless(&auth, "dr-smith")
        .await
        .unwrap();
    let o = finish(headless_browser(), callback).await;
    assert_eq!(o.status, 400, "{}", o.body);
    assert!(o.body.contains("another browser"), "{}", o.body);

    // The provider's own refusal comes back as an error, not a session.
    let o = finish(
        headless_browser(),
        sso.app
            .url("/auth/oidc/callback?error=access_denied&error_description=cancelled"),
    )
    .await;
    assert_eq!(o.status, 400);
    assert!(o.body.contains("access_denied"), "{}", o.body);
    assert!(audit(&sso, "sso_refused").await.len() >= 5);
    let created = sso.app.store.list_users().await.unwrap();
    assert_eq!(
        created.iter().filter(|u| u.oidc_subject.is_some()).count(),
        1
    );
}

#[tokio::test]
async fn with_a_provider_only_stations_and_break_glass_admins_use_passwords() {
    let sso = sso(false).await;
    let app = &sso.app;
    app.add_user("room1", "Millom Room 1", Role::Station, Some("Millom"))
        .await;
    app.add_user("dr-local", "Dr Local", Role::Clinician, None)
        .await;
    let login = |u: &'static str| {
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/login"))
                .json(&json!({"username": u, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(login("room1").await.status(), 200);
    let refused = login("dr-local").await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Sign in with NHS Care Identity"),
        "{body}"
    );
    // The break-glass admin, made at the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miulink"))
        .args(["--database", &app.database_url])
        .args([
            "user",
            "add",
            "--username",
            "it-breakglass",
            "--display-name",
            "IT break-glass",
            "--role",
            "admin",
            "--break-glass",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{PASSWORD}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(login("it-breakglass").await.status(), 200);
    let entries = audit(&sso, "login_succeeded").await;
    let glass = entries
        .iter()
        .find(|e| e.target.as_deref() == Some("it-breakglass"))
        .unwrap();
    assert_eq!(
        glass.detail["break_glass"], true,
        "a break-glass use stands out"
    );
}
