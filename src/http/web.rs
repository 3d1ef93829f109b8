//! The browser client: files under `web/`, built into the binary (so the
//! single binary is enough) or read from `--web-dir` while developing.
//!
//! `/` is `index.html` (the login page); `/station` is `station.html` and so
//! on for every page; anything else with an extension is an asset.

use super::AppState;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

#[derive(rust_embed::RustEmbed)]
#[folder = "web/"]
struct Embedded;

/// Pages may only load what this server serves, and talk only to it
/// (`'self'` covers its own WebSocket). Inline styles are allowed
/// (the charts set them); inline scripts are not.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn serve(State(state): State<AppState>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let file = if path.is_empty() {
        "index.html".to_owned()
    } else if !path.contains('.') {
        format!("{}.html", path.trim_end_matches('/'))
    } else {
        path.to_owned()
    };
    if file
        .split('/')
        .any(|part| part == ".." || part.starts_with('.'))
    {
        return not_found();
    }
    let body: Option<Cow<'static, [u8]>> = match &state.settings.web_dir {
        Some(dir) => tokio::fs::read(dir.join(&file)).await.ok().map(Cow::Owned),
        None => Embedded::get(&file).map(|f| f.data),
    };
    let Some(body) = body else {
        return not_found();
    };
    let ext = file.rsplit('.').next().unwrap_or("");
    let mut response = (
        [
            (CONTENT_TYPE, content_type(ext)),
            // Always revalidate: a new release must reach every screen.
            (CACHE_CONTROL, "no-cache"),
        ],
        body.into_owned(),
    )
        .into_response();
    if ext == "html" {
        if let Ok(v) = CSP.parse() {
            response.headers_mut().insert(CONTENT_SECURITY_POLICY, v);
        }
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found. Start at / to log in.",
    )
        .into_response()
}

fn content_type(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
