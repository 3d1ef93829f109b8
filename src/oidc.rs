//! Sign-in through the trust's identity provider: OpenID Connect, shaped
//! for NHS Care Identity Service 2 (CIS2) and Entra ID.
//!
//! The protocol is the `openidconnect` crate's: discovery, the
//! authorization-code flow with PKCE (S256), `state` and `nonce`, and the
//! ID token's checks (signature from the provider's JWKS, issuer, audience,
//! expiry, nonce). Around it, what is MIU Link's own:
//! * client authentication by `client_secret_post`, or by
//!   `private_key_jwt` (RFC 7523, what CIS2 uses): the assertion is a JWT
//!   MIU Link signs with its own RSA key ([`Oidc::client_assertion`]); the
//!   public half is published at `{public-url}/auth/oidc/jwks.json`;
//! * the `acr` asked for (e.g. `AAL2_OR_AAL3_ANY`) is checked in the token;
//! * claims from the ID token and the userinfo endpoint (userinfo wins),
//!   and the role from a claim ([`RoleMap`]): a string, a list of strings,
//!   or a list of objects with a `role_code` (CIS2's `nhsid_nrbac_roles`);
//! * the provider's metadata is fetched when first needed and kept for an
//!   hour (or fetched again when a token's key is unknown), so MIU Link
//!   starts, and stations sign in, while the provider is away.
//!
//! The HTTP side (the routes, the pages, sessions) is `http/oidc.rs`.

use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{IssuerUrl, JsonWebKeyId, PrivateSigningKey, ProviderMetadataWithLogout};
use serde_json::{Map, Value};
use signalling::Role;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long discovered metadata (with the provider's keys) is kept.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long a sign-in may take at the provider.
pub const LOGIN_TTL_MS: i64 = 10 * 60_000;

/// How MIU Link proves who it is to the provider's token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_post`.
    Secret(String),
    /// `private_key_jwt`: an RSA key (PEM) and its key id.
    PrivateKey { pem: String, key_id: String },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret(_) => f.write_str("ClientAuth::Secret(..)"),
            ClientAuth::PrivateKey { key_id, .. } => {
                write!(f, "ClientAuth::PrivateKey {{ key_id: {key_id:?} }}")
            }
        }
    }
}

/// Which claim values give which role (`--oidc-role-claim`,
/// `--oidc-role-map VALUE=ROLE`).
#[derive(Debug, Clone, Default)]
pub struct RoleMap {
    pub claim: Option<String>,
    pub map: Vec<(String, Role)>,
}

impl RoleMap {
    /// `VALUE=ROLE`, ROLE one of clinician, manager, admin (stations are
    /// devices and keep local passwords).
    pub fn parse_entry(text: &str) -> Result<(String, Role), String> {
        let (value, role) = text.rsplit_once('=').ok_or_else(|| {
            format!("--oidc-role-map {text:?}: write VALUE=ROLE, e.g. R8000=clinician")
        })?;
        let role = match role.trim() {
            "clinician" => Role::Clinician,
            "manager" => Role::Manager,
            "admin" => Role::Admin,
            other => {
                return Err(format!(
                    "--oidc-role-map {text:?}: {other:?} is not clinician, manager or admin \
                     (stations sign in with their own password)"
                ))
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!(
                "--oidc-role-map {text:?}: the claim value is empty"
            ));
        }
        Ok((value.to_owned(), role))
    }

