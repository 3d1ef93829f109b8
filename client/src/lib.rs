//! A typed client of MIU Link, as a program talks to it: `POST /api/login`
//! for a session token ([`login`]), then the signalling WebSocket with
//! `Authorization: Bearer` ([`Client`]), sending [`ClientMessage`]s and
//! receiving [`ServerMessage`]s: the `signalling` crate's own types, so a
//! client cannot drift from the server.
//!
//! TLS (`https`, `wss`) is rustls with the machine's trusted roots, or a
//! [`rustls::ClientConfig`] of the caller's ([`Options::tls`], for tests
//! with a certificate authority of their own).
//!
//! Used by `miulink probe`, the benchmarks and the tests. It has no
//! timeouts of its own (wrap a call in `tokio::time::timeout`), and nothing
//! the network or the server does makes it panic: every failure is an
//! [`Error`] that says what happened.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use signalling::{CallId, IceServer, Millis, Role, SignalData, UserInfo};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{header::AUTHORIZATION, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub use signalling::{ClientMessage, ServerMessage};
/// The WebSocket library, for callers of [`Client::websocket`].
pub use tokio_tungstenite::tungstenite;

/// The WebSocket underneath a [`Client`] (see [`Client::websocket`]).
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Nonces of [`Client::barrier`] pings count up from here, so they never
/// meet the small nonces a caller picks for pings of its own.
const FIRST_BARRIER_NONCE: u64 = 1 << 32;
/// How much of an unreadable message an [`Error`] shows.
const SHOWN_CHARS: usize = 200;

/// Everything that can go wrong, saying what happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The login request got no HTTP answer (DNS, TCP, TLS, a timeout of
    /// the `reqwest::Client`).
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered the login with an error status: `code` and
    /// `message` are its `{"error", "message"}`.
    #[error("login as {username:?} refused ({status}): {message}")]
    LoginRefused {
        username: String,
        status: reqwest::StatusCode,
        code: Option<String>,
        message: String,
    },
    /// A successful login without a token (not a MIU Link server?).
    #[error("login as {username:?}: the server sent no token")]
    NoToken { username: String },
    /// A successful login whose answer does not describe an account.
    #[error("login as {username:?}: the server's answer does not describe an account ({reason})")]
    BadLoginAnswer { username: String, reason: String },
    /// The WebSocket address is not a `ws://` or `wss://` URL with a host.
    #[error("bad WebSocket address {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The token cannot go in an HTTP header.
    #[error("the session token is not a valid header value")]
    BadToken,
    /// The WebSocket could not be opened: no TCP connection, TLS refused,
    /// or the upgrade answered with an HTTP error (401 without a live
    /// session, 503 on a standby).
    #[error("cannot open the signalling WebSocket {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// The first message was not `welcome` (it is shown as JSON).
    #[error("expected welcome first, got {0}")]
    NoWelcome(String),
    /// A message could not be written as JSON (it cannot happen with the
    /// protocol's types, but is not assumed).
    #[error("cannot encode a {kind} message: {reason}")]
    Encode { kind: &'static str, reason: String },
    /// The connection failed while sending.
    #[error("signalling connection lost while sending: {0}")]
    Send(#[source] Box<tungstenite::Error>),
    /// The server sent something that is not a [`ServerMessage`].
    #[error(
        "the server sent something that is not a protocol message ({}): {}",
        shown(reason),
        shown(text)
    )]
    Malformed { text: String, reason: String },
    /// The server closed the connection, with its close frame's code and
    /// reason if it sent one (4000 replaced, 4001 signed out, 1012
    /// restarting: see PROTOCOL.md).
    #[error("{}", closed_text(*code, reason))]
    Closed { code: Option<u16>, reason: String },
    /// The connection failed while receiving.
    #[error("signalling connection failed: {0}")]
    Connection(#[source] Box<tungstenite::Error>),
    /// The connection ended without a close frame.
    #[error("the signalling connection ended")]
    Ended,
}

