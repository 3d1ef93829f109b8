//! The signalling WebSocket: one task per connection.
//!
//! The task authenticates (before the upgrade), registers with the hub, then
//! shuttles frames: text frames are decoded here (bad ones are answered
//! here, without bothering the hub) and passed on; the hub's messages are
//! written out. It pings an idle client so that a vanished one is noticed
//! within [`IDLE_LIMIT`], and the grace period starts promptly.

use super::session::AuthUser;
use super::{ApiError, AppState};
use crate::hub::{HubCommand, HubHandle, Outbound, OUTBOX_CAPACITY};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use signalling::{ErrorCode, IceServer, Identity, ProtocolError, ServerMessage};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Frames larger than this are not even read: the socket is closed (1009).
/// Between [`signalling::MAX_FRAME_BYTES`] and this, the frame is refused with an error
/// and the connection carries on.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Each connection's read buffer. The WebSocket library's default (128 KiB)
/// was most of the server's memory per connection (see BENCHMARKS.md);
/// signalling messages are small and a larger one is read in several goes.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;
pub const IDLE_LIMIT: Duration = Duration::from_secs(45);

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    who: AuthUser,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // A browser sends its cookie on a WebSocket from any page; refuse pages
    // from other origins (cross-site WebSocket hijacking).
    if who.via_cookie && !same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "WebSocket from another site refused; open MIU Link from its own address".into(),
        ));
    }
    let identity = who.user.identity();
    let ice_servers = ice_servers(&state);
    let hub = state.hub.clone();
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| connection(socket, hub, identity, ice_servers)))
}

fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // Not a browser.
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin)
        .trim_end_matches('/');
    origin_host.eq_ignore_ascii_case(host)
}

fn ice_servers(state: &AppState) -> Vec<IceServer> {
    if state.settings.stun_urls.is_empty() {
        return Vec::new();
    }
    vec![IceServer {
        urls: state.settings.stun_urls.clone(),
        username: None,
        credential: None,
    }]
}

async fn connection(socket: WebSocket, hub: HubHandle, identity: Identity, ice: Vec<IceServer>) {
    let conn = hub.next_conn_id();
    let user = identity.username.clone();
    let (outbox_tx, mut outbox) = mpsc::channel(OUTBOX_CAPACITY);
    let connect = HubCommand::Connect {
        conn,
        identity,
        ice_servers: ice,
        outbox: outbox_tx,
    };
    if hub.send(connect).await.is_err() {
        return;
    }
    tracing::debug!(%conn, %user, "connected");
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                last_heard = Instant::now();
                let reply = match incoming {
                    Some(Ok(Message::Text(text))) => match signalling::decode(text.as_str()) {
                        Ok(message) => {
                            if hub.send(HubCommand::Message { conn, message }).await.is_err() {
                                break;
                            }
                            None
                        }
                        Err(e) => Some(e),
                    },
                    Some(Ok(Message::Binary(_))) => Some(ProtocolError::new(
                        ErrorCode::BinaryFrame,
                        "binary frames are not part of the protocol; send JSON text frames",
                    )),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => None,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(%conn, error = %e, "websocket error");
                        break;
                    }
                };
                if let Some(err) = reply {
                    let text = ServerMessage::error(err, None).to_json();
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
            }
            out = outbox.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close { text, code }) => {
                    let _ = sink.send(Message::Text(text)).await;
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static("closed by server") })))
                        .await;
                    break;
                }
                // The hub dropped this connection (too slow) or stopped.
                None => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code: 1013, reason: Utf8Bytes::from_static("too slow; reconnect") })))
                        .await;
                    break;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_LIMIT {
                    tracing::info!(%conn, %user, "no sign of life; closing");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = hub.send(HubCommand::Disconnect { conn }).await;
    tracing::debug!(%conn, %user, "disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(HOST, "miulink.example.nhs.uk".parse().unwrap());
        h.insert(ORIGIN, "https://miulink.example.nhs.uk".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
