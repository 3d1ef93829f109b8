//! Sign-in through the identity provider, over HTTP:
//!
//! * `GET /auth/oidc/login`: a new state, nonce and PKCE verifier (kept in
//!   the database, the state as a hash), a short-lived cookie binding them
//!   to this browser (`SameSite=Lax`: it must come back with the
//!   provider's redirect), then off to the provider.
//! * `GET /auth/oidc/callback`: the state is taken (once only) and must
//!   belong to this browser; the code is exchanged (PKCE, and MIU Link's
//!   client authentication); the ID token checked; the role mapped; the
//!   account found by (issuer, subject), created or refreshed; the same
//!   session as a password sign-in; on to the role's screen. Anything wrong
//!   is a 4xx page and no session.
//! * `GET /auth/oidc/jwks.json`: MIU Link's public key for
//!   `private_key_jwt`.
//! * `GET /api/auth/options`: what the sign-in page offers.
//!
//! Every outcome is in the audit trail.

use super::session::{audit, client_addr, open_session};
use super::{ApiError, AppState};
use crate::oidc::{self, Oidc, LOGIN_TTL_MS};
use crate::store::{AccountFlags, Actor, NewAudit, NewUser, OidcLink, PendingLogin, UserRecord};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthType, AuthenticationContextClass, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use signalling::Role;
use std::net::{IpAddr, SocketAddr};

/// The cookie that ties a sign-in under way to the browser that began it.
const BINDING_COOKIE: &str = "miulink_oidc";

/// Where each role lands after signing in.
pub fn home(role: Role) -> &'static str {
    match role {
        Role::Station => "/station",
        Role::Clinician => "/clinician",
        Role::Manager => "/reports",
        Role::Admin => "/admin",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page of its own for a sign-in that did not work: what happened and
/// what to do, with the way back to the sign-in page.
fn page(status: StatusCode, title: &str, paragraphs: &[String]) -> Response {
    let body: String = paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>", escape(p)))
        .collect();
    let html = format!(
        "<!doctype html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}: MIU Link</title><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/theme.css\"><link rel=\"stylesheet\" href=\"/app.css\"></head>\
         <body class=\"login-page\"><main id=\"main\" class=\"login-layout\">\
         <section class=\"login-brand\" aria-labelledby=\"product-name\"><div class=\"login-brand-inner\">\
         <svg class=\"brand-mark big\" aria-hidden=\"true\" focusable=\"false\"><use href=\"/icons.svg#logo\"></use></svg>\
         <h1 id=\"product-name\">MIU Link</h1></div></section><section class=\"login-panel\">\
         <div class=\"card login-card\" role=\"alert\"><h2 id=\"sso-title\">{t}</h2>{body}\
         <p><a class=\"btn btn-primary\" href=\"/\">Back to the sign-in page</a></p></div>\
         </section></main></body></html>",
        t = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self'"),
    );
    response
}

/// The page for a sign-in route when no provider is configured.
fn not_set_up() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Single sign-on is not set up",
        &["This MIU Link has no identity provider configured. Sign in with your username and password.".into()],
    )
}

fn hash(text: &str) -> String {
    crate::auth::token_hash(text)
}

fn unavailable(why: &str) -> Response {
    tracing::error!(%why, "sign-in through the identity provider failed");
    page(
        StatusCode::BAD_GATEWAY,
        "The identity provider cannot be reached",
        &[
            "MIU Link could not complete your sign-in with the identity provider. Try again in a minute.".into(),
            "If it keeps happening, tell IT: the server's log says why. Station devices can still sign in with their password.".into(),
        ],
    )
}

