//! What is the probe's own in talking to a server: `--server` and the
//! addresses it gives, the HTTP client, and the log API. Login and the
//! signalling WebSocket are the shared typed client (`miulink_client`).
//! TLS (https/wss) is rustls with the machine's trusted roots, so a trust's
//! own certificate authority works once it is installed on the machine.

use super::error::ProbeError;
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

/// Where the server is: its HTTP base and WebSocket address.
#[derive(Debug, Clone)]
pub struct Server {
    /// e.g. `https://miulink.example.nhs.uk` (no trailing slash)
    pub base: String,
    /// e.g. `wss://miulink.example.nhs.uk/ws`
    pub ws_url: String,
    /// The host is this machine (plain HTTP allowed; peers bind loopback).
    pub loopback: bool,
}

impl Server {
    /// Parses `--server`. Plain `http://` is refused unless the host is this
    /// machine: passwords and tokens must not cross a network in clear.
    pub fn parse(url: &str) -> Result<Server, String> {
        let url = url.trim().trim_end_matches('/');
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            format!("--server {url:?} needs a scheme, e.g. https://miulink.example.nhs.uk")
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("--server {url:?} has no host"));
        }
        let host = host_of(authority);
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let ws_scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => "wss",
            "http" if loopback => "ws",
            "http" => {
                return Err(format!(
                    "refusing plain http:// to {host}: passwords would cross the network \
                     unencrypted; use https:// (plain http is only for this machine)"
                ))
            }
            other => {
                return Err(format!(
                    "--server scheme {other:?} is not supported; use https:// (or http://localhost)"
                ))
            }
        };
        Ok(Server {
            base: url.to_owned(),
            ws_url: format!("{ws_scheme}://{rest}/ws"),
            loopback,
        })
    }
}

fn host_of(authority: &str) -> &str {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ProbeError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("miulink-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ProbeError::Https)
}

/// A GET with a bearer token, as JSON.
pub async fn get_json(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    token: &str,
) -> Result<Value, ProbeError> {
    let failed = |problem: String| ProbeError::Get {
        path: path.to_owned(),
        problem,
    };
    let res = http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|e| failed(format!("not JSON: {e}")))?;
    if !status.is_success() {
        return Err(failed(format!("{status}: {}", body["message"])));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let s = Server::parse("https://miulink.example.nhs.uk/").unwrap();
        assert_eq!(s.base, "https://miulink.example.nhs.uk");
        assert_eq!(s.ws_url, "wss://miulink.example.nhs.uk/ws");
        assert!(!s.loopback);
        let s = Server::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(s.ws_url, "ws://127.0.0.1:8080/ws");
        assert!(s.loopback);
        assert!(Server::parse("http://localhost:1").unwrap().loopback);
        assert!(Server::parse("http://[::1]:8080").unwrap().loopback);
        let err = Server::parse("http://miulink.example.nhs.uk").unwrap_err();
        assert!(err.contains("https://"), "{err}");
        assert!(Server::parse("miulink.example.nhs.uk").is_err());
        assert!(Server::parse("ftp://x").is_err());
        assert!(Server::parse("https://").is_err());
    }
}
