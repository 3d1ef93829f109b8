//! The signalling WebSocket: one task per connection.
//!
//! The task authenticates (before the upgrade), registers with the operator, then
//! shuttles frames: text frames are decoded here (bad ones are answered
//! here, without bothering the operator) and passed on; the operator's messages are
//! written out. It pings an idle client so that a vanished one is noticed
//! within [`IDLE_LIMIT`], and the grace period starts promptly.

use super::live::{Ended, SessionWatch, CLOSE_SIGNED_OUT};
use super::session::AuthUser;
use super::{ApiError, AppState};
use crate::operator::{OperatorCommand, OperatorHandle, Outbound, OUTBOX_CAPACITY};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use signalling::{
    ClientMessage, ErrorCode, IceServer, Identity, ProtocolError, Role, ServerMessage,
};
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
/// Messages from the outbox written together before one flush.
const WRITE_BATCH: usize = 64;
/// A connection that keeps on past the rate limit this many times within
/// [`RATE_STRIKE_WINDOW`] is closed (an occasional burst over a long shift
/// never adds up to it).
pub const RATE_STRIKES_TO_CLOSE: u32 = 1000;
pub const RATE_STRIKE_WINDOW: Duration = Duration::from_secs(60);

/// Each connection's message rate: `Settings::rate_burst` messages at once
/// (a browser trickling ICE candidates sends a few dozen together), then
/// `Settings::rate_per_second` (governor's GCRA, which is a token bucket
/// kept as one timestamp); and the strikes of a connection that keeps
/// going over it.
struct RateLimit {
    limiter: governor::DefaultDirectRateLimiter,
    per_second: f64,
    /// Messages dropped since `strikes_since`.
    strikes: u32,
    strikes_since: Instant,
    last_told: Option<Instant>,
}

impl RateLimit {
    fn new(per_second: f64, burst: f64) -> Self {
        let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
        let burst =
            std::num::NonZeroU32::new(burst.max(1.0) as u32).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        RateLimit {
            limiter: governor::RateLimiter::direct(quota),
            per_second,
            strikes: 0,
            strikes_since: Instant::now(),
            last_told: None,
        }
    }

    fn allow(&mut self) -> bool {
        if self.limiter.check().is_ok() {
            return true;
        }
        let now = Instant::now();
        if now.duration_since(self.strikes_since) > RATE_STRIKE_WINDOW {
            self.strikes = 0;
            self.strikes_since = now;
        }
        self.strikes += 1;
        false
    }

    /// Whether to send the sender an error this time (at most once a second).
    fn tell(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last_told
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return false;
        }
        self.last_told = Some(now);
        true
    }
}

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
    // Only the leader serves WebSockets; a standby's 503 makes the client
    // retry (through the load balancer, which sends it to the leader).
    let Some(operator) = state.leader.operator() else {
        return Err(ApiError::Standby);
    };
    // Registered before the upgrade: a sign-out racing it still ends it.
    let session = Session {
        watch: state.live.watch(
            &who.token_hash,
            super::live::OpenSocket {
                user_id: who.user.id,
                username: who.user.username.clone(),
                display_name: who.user.display_name.clone(),
                role: who.user.role,
                since: state.clock.now_ms(),
            },
        ),
        expires_at: who.expires_at,
    };
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| connection(socket, state, operator, identity, session)))
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

/// TURN credentials are renewed at half their lifetime.
fn ice_refresh_every(state: &AppState) -> Option<Duration> {
    let s = &state.settings;
    (s.turn_secret.is_some() && !s.turn_urls.is_empty())
        .then(|| Duration::from_millis(u64::try_from(s.turn_ttl_ms / 2).unwrap_or(0).max(1000)))
}

/// The ICE servers handed to this account (in `welcome`, `ice_servers`, and
/// in `/api/me` for the device check page), with fresh TURN credentials
/// for the roles that make calls.
pub fn ice_servers(state: &AppState, role: Role, username: &str) -> Vec<IceServer> {
    crate::turn::ice_servers(&state.settings, role, username, state.clock.now_ms())
}

/// The session a socket was opened under: the socket ends with it.
struct Session {
    watch: SessionWatch,
    expires_at: i64,
}

/// What the operator cannot judge alone: a local reference must look like the
/// trust's reference numbers (its characters are checked when decoding),
/// and a directed test call must name a clinician account that exists
/// (else it would wait forever: test calls never escalate).
async fn check_message(state: &AppState, message: &ClientMessage) -> Result<(), ProtocolError> {
    let ClientMessage::RequestConsult {
        patient_ref,
        direct_to,
        ..
    } = message
    else {
        return Ok(());
    };
    if let Some(name) = direct_to {
        let found = match state.store.user_by_username(name).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "cannot look up a test call's clinician");
                return Err(ProtocolError::new(
                    ErrorCode::Unavailable,
                    "the server cannot read its database just now; try again",
                ));
            }
        };
        if !found.is_some_and(|u| u.role == Role::Clinician && !u.disabled) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!("direct_to: there is no clinician account {name:?}; nothing was sent"),
            ));
        }
    }
    if let Some(r) = patient_ref {
        if !r.trim().is_empty() && !state.patient_ref.accepts(r.trim()) {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!(
                    "patient_ref: a local reference is {}; nothing was sent",
                    state.patient_ref.hint()
                ),
            ));
        }
    }
    Ok(())
}

