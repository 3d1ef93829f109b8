//! Single sign-on in a real browser: headless Chromium signs in through a
//! real OpenID provider's own login page (panva's `oidc-provider`, CIS2
//! shaped, `tests/common/oidc.rs`) and lands on the role's screen; a role
//! that maps to nothing is told whom to ask; signing out goes through the
//! provider's sign-out and back.

use crate::browser::Browser;
use crate::common::oidc::{free_port, OidcProvider};
use crate::flows::on_screen;
use crate::server::Server;
use miulink::oidc::{ClientAuth, OidcSettings, RoleMap};
use serde_json::json;

const SECRET: &str = "a-long-shared-client-secret-for-tests";

async fn start() -> (Server, OidcProvider) {
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let client = json!({
        "client_id": "miulink",
        "client_secret": SECRET,
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": [format!("{public_url}/auth/oidc/callback")],
        "post_logout_redirect_uris": [format!("{public_url}/")],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    });
    let role = |code: &str, name: &str| json!([{"person_roleid": "1", "org_code": "RTX", "role_code": code, "role_name": name}]);
    let accounts = json!({
        "dr-smith": {"name": "Dr Jane Smith", "nhsid_useruid": "555000111222",
                     "nhsid_nrbac_roles": role("S8000:G8000:R8000", "Clinical Practitioner Access Role")},
        "mgr-jones": {"name": "Sam Jones", "nhsid_useruid": "555000333444",
                      "nhsid_nrbac_roles": role("S8001:G8005:R5080", "Business Manager")},
        "clerk-brown": {"name": "Alex Brown", "nhsid_useruid": "555000555666",
                        "nhsid_nrbac_roles": role("S0080:G0450:R9999", "Admin and Clerical")},
    });
    let provider = OidcProvider::start(json!([client]), accounts).await;
    let settings = OidcSettings {
        public_url,
        issuer: provider.issuer.clone(),
        client_id: "miulink".into(),
        client_auth: ClientAuth::Secret(SECRET.into()),
        scopes: "openid profile nhsperson nationalrbacaccess selectedrole"
            .split(' ')
            .map(str::to_owned)
            .collect(),
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
    let server = Server::start(|s| {
        s.listen = format!("127.0.0.1:{port}");
        s.oidc = Some(settings);
    })
    .await;
    (server, provider)
}

/// From MIU Link's sign-in page through the provider's login page.
async fn sign_in_at_provider(b: &Browser, server: &Server, login: &str) {
    b.goto(&server.url("/")).await;
    b.wait_for(
        "the single sign-on button",
        "return !document.querySelector('#sso').hidden",
    )
    .await;
    assert_eq!(
        b.text("#sso-button").await.trim(),
        "Sign in with NHS Care Identity"
    );
    b.click("#sso-button").await;
    b.wait_for(
        "the provider's login page",
        "return !!document.querySelector('#login-form #login')",
    )
    .await;
    b.type_text("#login", login).await;
    b.type_text("#password", "any-password-at-the-test-provider")
        .await;
    b.click("#login-submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinicians_and_managers_sign_in_through_the_identity_provider() {
    let _one = crate::one_at_a_time().await;
    let (server, provider) = start().await;
    let b = Browser::launch("sso", 1280, 800).await;

    // The sign-in page offers the provider first; the password form stays
    // for station devices.
    b.goto(&server.url("/")).await;
    b.wait_for(
        "the single sign-on button",
        "return !document.querySelector('#sso').hidden",
    )
    .await;
    b.screenshot("sso-01-sign-in-page").await;
    b.assert_accessible("the sign-in page with single sign-on")
        .await;

    // A clinician: the provider's page, then the clinician's screen with
    // the signalling socket open, named as the provider says.
    sign_in_at_provider(&b, &server, "dr-smith").await;
    b.wait_for(
        "the clinician screen after single sign-on",
        "return location.pathname === '/clinician' && !!window.miulink
            && window.miulink.socket.state === 'open'",
    )
    .await;
    on_screen(&b, "queue").await;
    let shown = b
        .eval("return document.body.innerText.includes('Dr Jane Smith')")
        .await;
    assert_eq!(shown, true, "the provider's name for them is shown");
    b.screenshot("sso-02-clinician").await;

    // Signing out: MIU Link's session ends, then the provider's (its
    // confirmation page), and the browser comes back to MIU Link.
    b.click("#sign-out").await;
    b.wait_for(
        "the provider's sign-out confirmation",
        "return !!document.querySelector('#logout-confirm')",
    )
    .await;
    let at = b.eval("return location.href").await;
    assert!(
        provider.is_on_provider(at.as_str().unwrap_or_default()),
        "{at}"
    );
    b.click("#logout-confirm").await;
    b.wait_for(
        "MIU Link's sign-in page again",
        &format!(
            "return location.origin === {} && location.pathname === '/'
                && !!document.querySelector('#login-form')",
            json!(server.base)
        ),
    )
    .await;
    let status = b
        .eval_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/me').then((r) => done(r.status)).catch((e) => done(String(e)));",
        )
        .await;
    assert_eq!(status, 401, "signed out of MIU Link");

    // A manager lands on the dashboard.
    sign_in_at_provider(&b, &server, "mgr-jones").await;
    b.wait_for(
        "the dashboard after single sign-on",
        "return location.pathname === '/reports'",
    )
    .await;
    b.screenshot("sso-03-manager").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_access_is_told_whom_to_ask() {
    let _one = crate::one_at_a_time().await;
    let (server, _provider) = start().await;
    let b = Browser::launch("sso-refused", 1280, 800).await;
    sign_in_at_provider(&b, &server, "clerk-brown").await;
    b.wait_for(
        "the access-not-granted page",
        "return document.title.startsWith('Access not granted')",
    )
    .await;
    let text = b.text("main").await;
    assert!(text.contains("the Furness IT service desk"), "{text}");
    b.screenshot("sso-04-access-not-granted").await;
    b.assert_accessible("the access-not-granted page").await;
    // No session: the API says so to this browser.
    b.goto(&server.url("/api/me")).await;
    let said = b.eval("return document.body.innerText").await;
    assert!(
        said.as_str().unwrap_or_default().contains("unauthorized"),
        "{said}"
    );
}
