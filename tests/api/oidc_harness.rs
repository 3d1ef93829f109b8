//! The test OpenID provider on its own, without MIU Link (tests/oidc,
//! tests/common/oidc.rs): discovery, the authorization-code flow with PKCE
//! for a private_key_jwt client (keys inline and at an http jwks_uri) and
//! a client_secret_post client, the CIS2-shaped claims, acr, code replay,
//! unknown accounts, and RP-initiated logout.

use crate::helpers::oidc::{headless_browser, jwt_claims, oidc_dir, OidcProvider};
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REDIRECT_URI: &str = "http://127.0.0.1:5555/auth/oidc/callback";
const POST_LOGOUT_URI: &str = "http://127.0.0.1:5555/";
const SECRET: &str = "a-client-secret-long-enough-for-hs256-0123456789";
const SCOPE: &str = "openid profile nhsperson nationalrbacaccess selectedrole miulink";

fn accounts() -> Value {
    json!({
        "dr-smith": {
            "name": "Dr Jane Smith",
            "given_name": "Jane",
            "family_name": "Smith",
            "nhsid_useruid": "555000111222",
            "nhsid_nrbac_roles": [{
                "person_roleid": "1",
                "org_code": "RTX",
                "role_code": "S8000:G8000:R8000",
                "role_name": "Clinical Practitioner Access Role"
            }],
            "selected_roleid": "1",
            "miulink_role": "clinician"
        }
    })
}