    /// The claim's values: a string, strings in a list, or each object's
    /// `role_code` (and `role_name`) in a list; for a CIS2 role code
    /// (`S8000:G8000:R8000`) also its last part.
    pub fn values(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |v: &str| {
            let v = v.trim();
            if !v.is_empty() {
                out.push(v.to_owned());
                if let Some((_, last)) = v.rsplit_once(':') {
                    out.push(last.to_owned());
                }
            }
        };
        match claims.get(claim) {
            Some(Value::String(s)) => push(s),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => push(s),
                        Value::Object(o) => {
                            for key in ["role_code", "role_name"] {
                                if let Some(Value::String(s)) = o.get(key) {
                                    push(s);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The role these claims map to: of every value that maps, the one
    /// with the most rights (admin, then manager, then clinician).
    pub fn role(&self, claims: &Map<String, Value>) -> Option<Role> {
        let claim = self.claim.as_deref()?;
        let values = Self::values(claims, claim);
        let rank = |r: Role| match r {
            Role::Admin => 3,
            Role::Manager => 2,
            Role::Clinician => 1,
            Role::Station => 0,
        };
        self.map
            .iter()
            .filter(|(v, _)| values.iter().any(|have| have == v))
            .map(|(_, r)| *r)
            .max_by_key(|r| rank(*r))
    }
}

/// Everything `--oidc-*` and `--public-url` say.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Where users reach MIU Link, without a trailing slash.
    pub public_url: String,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// Asked for, and one of them required in the token's `acr`.
    pub acr_values: Vec<String>,
    pub roles: RoleMap,
    pub display_name_claim: String,
    /// The sign-in button's label.
    pub label: String,
    /// Whom to ask for access, on the "access not granted" page.
    pub access_contact: String,
}

impl OidcSettings {
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/oidc/callback", self.public_url)
    }
}

/// The provider's metadata (with its keys), kept for a while.
struct Cached {
    metadata: ProviderMetadataWithLogout,
    fetched: Instant,
}

/// The configured provider: settings, MIU Link's own signing key (for
/// `private_key_jwt`) and the cached metadata.
pub struct Oidc {
    pub settings: OidcSettings,
    key: Option<CoreRsaPrivateSigningKey>,
    http: reqwest::Client,
    cache: Mutex<Option<Cached>>,
    /// One discovery at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Reads an RSA private key in PKCS#1 or PKCS#8 PEM.
fn rsa_key(pem: &str, key_id: &str) -> Result<CoreRsaPrivateSigningKey, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let pkcs1 = if pem.contains("BEGIN PRIVATE KEY") {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("not an RSA private key in PKCS#8 PEM ({e})"))?;
        key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| format!("cannot re-encode the key ({e})"))?
            .to_string()
    } else {
        pem.to_owned()
    };
    CoreRsaPrivateSigningKey::from_pem(&pkcs1, Some(JsonWebKeyId::new(key_id.to_owned())))
        .map_err(|e| format!("not an RSA private key in PEM ({e}); make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`"))
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Oidc {
    /// Checks the settings and loads MIU Link's key; nothing is fetched
    /// from the provider yet.
    pub fn new(settings: OidcSettings) -> Result<Oidc, String> {
        IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| format!("--oidc-issuer {:?}: {e}", settings.issuer))?;
        url::Url::parse(&settings.public_url)
            .map_err(|e| format!("--public-url {:?}: {e}", settings.public_url))?;
        let key = match &settings.client_auth {
            ClientAuth::PrivateKey { pem, key_id } => {
                Some(rsa_key(pem, key_id).map_err(|e| format!("--oidc-private-key: {e}"))?)
            }
            ClientAuth::Secret(_) => None,
        };
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer send MIU
            // Link anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Oidc {
            settings,
            key,
            http,
            cache: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The provider's metadata and keys: cached, or fetched now (`fresh`:
    /// fetched again whatever the cache holds, e.g. for a new signing key).
    pub async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, String> {
        let cached = || {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .as_ref()
                .filter(|c| c.fetched.elapsed() < METADATA_TTL)
                .map(|c| c.metadata.clone())
        };
        if !fresh {
            if let Some(m) = cached() {
                return Ok(m);
            }
        }
        let _one = self.fetching.lock().await;
        if !fresh {
            if let Some(m) = cached() {
                return Ok(m);
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                format!(
                    "cannot read the identity provider's configuration at {}/.well-known/openid-configuration ({})",
                    self.settings.issuer,
                    error_chain(&e)
                )
            })?;
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            metadata: metadata.clone(),
            fetched: Instant::now(),
        });
        Ok(metadata)
    }

    /// The public half of MIU Link's key, as a JWK Set (for
    /// `/auth/oidc/jwks.json`); `None` with a client secret.
    pub fn jwks(&self) -> Option<Value> {
        let key = self.key.as_ref()?;
        let mut jwk = serde_json::to_value(key.as_verification_key()).ok()?;
        jwk["alg"] = Value::String("RS512".into());
        Some(serde_json::json!({ "keys": [jwk] }))
    }