fn shown(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn closed_text(code: Option<u16>, reason: &str) -> String {
    match code {
        Some(code) => format!("the server closed the signalling connection ({code}: {reason})"),
        None => "the server closed the signalling connection".to_owned(),
    }
}

impl Error {
    /// The close code, when the server closed the connection with one.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::Closed { code, .. } => *code,
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

/// What `POST /api/login` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// For `Authorization: Bearer` (HTTP API and WebSocket).
    pub token: String,
    pub account: Account,
}

/// The account signed in, as the login answer describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(default)]
    pub site: Option<String>,
    /// When the session ends (UTC milliseconds).
    pub expires_at: Millis,
    /// The account owes a new password: everything else is refused.
    #[serde(default)]
    pub must_change_password: bool,
}

/// Logs in at `base` (e.g. `https://miulink.example.nhs.uk`) with
/// `want_token`. The `http` client carries its own timeout and TLS roots.
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<Login, Error> {
    #[derive(Serialize)]
    struct Body<'a> {
        username: &'a str,
        password: &'a str,
        want_token: bool,
    }
    let base = base.trim_end_matches('/');
    let res = http
        .post(format!("{base}/api/login"))
        .json(&Body {
            username,
            password,
            want_token: true,
        })
        .send()
        .await
        .map_err(|source| Error::Unreachable {
            url: base.to_owned(),
            source,
        })?;
    let status = res.status();
    // A body that is not JSON reads as null: the status says enough.
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_owned);
        return Err(Error::LoginRefused {
            username: username.to_owned(),
            status,
            code: text("error"),
            message: text("message").unwrap_or_else(|| "no message".to_owned()),
        });
    }
    let Some(token) = body.get("token").and_then(Value::as_str) else {
        return Err(Error::NoToken {
            username: username.to_owned(),
        });
    };
    let account = Account::deserialize(&body).map_err(|e| Error::BadLoginAnswer {
        username: username.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Login {
        token: token.to_owned(),
        account,
    })
}

// ---------------------------------------------------------------------------
// The signalling WebSocket
// ---------------------------------------------------------------------------

/// How to reach the server, beyond its address and the token.
#[derive(Debug, Clone, Default)]
pub struct Options {
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_to: Option<SocketAddr>,
    bind: Option<IpAddr>,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }

    /// Use this TLS configuration for `wss://` instead of the machine's
    /// trusted roots (a test's own certificate authority).
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Options {
        self.tls = Some(config);
        self
    }

    /// Connect to this address instead of looking up the URL's host (as
    /// `curl --resolve`); TLS still checks the certificate against the
    /// URL's host.
    pub fn connect_to(mut self, addr: SocketAddr) -> Options {
        self.connect_to = Some(addr);
        self
    }

    /// Connect from this local address (a load generator spreading its
    /// connections over many source addresses).
    pub fn bind(mut self, source: IpAddr) -> Options {
        self.bind = Some(source);
        self
    }
}

/// The server's `welcome`, the first message on every connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    pub user: UserInfo,
    pub role: Role,
    pub ice_servers: Vec<IceServer>,
    pub protocol_version: u32,
    pub server_time: Millis,
    pub max_frame_bytes: usize,
    /// What the server accepts (see `signalling::Limits`).
    pub limits: signalling::Limits,
}

impl From<Welcome> for ServerMessage {
    fn from(w: Welcome) -> ServerMessage {
        ServerMessage::Welcome {
            user: w.user,
            role: w.role,
            ice_servers: w.ice_servers,
            protocol_version: w.protocol_version,
            server_time: w.server_time,
            max_frame_bytes: w.max_frame_bytes,
            limits: w.limits,
        }
    }
}

/// One signalling connection, past its `welcome`.
///
/// [`Client::recv`] is cancel-safe (a message is either returned or left
/// unread), so it can be one branch of a `tokio::select!`.
pub struct Client {
    ws: WebSocket,
    url: String,
    token: String,
    options: Options,
    welcome: Welcome,
    next_nonce: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("user", &self.welcome.user.username)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the signalling WebSocket at `url` (`ws://` or `wss://`, e.g.
    /// `wss://miulink.example.nhs.uk/ws`) with `token`, and reads its
    /// `welcome`.
    pub async fn connect(url: &str, token: &str) -> Result<Client, Error> {
        Client::connect_with(url, token, Options::default()).await
    }

    /// As [`Client::connect`], with [`Options`].
    pub async fn connect_with(url: &str, token: &str, options: Options) -> Result<Client, Error> {
        let (ws, welcome) = open(url, token, &options).await?;
        Ok(Client {
            ws,
            url: url.to_owned(),
            token: token.to_owned(),
            options,
            welcome,
            next_nonce: FIRST_BARRIER_NONCE,
        })
    }

    /// The `welcome` of the current connection.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        send(&mut self.ws, message).await
    }