/// `GET /auth/oidc/login`
pub async fn login(State(state): State<AppState>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return not_set_up();
    };
    let metadata = match oidc.metadata(false).await {
        Ok(m) => m,
        Err(why) => return unavailable(&why),
    };
    let settings = &oidc.settings;
    let redirect = match RedirectUrl::new(settings.redirect_uri()) {
        Ok(r) => r,
        Err(e) => return unavailable(&format!("--public-url gives a bad redirect URI: {e}")),
    };
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        None,
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    for acr in &settings.acr_values {
        request = request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let binding = crate::auth::new_token();
    let now = state.clock.now_ms();
    let pending = PendingLogin {
        binding_hash: hash(&binding),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        created_at: now,
    };
    if let Err(e) = state
        .store
        .begin_oidc_login(&hash(csrf.secret()), &pending, now - LOGIN_TTL_MS)
        .await
    {
        return ApiError::Store(e).into_response();
    }
    let cookie = format!(
        "{BINDING_COOKIE}={binding}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        LOGIN_TTL_MS / 1000,
        if state.settings.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(url.as_str()),
        HeaderValue::from_str(&cookie),
    ) {
        headers.insert(LOCATION, location);
        headers.insert(SET_COOKIE, cookie);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[derive(Debug, Deserialize, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A refused sign-in: audited, and a page with no session.
async fn refuse(
    state: &AppState,
    client: IpAddr,
    status: StatusCode,
    reason: &str,
    title: &str,
    text: &[String],
) -> Response {
    tracing::info!(%client, %reason, "sign-in through the identity provider refused");
    audit(
        state,
        NewAudit::new(state.clock.now_ms(), Actor::Anonymous, "sso_refused")
            .detail(json!({ "reason": reason }))
            .client(client),
    )
    .await;
    page(status, title, text)
}

/// `GET /auth/oidc/callback`
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Callback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let client = client_addr(&state, peer, &headers);
    let Some(oidc) = state.oidc.clone() else {
        return not_set_up();
    };
    let again = || vec!["Go back to the sign-in page and try again.".to_owned()];
    let Ok(Query(q)) = query else {
        return refuse(
            &state,
            client,
            StatusCode::BAD_REQUEST,
            "malformed callback",
            "Sign-in failed",
            &again(),
        )
        .await;
    };
    if let Some(error) = &q.error {
        let detail = q.error_description.clone().unwrap_or_default();
        let reason = format!("the provider said {error}: {detail}");
        return refuse(
            &state,
            client,
            StatusCode::BAD_REQUEST,
            &reason,
            "Sign-in was not completed",
            &[
                format!(
                    "The identity provider ended the sign-in ({error}{}).",
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    }
                ),
                "Go back to the sign-in page and try again.".into(),
            ],
        )
        .await;
    }
    let (Some(code), Some(csrf)) = (q.code.as_deref(), q.state.as_deref()) else {
        return refuse(
            &state,
            client,
            StatusCode::BAD_REQUEST,
            "no code or state",
            "Sign-in failed",
            &again(),
        )
        .await;
    };
    if code.len() > 4096 || csrf.len() > 512 {
        return refuse(
            &state,
            client,
            StatusCode::BAD_REQUEST,
            "oversized code or state",
            "Sign-in failed",
            &again(),
        )
        .await;
    }
    // The state is taken whatever happens next: it works once.
    let pending = match state.store.take_oidc_login(&hash(csrf)).await {
        Ok(p) => p,
        Err(e) => return ApiError::Store(e).into_response(),
    };
    let now = state.clock.now_ms();
    let binding = super::session::cookie(&headers, BINDING_COOKIE).map(|b| hash(&b));
    let pending = match pending {
        Some(p) if now - p.created_at > LOGIN_TTL_MS => {
            return refuse(
                &state,
                client,
                StatusCode::BAD_REQUEST,
                "sign-in took too long",
                "Sign-in took too long",
                &again(),
            )
            .await;
        }
        Some(p) if binding.as_deref() == Some(p.binding_hash.as_str()) => p,
        Some(_) => {
            return refuse(
                &state,
                client,
                StatusCode::BAD_REQUEST,
                "state from another browser",
                "Sign-in failed",
                &[
                    "This sign-in was started in another browser or tab.".into(),
                    "Go back to the sign-in page and try again.".into(),
                ],
            )
            .await;
        }
        None => {
            return refuse(
                &state,
                client,
                StatusCode::BAD_REQUEST,
                "unknown or used state",
                "Sign-in failed",
                &[
                    "This sign-in link has been used already or is not one MIU Link made.".into(),
                    "Go back to the sign-in page and try again.".into(),
                ],
            )
            .await;
        }
    };
    let verified = match complete(&oidc, &state, code, &pending).await {
        Ok(v) => v,
        Err(Failure::Refused(why)) => {
            return refuse(
                &state,
                client,
                StatusCode::BAD_REQUEST,
                &why,
                "Sign-in failed",
                &again(),
            )
            .await;
        }
        Err(Failure::Unavailable(why)) => return unavailable(&why),
    };
    sign_in(&state, &oidc, client, verified).await
}

/// What a checked sign-in tells about the person.
struct Verified {
    issuer: String,
    subject: String,
    claims: Map<String, Value>,
    id_token: String,
}

enum Failure {
    /// Something about this sign-in is wrong (a bad code, a bad token).
    Refused(String),
    /// The provider could not be reached or answered nonsense.
    Unavailable(String),
}

/// Exchanges the code and checks the ID token; merges the userinfo claims.
async fn complete(
    oidc: &Oidc,
    state: &AppState,
    code: &str,
    pending: &PendingLogin,
) -> Result<Verified, Failure> {
    let settings = &oidc.settings;
    let metadata = oidc.metadata(false).await.map_err(Failure::Unavailable)?;
    let token_url = metadata
        .token_endpoint()
        .map(|u| u.url().to_string())
        .ok_or_else(|| Failure::Unavailable("the provider advertises no token endpoint".into()))?;
    let secret = match &settings.client_auth {
        oidc::ClientAuth::Secret(s) => Some(ClientSecret::new(s.clone())),
        oidc::ClientAuth::PrivateKey { .. } => None,
    };
    let redirect = RedirectUrl::new(settings.redirect_uri())
        .map_err(|e| Failure::Unavailable(format!("bad redirect URI: {e}")))?;
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(settings.client_id.clone()),
        secret,
    )
    .set_redirect_uri(redirect)
    // client_secret_post (or, with a key, just the client id): never HTTP
    // Basic.
    .set_auth_type(AuthType::RequestBody);
    let assertion = oidc
        .client_assertion(&token_url, state.clock.now_ms())
        .map_err(Failure::Unavailable)?;
    let mut request = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| Failure::Unavailable(format!("cannot make the token request: {e}")))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
    if let Some(jwt) = assertion {
        request = request
            .add_extra_param(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .add_extra_param("client_assertion", jwt);
    }
    let tokens = request.request_async(oidc.http()).await.map_err(|e| {
        // The provider refusing the code (used already, made for another
        // client, expired) is the user's sign-in failing, not an outage.
        let text = oidc::error_chain(&e);
        if matches!(e, openidconnect::RequestTokenError::ServerResponse(_)) {
            Failure::Refused(format!("the token endpoint refused the code: {text}"))
        } else {
            Failure::Unavailable(format!("token request failed: {text}"))
        }
    })?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| Failure::Refused("no ID token in the token response".into()))?;
    let nonce = Nonce::new(pending.nonce.clone());
    let checked = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(first) => {
            // The provider may have rotated its keys: fetch them once more.
            let fresh = oidc.metadata(true).await.map_err(Failure::Unavailable)?;
            let again = CoreClient::from_provider_metadata(
                fresh,
                ClientId::new(settings.client_id.clone()),
                None,
            );
            let verifier = again.id_token_verifier();
            let checked = id_token.claims(&verifier, &nonce).cloned();
            checked
                .map_err(|_| Failure::Refused(format!("the ID token failed its checks: {first}")))?
        }
    };
    if !settings.acr_values.is_empty() {
        let acr = checked.auth_context_ref().map(|a| a.as_str().to_owned());
        if !acr
            .as_deref()
            .is_some_and(|a| settings.acr_values.iter().any(|want| want == a))
        {
            return Err(Failure::Refused(format!(
                "the ID token's acr is {acr:?}; one of {:?} is required",
                settings.acr_values
            )));
        }
    }
    let jwt = id_token.to_string();
    let mut claims = oidc::token_payload(&jwt).map_err(Failure::Refused)?;
    let subject = checked.subject().as_str().to_owned();
    // Claims the provider gives only at its userinfo endpoint (CIS2's RBAC
    // roles, say) are merged in; userinfo wins.
    if let Some(endpoint) = metadata.userinfo_endpoint() {
        let info = oidc
            .http()
            .get(endpoint.url().as_str())
            .bearer_auth(tokens.access_token().secret())
            .send()
            .await
            .map_err(|e| {
                Failure::Unavailable(format!(
                    "userinfo request failed: {}",
                    oidc::error_chain(&e)
                ))
            })?;
        if info.status().is_success() {
            let info: Value = info
                .json()
                .await
                .map_err(|e| Failure::Unavailable(format!("userinfo is not JSON: {e}")))?;
            let Value::Object(info) = info else {
                return Err(Failure::Unavailable("userinfo is not a JSON object".into()));
            };
            if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
                return Err(Failure::Refused(
                    "userinfo is about another subject than the ID token".into(),
                ));
            }
            claims.extend(info);
        } else {
            tracing::warn!(status = %info.status(), "the userinfo endpoint refused; using the ID token's claims alone");
        }
    }
    Ok(Verified {
        issuer: checked.issuer().as_str().to_owned(),
        subject,
        claims,
        id_token: jwt,
    })
}