fn client(id: &str, auth: Value) -> Value {
    let mut client = json!({
        "client_id": id,
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": [POST_LOGOUT_URI],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    });
    client
        .as_object_mut()
        .unwrap()
        .extend(auth.as_object().unwrap().clone());
    client
}

fn secret_client() -> Value {
    client(
        "miulink-secret",
        json!({"client_secret": SECRET, "token_endpoint_auth_method": "client_secret_post"}),
    )
}

fn random_b64(bytes: usize) -> String {
    let data: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = random_b64(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorization_url(discovery: &Value, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", REDIRECT_URI)
        .extend_pairs(extra);
    url.into()
}

/// A full authorization request: (URL, state, nonce, code_verifier).
fn code_request(
    discovery: &Value,
    client_id: &str,
    scope: &str,
) -> (String, String, String, String) {
    let (verifier, challenge) = pkce();
    let state = random_b64(12);
    let nonce = random_b64(12);
    let url = authorization_url(
        discovery,
        client_id,
        &[
            ("scope", scope),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("acr_values", "AAL2_OR_AAL3_ANY"),
        ],
    );
    (url, state, nonce, verifier)
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A new RS256 key pair from tests/oidc/make-client-key.mjs: (private
/// JWK, public JWK).
fn client_key() -> (Value, Value) {
    let out = Command::new("node")
        .arg(oidc_dir().join("make-client-key.mjs"))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Value = serde_json::from_slice(&out.stdout).expect("key JSON");
    (keys["private_jwk"].clone(), keys["public_jwk"].clone())
}

/// A private_key_jwt client assertion, signed by
/// tests/oidc/sign-assertion.mjs.
fn client_assertion(private_jwk: &Value, client_id: &str, audience: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "jti": random_b64(16), "iat": now, "exp": now + 60,
    });
    let out = Command::new("node")
        .arg(oidc_dir().join("sign-assertion.mjs"))
        .env("OIDC_PRIVATE_JWK", private_jwk.to_string())
        .env("OIDC_JWT_CLAIMS", claims.to_string())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A JWKS served over plain HTTP on loopback, as MIU Link publishes its
/// keys: its URL and how many times it was fetched.
async fn serve_jwks(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/auth/oidc/jwks.json",
        listener.local_addr().unwrap()
    );
    let fetched = Arc::new(AtomicUsize::new(0));
    let count = fetched.clone();
    let body = jwks.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                // The request, up to the end of its headers.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    request.extend_from_slice(&buf[..n]);
                    if n == 0 || request.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, fetched)
}

async fn token_request(discovery: &Value, form: &[(&str, &str)]) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(discovery["token_endpoint"].as_str().unwrap())
        .form(form)
        .send()
        .await
        .expect("POST token");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn userinfo(discovery: &Value, access_token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(access_token)
        .send()
        .await
        .expect("GET userinfo");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_test_provider_publishes_discovery_and_its_public_keys() {
    let op = OidcProvider::start(json!([secret_client()]), accounts()).await;
    let d = op.discovery().await;
    assert_eq!(d["issuer"], op.issuer, "{d:#}");
    assert_eq!(op.issuer, format!("http://127.0.0.1:{}", op.port));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["acr_values_supported"],
        json!(["AAL2_OR_AAL3_ANY", "AAL3_ANY"])
    );
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert!(d["end_session_endpoint"]
        .as_str()
        .is_some_and(|u| u.starts_with(&op.issuer)));
    for scope in [
        "openid",
        "profile",
        "nhsperson",
        "nationalrbacaccess",
        "selectedrole",
        "miulink",
    ] {
        assert!(
            d["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(scope)),
            "{scope} in {d:#}"
        );
    }
    for claim in [
        "sub",
        "name",
        "nhsid_useruid",
        "nhsid_nrbac_roles",
        "selected_roleid",
        "miulink_role",
        "acr",
    ] {
        assert!(
            d["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(claim)),
            "{claim} in {d:#}"
        );
    }
    for method in ["private_key_jwt", "client_secret_post"] {
        assert!(d["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(method)));
    }
    let jwks: Value = reqwest::get(d["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(keys[0]["kid"].is_string());
    assert!(keys[0].get("d").is_none(), "only the public key: {jwks}");
}

#[tokio::test]
async fn a_pkce_code_flow_completes_for_private_key_jwt_and_client_secret_clients() {
    let (private_jwk, public_jwk) = client_key();
    let (jwks_uri, jwks_fetched) = serve_jwks(json!({"keys": [public_jwk]})).await;
    let jwt = |id: &str, keys: Value| {
        let mut auth = json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "RS256",
        });
        auth.as_object_mut()
            .unwrap()
            .extend(keys.as_object().unwrap().clone());
        client(id, auth)
    };
    let clients = json!([
        jwt("miulink-jwt", json!({"jwks": {"keys": [public_jwk]}})),
        jwt("miulink-jwks-uri", json!({"jwks_uri": jwks_uri})),
        secret_client(),
    ]);
    let op = OidcProvider::start(clients, accounts()).await;
    let d = op.discovery().await;
    let token_endpoint = d["token_endpoint"].as_str().unwrap().to_owned();

    for client_id in ["miulink-jwt", "miulink-jwks-uri", "miulink-secret"] {
        let (url, state, nonce, verifier) = code_request(&d, client_id, SCOPE);
        let callback = op
            .sign_in_headless(&url, "dr-smith")
            .await
            .unwrap_or_else(|e| panic!("{client_id}: {e}\n{}", op.logs()));
        assert!(callback.starts_with(REDIRECT_URI), "{callback}");
        assert_eq!(query(&callback, "state").as_deref(), Some(state.as_str()));
        assert_eq!(query(&callback, "iss").as_deref(), Some(op.issuer.as_str()));
        let code = query(&callback, "code").expect("a code");

        // The client authenticates afresh for every request (an assertion
        // is single-use).
        let exchange = || {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.clone()),
                ("redirect_uri", REDIRECT_URI.to_owned()),
                ("code_verifier", verifier.clone()),
                ("client_id", client_id.to_owned()),
            ];
            if client_id == "miulink-secret" {
                form.push(("client_secret", SECRET.to_owned()));
            } else {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push((
                    "client_assertion",
                    client_assertion(&private_jwk, client_id, &token_endpoint),
                ));
            }
            form
        };
        let form = exchange();
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, tokens) = token_request(&d, &form).await;
        assert_eq!(status, 200, "{client_id}: {tokens}\n{}", op.logs());
        assert_eq!(tokens["token_type"], "Bearer");

        let id = jwt_claims(tokens["id_token"].as_str().expect("an ID token"));
        assert_eq!(id["iss"], op.issuer, "{id:#}");
        assert_eq!(id["aud"], client_id);
        assert_eq!(id["sub"], "dr-smith");
        assert_eq!(id["nonce"], nonce.as_str());
        assert_eq!(id["acr"], "AAL2_OR_AAL3_ANY");
        assert_eq!(id["name"], "Dr Jane Smith");
        assert_eq!(id["family_name"], "Smith");
        assert_eq!(id["nhsid_useruid"], "555000111222");
        assert_eq!(
            id["nhsid_nrbac_roles"],
            accounts()["dr-smith"]["nhsid_nrbac_roles"]
        );
        assert_eq!(id["selected_roleid"], "1");
        assert_eq!(id["miulink_role"], "clinician");

        let access_token = tokens["access_token"].as_str().expect("an access token");
        let (status, info) = userinfo(&d, access_token).await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["sub"], "dr-smith");
        assert_eq!(info["nhsid_useruid"], "555000111222");
        assert_eq!(info["miulink_role"], "clinician");
        assert_eq!(info["selected_roleid"], "1");

        // The same code again: refused, and what it gave is revoked.
        let again = exchange();
        let again: Vec<(&str, &str)> = again.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = token_request(&d, &again).await;
        assert_eq!(
            (status, &body["error"]),
            (400, &json!("invalid_grant")),
            "{body}"
        );
        let (status, _) = userinfo(&d, access_token).await;
        assert_eq!(status, 401, "the replay revoked the access token");
    }
    assert!(
        jwks_fetched.load(Ordering::SeqCst) >= 1,
        "the provider fetched the http jwks_uri"
    );

    // A wrong verifier, a wrong secret and an assertion signed by another
    // key are refused.
    let (url, _, _, _) = code_request(&d, "miulink-secret", SCOPE);
    let callback = op.sign_in_headless(&url, "dr-smith").await.unwrap();
    let code = query(&callback, "code").unwrap();
    let (wrong_verifier, _) = pkce();
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("client_id", "miulink-secret"),
    ];
    let mut bad_secret = base.to_vec();
    bad_secret.extend([
        ("code_verifier", wrong_verifier.as_str()),
        ("client_secret", "nope"),
    ]);
    let (status, body) = token_request(&d, &bad_secret).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
    let mut bad_verifier = base.to_vec();
    bad_verifier.extend([
        ("code_verifier", wrong_verifier.as_str()),
        ("client_secret", SECRET),
    ]);
    let (status, body) = token_request(&d, &bad_verifier).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("invalid_grant")),
        "{body}"
    );

    let (other_key, _) = client_key();
    let (url, _, _, verifier) = code_request(&d, "miulink-jwt", SCOPE);
    let callback = op.sign_in_headless(&url, "dr-smith").await.unwrap();
    let code = query(&callback, "code").unwrap();
    let forged = client_assertion(&other_key, "miulink-jwt", &token_endpoint);
    let (status, body) = token_request(
        &d,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
            ("client_id", "miulink-jwt"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", forged.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_client")),
        "{body}"
    );
}