    /// The next message from the server (WebSocket pings are answered and
    /// skipped). A close ends in [`Error::Closed`].
    pub async fn recv(&mut self) -> Result<ServerMessage, Error> {
        recv(&mut self.ws).await
    }

    /// Sends a `ping` and returns every message that arrived before its
    /// `pong`. The server handles one input at a time, so that is all it
    /// had queued for this connection when the ping arrived: after a
    /// (re)connect, the whole state of the account.
    pub async fn barrier(&mut self) -> Result<Vec<ServerMessage>, Error> {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.send(&ClientMessage::Ping { nonce: Some(nonce) })
            .await?;
        let mut before = Vec::new();
        loop {
            match self.recv().await? {
                ServerMessage::Pong { nonce: Some(n), .. } if n == nonce => return Ok(before),
                other => before.push(other),
            }
        }
    }

    /// Connects again with the same address, token and options (after a
    /// lost connection or a server restart) and reads the new `welcome`;
    /// what the account was doing follows as after any reconnect. The old
    /// socket is dropped without a close handshake, as a network blip
    /// would; if it was still open, the new connection replaces it.
    pub async fn resume(&mut self) -> Result<(), Error> {
        let (ws, welcome) = open(&self.url, &self.token, &self.options).await?;
        self.ws = ws;
        self.welcome = welcome;
        Ok(())
    }

    /// Closes the connection with a close frame.
    pub async fn close(mut self) -> Result<(), Error> {
        close(&mut self.ws).await
    }

    /// Two halves, for a reader and a writer in different tasks.
    pub fn split(self) -> (Sender, Receiver) {
        let (sink, stream) = self.ws.split();
        (Sender(sink), Receiver(stream))
    }

    /// The WebSocket itself, for tests of the wire (frames that are not
    /// protocol messages). Anything read from it here is not seen by
    /// [`Client::recv`].
    pub fn websocket(&mut self) -> &mut WebSocket {
        &mut self.ws
    }
}

/// The sending half of a [`Client`].
pub struct Sender(SplitSink<WebSocket, Message>);

impl Sender {
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), Error> {
        send(&mut self.0, message).await
    }

    /// Closes the connection with a close frame.
    pub async fn close(mut self) -> Result<(), Error> {
        match self.0.close().await {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Ok(())
            }
            Err(e) => Err(Error::Send(Box::new(e))),
        }
    }
}

/// The receiving half of a [`Client`].
pub struct Receiver(SplitStream<WebSocket>);

impl Receiver {
    /// As [`Client::recv`].
    pub async fn recv(&mut self) -> Result<ServerMessage, Error> {
        recv(&mut self.0).await
    }
}

async fn open(url: &str, token: &str, options: &Options) -> Result<(WebSocket, Welcome), Error> {
    let bad_url = |reason: String| Error::BadUrl {
        url: url.to_owned(),
        reason,
    };
    let mut request = url
        .into_client_request()
        .map_err(|e| bad_url(e.to_string()))?;
    if !matches!(request.uri().scheme_str(), Some("ws" | "wss")) {
        return Err(bad_url("the scheme must be ws:// or wss://".to_owned()));
    }
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::BadToken)?;
    request.headers_mut().insert(AUTHORIZATION, auth);
    let failed = |source| Error::Connect {
        url: url.to_owned(),
        source: Box::new(source),
    };
    let tcp = tcp(&request, options)
        .await
        .map_err(|e| failed(tungstenite::Error::Io(e)))?;
    let connector = options.tls.clone().map(Connector::Rustls);
    let (mut ws, _) =
        tokio_tungstenite::client_async_tls_with_config(request, tcp, None, connector)
            .await
            .map_err(failed)?;
    match recv(&mut ws).await? {
        ServerMessage::Welcome {
            user,
            role,
            ice_servers,
            protocol_version,
            server_time,
            max_frame_bytes,
            limits,
        } => Ok((
            ws,
            Welcome {
                user,
                role,
                ice_servers,
                protocol_version,
                server_time,
                max_frame_bytes,
                limits,
            },
        )),
        other => Err(Error::NoWelcome(json_text(&other))),
    }
}