async fn connection(
    socket: WebSocket,
    state: AppState,
    operator: OperatorHandle,
    identity: Identity,
    session: Session,
) {
    let Session {
        watch: mut session,
        expires_at,
    } = session;
    let conn = operator.next_conn_id();
    let user = identity.username.clone();
    let role = identity.role;
    let ice = ice_servers(&state, role, &user);
    let refresh_every = ice_refresh_every(&state);
    let mut refresh = tokio::time::interval(refresh_every.unwrap_or(Duration::from_secs(86_400)));
    refresh.tick().await;
    let (outbox_tx, mut outbox) = mpsc::channel(OUTBOX_CAPACITY);
    let connect = OperatorCommand::Connect {
        conn,
        identity,
        ice_servers: ice,
        outbox: outbox_tx,
    };
    if operator.send(connect).await.is_err() {
        return;
    }
    let _counted = state.leader.stats.metrics.connection(role);
    tracing::debug!(%conn, %user, "connected");
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut rate = RateLimit::new(state.settings.rate_per_second, state.settings.rate_burst);
    // How the connection ends for the switchboard: a blip (held for the
    // grace period) unless the user signed out or lost access.
    let mut farewell = OperatorCommand::Disconnect { conn };
    let expiry = tokio::time::sleep_until(state.clock.instant_at(expires_at));
    tokio::pin!(expiry);
    // This instance may stop leading (another took over, or the database
    // is out of reach): then this connection ends at once, whatever the
    // operator is doing, and the client reconnects to the new leader.
    let mut leadership = state.leader.watch();
    let led_as = *leadership.borrow_and_update();
    loop {
        tokio::select! {
            _ = async { leadership.wait_for(|now| *now != led_as).await.map(|_| ()) } => {
                let err = ProtocolError::new(
                    ErrorCode::Unavailable,
                    "this server is handing over to another; reconnecting shortly",
                );
                let _ = sink.send(Message::Text(ServerMessage::error(err, None).to_json().into())).await;
                let _ = sink
                    .send(Message::Close(Some(CloseFrame { code: 1012, reason: Utf8Bytes::from_static("handing over") })))
                    .await;
                tracing::info!(%conn, %user, "no longer the leader; socket closed");
                break;
            }
            why = session.ended() => {
                if why != Ended::Expired {
                    farewell = OperatorCommand::SignOut { conn };
                }
                sign_out(&mut sink, why).await;
                tracing::info!(%conn, %user, ?why, "session ended; socket closed");
                break;
            }
            () = &mut expiry => {
                sign_out(&mut sink, Ended::Expired).await;
                tracing::info!(%conn, %user, "session expired; socket closed");
                break;
            }
            incoming = stream.next() => {
                last_heard = Instant::now();
                let counted = matches!(incoming, Some(Ok(Message::Text(_) | Message::Binary(_))));
                if counted && !rate.allow() {
                    if rate.strikes >= RATE_STRIKES_TO_CLOSE {
                        tracing::warn!(%conn, %user, "flooding past the rate limit; closing");
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame { code: 1008, reason: Utf8Bytes::from_static("too many messages") })))
                            .await;
                        break;
                    }
                    if rate.tell() {
                        let err = ProtocolError::new(
                            ErrorCode::RateLimited,
                            format!("more than {} messages a second; messages were dropped, slow down", rate.per_second),
                        );
                        if sink.send(Message::Text(ServerMessage::error(err, None).to_json().into())).await.is_err() {
                            break;
                        }
                    }
                    continue;
                }
                let reply = match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let checked = match signalling::decode(text.as_str()) {
                            Ok(message) => {
                                let kind = message.kind();
                                check_message(&state, &message).await.map(|()| message).map_err(|e| e.regarding(kind))
                            }
                            Err(e) => Err(e),
                        };
                        match checked {
                            Ok(message) => {
                                if operator.send(OperatorCommand::Message { conn, message }).await.is_err() {
                                    break;
                                }
                                None
                            }
                            Err(e) => Some(e),
                        }
                    }
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
                    // What else is already queued goes in the same write:
                    // one syscall and one wake-up for a turn's messages.
                    let mut written = sink.feed(Message::Text(text)).await.is_ok();
                    let mut close = None;
                    for _ in 0..WRITE_BATCH {
                        match outbox.try_recv() {
                            Ok(Outbound::Text(text)) if written => {
                                written = sink.feed(Message::Text(text)).await.is_ok();
                            }
                            Ok(Outbound::Close { text, code }) => {
                                close = Some((text, code));
                                break;
                            }
                            _ => break,
                        }
                    }
                    if !written || sink.flush().await.is_err() {
                        break;
                    }
                    if let Some((text, code)) = close {
                        let _ = sink.send(Message::Text(text)).await;
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static("closed by server") })))
                            .await;
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
                // The operator dropped this connection (too slow) or stopped.
                None => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame { code: 1013, reason: Utf8Bytes::from_static("too slow; reconnect") })))
                        .await;
                    break;
                }
            },
            _ = refresh.tick(), if refresh_every.is_some() => {
                let text = ServerMessage::IceServers { ice_servers: ice_servers(&state, role, &user) }.to_json();
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
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
    let _ = operator.send(farewell).await;
    tracing::debug!(%conn, %user, "disconnected");
}

/// Tells the client its session has ended and closes with
/// [`CLOSE_SIGNED_OUT`]; the page then shows the login page.
async fn sign_out<S>(sink: &mut S, why: Ended)
where
    S: SinkExt<Message> + Unpin,
{
    let err = ProtocolError::new(ErrorCode::SignedOut, why.message());
    let _ = sink
        .send(Message::Text(
            ServerMessage::error(err, None).to_json().into(),
        ))
        .await;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CLOSE_SIGNED_OUT,
            reason: Utf8Bytes::from_static("signed out"),
        })))
        .await;
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