/// Maps the role, finds or makes the account, opens the session.
async fn sign_in(state: &AppState, oidc: &Oidc, client: IpAddr, v: Verified) -> Response {
    let settings = &oidc.settings;
    let now = state.clock.now_ms();
    let Some(role) = settings.roles.role(&v.claims) else {
        let values = settings
            .roles
            .claim
            .as_deref()
            .map(|c| oidc::RoleMap::values(&v.claims, c))
            .unwrap_or_default();
        tracing::info!(subject = %v.subject, ?values, "signed in at the provider, but no role maps to MIU Link");
        audit(
            state,
            NewAudit::new(now, Actor::Anonymous, "sso_refused")
                .detail(json!({
                    "reason": "no role maps to MIU Link",
                    "issuer": v.issuer,
                    "subject": v.subject,
                    "claim": settings.roles.claim,
                    "values": values,
                }))
                .client(client),
        )
        .await;
        return page(
            StatusCode::FORBIDDEN,
            "Access not granted",
            &[
                "You signed in with the identity provider, but your role does not give you access to MIU Link.".into(),
                format!("If you need it, ask {}.", settings.access_contact),
            ],
        );
    };
    let name = v
        .claims
        .get(&settings.display_name_claim)
        .and_then(Value::as_str)
        .map(|n| {
            n.trim()
                .chars()
                .take(crate::accounts::MAX_DISPLAY_NAME)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
        .unwrap_or_else(|| oidc::username_for(&v.claims, &v.subject));
    let user = match account(state, &v, role, &name, client, now).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    if user.disabled {
        audit(
            state,
            NewAudit::new(now, Actor::account(user.id, &user.username), "login_failed")
                .target(user.username.clone())
                .detail(json!({ "via": "oidc", "reason": "disabled" }))
                .client(client),
        )
        .await;
        return page(
            StatusCode::FORBIDDEN,
            "Your MIU Link account is disabled",
            &[format!("Ask {} to enable it.", settings.access_contact)],
        );
    }
    let (token, cookie) = match open_session(state, &user, now).await {
        Ok(pair) => pair,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state
        .store
        .set_session_oidc(&crate::auth::token_hash(&token), &v.id_token)
        .await
    {
        return ApiError::Store(e).into_response();
    }
    tracing::info!(username = %user.username, role = user.role.as_str(), %client, "login through the identity provider");
    audit(
        state,
        NewAudit::new(
            now,
            Actor::account(user.id, &user.username),
            "login_succeeded",
        )
        .target(user.username.clone())
        .detail(json!({ "via": "oidc", "issuer": v.issuer }))
        .client(client),
    )
    .await;
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_static(home(user.role)));
    if let Ok(c) = HeaderValue::from_str(&cookie) {
        headers.append(SET_COOKIE, c);
    }
    // The sign-in under way is over: its cookie goes.
    if let Ok(c) = HeaderValue::from_str(&format!(
        "{BINDING_COOKIE}=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"
    )) {
        headers.append(SET_COOKIE, c);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The account linked to this person, refreshed from the claims; or a new
/// one (the first sign-in), never an existing local account taken over by
/// name.
async fn account(
    state: &AppState,
    v: &Verified,
    role: Role,
    name: &str,
    client: IpAddr,
    now: i64,
) -> Result<UserRecord, ApiError> {
    let link = OidcLink {
        issuer: &v.issuer,
        subject: &v.subject,
        display_name: name,
        role,
    };
    if let Some(user) = state.store.user_by_oidc(&v.issuer, &v.subject).await? {
        if user.display_name == name && user.role == role {
            return Ok(user);
        }
        let audit = NewAudit::new(now, Actor::System, "sso_account_updated")
            .target(user.username.clone())
            .detail(json!({
                "display_name": name,
                "role": role.as_str(),
                "was": { "display_name": user.display_name, "role": user.role.as_str() },
            }))
            .client(client);
        return Ok(state.store.link_oidc(user.id, &link, &audit).await?);
    }
    let base = oidc::username_for(&v.claims, &v.subject);
    for n in 1..=50 {
        let username = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if state.store.user_by_username(&username).await?.is_some() {
            continue;
        }
        let audit = NewAudit::new(now, Actor::System, "sso_account_created")
            .target(username.clone())
            .detail(json!({ "role": role.as_str(), "issuer": v.issuer, "subject": v.subject }))
            .client(client);
        let id = state
            .store
            .create_user_audited(
                NewUser {
                    username: &username,
                    display_name: name,
                    role,
                    site: None,
                    // Never a password: this account signs in at the provider.
                    password_hash: "!sso",
                    flags: AccountFlags::default(),
                    must_change_password: false,
                    now,
                },
                &audit,
            )
            .await?;
        let link_audit = NewAudit::new(now, Actor::System, "sso_account_linked")
            .target(username.clone())
            .client(client);
        return Ok(state.store.link_oidc(id, &link, &link_audit).await?);
    }
    Err(ApiError::Internal(format!(
        "cannot find a free username like {base:?} for a new account"
    )))
}

/// `GET /auth/oidc/jwks.json`: MIU Link's public key (private_key_jwt).
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.oidc.as_ref().and_then(|o| o.jwks()) {
        Some(keys) => (
            [(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"))],
            Json(keys),
        )
            .into_response(),
        None => ApiError::NotFound(
            "no signing key: MIU Link authenticates to its identity provider with a client secret, or has none".into(),
        )
        .into_response(),
    }
}

/// `GET /api/auth/options`: what the sign-in page offers.
pub async fn options(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "sso": state.oidc.as_ref().map(|o| json!({
            "label": o.settings.label,
            "url": "/auth/oidc/login",
        })),
        "local_login": state.settings.local_login().as_str(),
    }))
}

/// Where to send a browser signing out of a provider session (RP-initiated
/// logout), when the provider offers it.
pub async fn end_session_url(state: &AppState, id_token: &str) -> Option<String> {
    let oidc = state.oidc.as_ref()?;
    let metadata = oidc.metadata(false).await.ok()?;
    let endpoint = metadata
        .additional_metadata()
        .end_session_endpoint
        .as_ref()?;
    let mut url = endpoint.url().clone();
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair(
            "post_logout_redirect_uri",
            &format!("{}/", oidc.settings.public_url),
        )
        .append_pair("client_id", &oidc.settings.client_id);
    Some(url.to_string())
}