/// The TCP connection for `request`, with Nagle's algorithm off (signals
/// are small and latency counts).
async fn tcp(request: &Request, options: &Options) -> std::io::Result<TcpStream> {
    use std::io::{Error as IoError, ErrorKind};
    let uri = request.uri();
    let targets: Vec<SocketAddr> = match options.connect_to {
        Some(addr) => vec![addr],
        None => {
            let host = uri
                .host()
                .ok_or_else(|| IoError::new(ErrorKind::InvalidInput, "the address has no host"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                Some("wss") => 443,
                _ => 80,
            });
            tokio::net::lookup_host((host, port)).await?.collect()
        }
    };
    let mut last = IoError::new(ErrorKind::NotFound, "the host has no address");
    for target in targets {
        let attempt = async {
            let stream = match options.bind {
                None => TcpStream::connect(target).await?,
                Some(source) => {
                    let socket = match target {
                        SocketAddr::V4(_) => TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => TcpSocket::new_v6()?,
                    };
                    socket.bind(SocketAddr::new(source, 0))?;
                    socket.connect(target).await?
                }
            };
            stream.set_nodelay(true)?;
            Ok::<_, IoError>(stream)
        };
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn send<S>(sink: &mut S, message: &ClientMessage) -> Result<(), Error>
where
    S: Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(message).map_err(|e| Error::Encode {
        kind: message.kind(),
        reason: e.to_string(),
    })?;
    sink.send(Message::Text(text.into()))
        .await
        .map_err(|e| Error::Send(Box::new(e)))
}

async fn recv<S>(stream: &mut S) -> Result<ServerMessage, Error>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    loop {
        // Nothing is awaited once a frame is taken: cancel-safe.
        match stream.next().await {
            Some(Ok(Message::Text(text))) => return decode(text.as_str()),
            Some(Ok(Message::Binary(bytes))) => {
                return Err(Error::Malformed {
                    text: format!("({} bytes)", bytes.len()),
                    reason: "a binary frame; the protocol is JSON text".to_owned(),
                })
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(f) => Error::Closed {
                        code: Some(u16::from(f.code)),
                        reason: f.reason.to_string(),
                    },
                    None => Error::Closed {
                        code: None,
                        reason: String::new(),
                    },
                })
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Err(e)) => return Err(Error::Connection(Box::new(e))),
            None => return Err(Error::Ended),
        }
    }
}

async fn close(ws: &mut WebSocket) -> Result<(), Error> {
    match ws.close(None).await {
        Ok(()) | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            Ok(())
        }
        Err(e) => Err(Error::Send(Box::new(e))),
    }
}

/// Reads one text frame from the server.
///
/// A relayed `signal` keeps its `data` as the sender wrote it (a raw JSON
/// value), which serde cannot read inside the internally tagged
/// [`ServerMessage`]: it is read on its own, first when the frame starts
/// as the server writes one, otherwise after the general reading fails.
pub fn decode(text: &str) -> Result<ServerMessage, Error> {
    if text.starts_with(r#"{"type":"signal","#) {
        if let Ok(signal) = decode_signal(text) {
            return Ok(signal);
        }
    }
    serde_json::from_str::<ServerMessage>(text).or_else(|e| {
        decode_signal(text).map_err(|_| Error::Malformed {
            text: text.to_owned(),
            reason: e.to_string(),
        })
    })
}

fn decode_signal(text: &str) -> Result<ServerMessage, serde_json::Error> {
    #[derive(Deserialize)]
    struct SignalFrame<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        call_id: CallId,
        data: SignalData,
    }
    let frame: SignalFrame = serde_json::from_str(text)?;
    if frame.kind != "signal" {
        return Err(serde::de::Error::custom("not a signal"));
    }
    Ok(ServerMessage::Signal {
        call_id: frame.call_id,
        data: frame.data,
    })
}

/// A message as JSON text, for error messages.
fn json_text(message: &ServerMessage) -> String {
    serde_json::to_string(message).unwrap_or_else(|_| format!("{message:?}"))
}

#[cfg(test)]
mod tests;