#[tokio::test]
async fn the_test_provider_refuses_unknown_logins_and_requests_without_s256_pkce() {
    let op = OidcProvider::start(json!([secret_client()]), accounts()).await;
    let d = op.discovery().await;

    let (url, _, _, _) = code_request(&d, "miulink-secret", SCOPE);
    let err = op
        .sign_in_headless(&url, "dr-nobody")
        .await
        .expect_err("an unknown login is refused");
    assert!(err.contains("Unknown login name"), "{err}");

    let no_pkce = authorization_url(
        &d,
        "miulink-secret",
        &[("scope", "openid"), ("state", "s1")],
    );
    let back = op.sign_in_headless(&no_pkce, "dr-smith").await.unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
    assert_eq!(query(&back, "state").as_deref(), Some("s1"));

    let (verifier, _) = pkce();
    let plain = authorization_url(
        &d,
        "miulink-secret",
        &[
            ("scope", "openid"),
            ("code_challenge", verifier.as_str()),
            ("code_challenge_method", "plain"),
        ],
    );
    let back = op.sign_in_headless(&plain, "dr-smith").await.unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );

    // Only what the scopes ask for; acr only when asked for.
    let (verifier, challenge) = pkce();
    let url = authorization_url(
        &d,
        "miulink-secret",
        &[
            ("scope", "openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let callback = op.sign_in_headless(&url, "dr-smith").await.unwrap();
    let code = query(&callback, "code").unwrap();
    let (status, tokens) = token_request(
        &d,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
            ("client_id", "miulink-secret"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "dr-smith");
    for absent in ["name", "nhsid_useruid", "miulink_role", "acr", "nonce"] {
        assert!(id.get(absent).is_none(), "{absent} in {id:#}");
    }
}

#[tokio::test]
async fn rp_initiated_logout_confirms_and_returns_to_the_client() {
    let op = OidcProvider::start(json!([secret_client()]), accounts()).await;
    let d = op.discovery().await;
    let browser = headless_browser();

    // Sign in, and an ID token for the hint.
    let (url, _, _, verifier) = code_request(&d, "miulink-secret", SCOPE);
    let callback = op
        .sign_in_with(&browser, &url, "dr-smith", Some("AAL3_ANY"))
        .await
        .unwrap();
    let code = query(&callback, "code").unwrap();
    let (status, tokens) = token_request(
        &d,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
            ("client_id", "miulink-secret"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jwt_claims(&id_token)["acr"],
        "AAL3_ANY",
        "the acr typed on the login page"
    );

    // Still signed in at the provider: prompt=none gets a code at once.
    let (silent, _, _, _) = code_request(&d, "miulink-secret", SCOPE);
    let silent = format!("{silent}&prompt=none");
    let back = op
        .sign_in_with(&browser, &silent, "dr-smith", None)
        .await
        .unwrap();
    assert!(query(&back, "code").is_some(), "{back}");

    let mut end = url::Url::parse(d["end_session_endpoint"].as_str().unwrap()).unwrap();
    end.query_pairs_mut()
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", POST_LOGOUT_URI)
        .append_pair("state", "bye");
    // Even with id_token_hint and post_logout_redirect_uri, a page asks.
    let page = browser.get(end.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"id="logout-confirm""#) && html.contains(r#"id="op.logoutForm""#),
        "{html}"
    );
    let after = op.sign_out_headless(&browser, end.as_str()).await.unwrap();
    assert_eq!(after, format!("{POST_LOGOUT_URI}?state=bye"));

    // Signed out at the provider: prompt=none now needs a login.
    let (silent, _, _, _) = code_request(&d, "miulink-secret", SCOPE);
    let silent = format!("{silent}&prompt=none");
    let back = op
        .sign_in_with(&browser, &silent, "dr-smith", None)
        .await
        .unwrap();
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("login_required"),
        "{back}"
    );
}