    /// The `private_key_jwt` client assertion for a token request to
    /// `audience` (the token endpoint): RS512, five minutes, a fresh `jti`.
    pub fn client_assertion(&self, audience: &str, now_ms: i64) -> Result<Option<String>, String> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let ClientAuth::PrivateKey { key_id, .. } = &self.settings.client_auth else {
            return Ok(None);
        };
        let now = now_ms / 1000;
        let header = serde_json::json!({ "alg": "RS512", "typ": "JWT", "kid": key_id });
        let claims = serde_json::json!({
            "iss": self.settings.client_id,
            "sub": self.settings.client_id,
            "aud": audience,
            "jti": crate::auth::new_token(),
            "iat": now,
            "exp": now + 300,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signature = key
            .sign(
                &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                signing_input.as_bytes(),
            )
            .map_err(|e| format!("cannot sign the client assertion: {e}"))?;
        Ok(Some(format!("{signing_input}.{}", b64url(&signature))))
    }
}

/// An error with its causes, for messages to IT.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The claims of a verified ID token (its payload as JSON): the crate has
/// checked its signature, issuer, audience, expiry and nonce already; this
/// only reads the rest.
pub fn token_payload(jwt: &str) -> Result<Map<String, Value>, String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).ok_or("the ID token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("the ID token's payload is not base64url: {e}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("the ID token's payload is not a JSON object".into()),
    }
}

/// A username for a new account from the provider's claims: its
/// `preferred_username`, else the NHS user id (`nhsid_useruid`), else one
/// made from the subject; cut to the characters usernames allow.
pub fn username_for(claims: &Map<String, Value>, subject: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
            .take(56)
            .collect()
    };
    for claim in ["preferred_username", "nhsid_useruid", "email"] {
        if let Some(Value::String(s)) = claims.get(claim) {
            let name = clean(s);
            if name.len() >= 2 {
                return name;
            }
        }
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(subject.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sso-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn roles_come_from_a_string_a_list_or_cis2_role_objects() {
        let map = RoleMap {
            claim: Some("roles".into()),
            map: vec![
                RoleMap::parse_entry("R8000=clinician").unwrap(),
                RoleMap::parse_entry("ae-manager=manager").unwrap(),
                RoleMap::parse_entry("it-admin=admin").unwrap(),
            ],
        };
        assert_eq!(
            map.role(&claims(json!({"roles": "R8000"}))),
            Some(Role::Clinician)
        );
        assert_eq!(
            map.role(&claims(json!({"roles": ["nurse", "ae-manager"]}))),
            Some(Role::Manager)
        );
        assert_eq!(
            map.role(&claims(json!({"roles": [
                {"role_code": "S8000:G8000:R8000", "role_name": "Clinical Practitioner Access Role"}
            ]}))),
            Some(Role::Clinician),
            "a CIS2 role code's last part"
        );
        assert_eq!(
            map.role(&claims(json!({"roles": ["R8000", "it-admin"]}))),
            Some(Role::Admin),
            "the most rights among the mapped values"
        );
        assert_eq!(map.role(&claims(json!({"roles": ["R9999"]}))), None);
        assert_eq!(map.role(&claims(json!({"other": "R8000"}))), None);
        assert!(RoleMap::parse_entry("R1=station").is_err());
        assert!(RoleMap::parse_entry("clinician").is_err());
    }

    #[test]
    fn new_usernames_are_made_of_allowed_characters() {
        assert_eq!(
            username_for(
                &claims(json!({"preferred_username": "jane.smith@nhs.net"})),
                "x"
            ),
            "jane.smith@nhs.net"
        );
        assert_eq!(
            username_for(&claims(json!({"nhsid_useruid": "555000111222"})), "x"),
            "555000111222"
        );
        let made = username_for(&claims(json!({"preferred_username": "!"})), "subject-1");
        assert!(made.starts_with("sso-") && made.len() == 16, "{made}");
        assert!(crate::auth::check_username(&made).is_ok());
    }
}
