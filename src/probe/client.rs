//! Talking to a MIU Link server as a program would: `POST /api/login` for
//! a token, then the signalling WebSocket with `Authorization: Bearer`.
//! TLS (https/wss) is rustls with the machine's trusted roots, so a trust's
//! own certificate authority works once it is installed on the machine.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// Logs in; returns the session token.
pub async fn login(
    http: &reqwest::Client,
    server: &Server,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let res = http
        .post(format!("{}/api/login", server.base))
        .json(&json!({"username": username, "password": password, "want_token": true}))
        .send()
        .await
        .map_err(|e| format!("cannot reach {}: {e}", server.base))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(format!(
            "login as {username:?} refused ({status}): {message}"
        ));
    }
    body["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("login as {username:?}: the server sent no token"))
}

pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("miulink-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up HTTPS: {e}"))
}

/// A GET with a bearer token, as JSON.
pub async fn get_json(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    token: &str,
) -> Result<Value, String> {
    let res = http
        .get(format!("{}{path}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|e| format!("GET {path}: not JSON: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {path}: {status}: {}", body["message"]));
    }
    Ok(body)
}

/// The sending half of a signalling connection.
pub struct WsSender(SplitSink<Ws, Message>);
/// The receiving half.
pub struct WsReceiver(SplitStream<Ws>);

impl WsSender {
    pub async fn send(&mut self, v: Value) -> Result<(), String> {
        self.0
            .send(Message::Text(v.to_string().into()))
            .await
            .map_err(|e| format!("signalling connection lost while sending: {e}"))
    }

    pub async fn close(mut self) {
        let _ = self.0.close().await;
    }
}

impl WsReceiver {
    /// The next JSON message from the server (control frames skipped).
    pub async fn recv(&mut self) -> Result<Value, String> {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map_err(|e| format!("the server sent something that is not JSON: {e}"))
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => format!(
                            "the server closed the signalling connection ({}: {})",
                            u16::from(f.code),
                            f.reason
                        ),
                        None => "the server closed the signalling connection".into(),
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("signalling connection failed: {e}")),
                None => return Err("the signalling connection ended".into()),
            }
        }
    }
}

/// Opens the signalling WebSocket and waits for `welcome`.
pub async fn connect(
    server: &Server,
    token: &str,
) -> Result<(WsSender, WsReceiver, Value), String> {
    let mut req = server
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad WebSocket address {}: {e}", server.ws_url))?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the session token is not a valid header value".to_owned())?;
    req.headers_mut().insert("authorization", auth);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true)
        .await
        .map_err(|e| {
            format!(
                "cannot open the signalling WebSocket {}: {e}",
                server.ws_url
            )
        })?;
    let (sink, stream) = ws.split();
    let mut rx = WsReceiver(stream);
    let welcome = rx.recv().await?;
    if welcome["type"] != "welcome" {
        return Err(format!("expected welcome first, got {welcome}"));
    }
    Ok((WsSender(sink), rx, welcome))
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
