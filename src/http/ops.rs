//! The operations listeners, each on an address of its own:
//!
//! * `--metrics-listen`: Prometheus metrics at `/metrics` and `/healthz`
//!   with every detail. No sign-in: keep it on a network only the
//!   monitoring system reaches (it reveals counts, never names).
//! * `--redirect-http`: every plain-HTTP request is answered with a
//!   permanent redirect to the same path over HTTPS, so that a user typing
//!   the bare host name lands on the secure site.
//!
//! Both run on the same server loop as the main port (header timeout,
//! connection cap), and stop with it.

use super::serve::{serve, ServeLimits};
use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn limits() -> ServeLimits {
    ServeLimits {
        max_connections: 256,
        header_timeout: Duration::from_secs(10),
    }
}

async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Serves `/metrics` and `/healthz` until `stopped`.
pub async fn serve_metrics(listener: TcpListener, state: AppState, stopped: watch::Receiver<bool>) {
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only /metrics and /healthz here\n") })
        .with_state(state);
    serve(listener, router, limits(), None, until(stopped), async {}).await;
}

async fn metrics(State(state): State<AppState>) -> Response {
    let stats = &state.leader.stats;
    let m = &stats.metrics;
    let leading = state.leader.role().is_leader();
    // What the operator published at its latest turn; nothing on a standby.
    let figure = |n: usize| if leading { n as i64 } else { 0 };
    m.leader.set(i64::from(leading));
    m.calls_active
        .set(figure(stats.calls.load(Ordering::Relaxed)));
    m.clinicians_available.set(if leading {
        i64::from(stats.clinicians_available.load(Ordering::Relaxed))
    } else {
        0
    });
    for (urgency, n) in signalling::Urgency::ALL
        .into_iter()
        .zip(&stats.waiting_by_urgency)
    {
        m.requests_waiting
            .get_or_create(&crate::metrics::ByUrgency {
                urgency: urgency.into(),
            })
            .set(figure(n.load(Ordering::Relaxed)));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::Metrics::CONTENT_TYPE),
        )],
        m.encode(),
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    let (status, body) = super::health(&state, true).await;
    (status, Json(body)).into_response()
}

/// Serves the redirect to HTTPS (on `https_port`) until `stopped`.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    stopped: watch::Receiver<bool>,
) {
    let router = Router::new().fallback(move |headers: HeaderMap, uri: Uri| async move {
        redirect(&headers, &uri, https_port)
    });
    serve(listener, router, limits(), None, until(stopped), async {}).await;
}

/// The HTTPS address of a plain-HTTP request: the host it asked for (its
/// port replaced by the HTTPS one, left out when 443) and the same path.
fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name);
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "MIU Link is served over HTTPS; ask for it by its name (no Host header came)\n",
        )
            .into_response();
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, value)],
            "MIU Link is served over HTTPS\n",
        )
            .into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad request\n").into_response(),
    }
}

/// The host name of a `Host` header without its port, if it is a plain
/// DNS name or IP address (nothing that could turn the redirect into
/// another URL).
fn host_name(host: &str) -> Option<&str> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [IPv6]:port
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.split(':').next()?
    };
    let inner = name.trim_start_matches('[').trim_end_matches(']');
    let ok = !inner.is_empty()
        && inner.len() <= 253
        && inner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: &str, path: &str, port: u16) -> (u16, Option<String>) {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        let uri: Uri = path.parse().unwrap();
        let r = redirect(&headers, &uri, port);
        (
            r.status().as_u16(),
            r.headers()
                .get(header::LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
        )
    }

    #[test]
    fn plain_http_is_sent_to_the_same_place_over_https() {
        assert_eq!(
            location("miulink.example.nhs.uk", "/station?x=1", 443),
            (
                308,
                Some("https://miulink.example.nhs.uk/station?x=1".into())
            )
        );
        assert_eq!(
            location("miulink.example.nhs.uk:80", "/", 8443),
            (308, Some("https://miulink.example.nhs.uk:8443/".into()))
        );
        assert_eq!(
            location("[::1]:8080", "/a", 8443),
            (308, Some("https://[::1]:8443/a".into()))
        );
        assert_eq!(
            location("10.0.0.5", "/", 443),
            (308, Some("https://10.0.0.5/".into()))
        );
        // Nothing that could make the redirect point elsewhere.
        assert_eq!(location("evil.example/x", "/", 443).0, 400);
        assert_eq!(location("a@b", "/", 443).0, 400);
        assert_eq!(location("", "/", 443).0, 400);
    }
}
