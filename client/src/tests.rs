//! The client against a scripted WebSocket server in the same process.

use super::*;
use signalling::{ErrorCode, UserId};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

fn welcome(username: &str) -> String {
    ServerMessage::Welcome {
        user: UserInfo {
            id: UserId(7),
            username: username.to_owned(),
            display_name: "Millom Room 1".to_owned(),
            site: Some("Millom".to_owned()),
        },
        role: Role::Station,
        ice_servers: vec![],
        protocol_version: 1,
        server_time: 1,
        max_frame_bytes: 65_536,
        limits: signalling::Limits::default(),
    }
    .to_json()
}

/// A signal as a peer might write it: spaces, keys in its own order.
const SIGNAL_DATA: &str = r#"{ "sdp": "v=0", "session" : "probe-1" }"#;

/// Serves `connections` WebSockets at ws://127.0.0.1:PORT/ws, one after
/// the other. Each: the bearer token is checked, `first` is sent, then a
/// ping is answered with a signal and its pong, and a `hang_up` with
/// `error` `signed_out` and close code 4001.
async fn server(connections: usize, first: fn(&str) -> String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut authorised = false;
            // The callback's shape (and its large error type) is tungstenite's.
            #[allow(clippy::result_large_err)]
            let check = |req: &tungstenite::handshake::server::Request, res| {
                authorised = req.headers().get("authorization").map(|v| v.as_bytes())
                    == Some(b"Bearer tok-1".as_slice());
                Ok(res)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check)
                .await
                .unwrap();
            assert!(authorised);
            ws.send(Message::Text(first("room1").into())).await.unwrap();
            while let Some(Ok(Message::Text(text))) = ws.next().await {
                match signalling::decode(text.as_str()).unwrap() {
                    ClientMessage::Ping { nonce } => {
                        let signal =
                            format!(r#"{{"type":"signal","call_id":3,"data":{SIGNAL_DATA}}}"#);
                        ws.send(Message::Text(signal.into())).await.unwrap();
                        let pong = ServerMessage::Pong {
                            nonce,
                            server_time: 2,
                        };
                        ws.send(Message::Text(pong.to_json().into())).await.unwrap();
                    }
                    ClientMessage::HangUp { .. } => {
                        let error = ServerMessage::Error {
                            code: ErrorCode::SignedOut,
                            message: "signed out".into(),
                            in_reply_to: None,
                        };
                        ws.send(Message::Text(error.to_json().into()))
                            .await
                            .unwrap();
                        let frame = CloseFrame {
                            code: CloseCode::from(4001),
                            reason: "signed_out".into(),
                        };
                        let _ = ws.close(Some(frame)).await;
                        break;
                    }
                    _ => {}
                }
            }
        }
    });
    format!("ws://{addr}/ws")
}

#[tokio::test]
async fn connects_sends_and_receives_typed_messages() {
    let url = server(2, welcome).await;
    let mut client = Client::connect(&url, "tok-1").await.unwrap();
    assert_eq!(client.welcome().user.username, "room1");
    assert_eq!(client.welcome().role, Role::Station);

    // The barrier returns what came before its pong; the signal's data is
    // kept byte for byte.
    let before = client.barrier().await.unwrap();
    match before.as_slice() {
        [ServerMessage::Signal { call_id, data }] => {
            assert_eq!(*call_id, CallId(3));
            assert_eq!(data.get(), SIGNAL_DATA);
        }
        other => panic!("{other:?}"),
    }

    client
        .send(&ClientMessage::HangUp { call_id: CallId(3) })
        .await
        .unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        ServerMessage::Error {
            code: ErrorCode::SignedOut,
            ..
        }
    ));
    let closed = client.recv().await.unwrap_err();
    assert_eq!(closed.close_code(), Some(4001));
    assert_eq!(
        closed.to_string(),
        "the server closed the signalling connection (4001: signed_out)"
    );

    // Resume: the same address and token again.
    client.resume().await.unwrap();
    assert_eq!(client.welcome().user.username, "room1");
    assert_eq!(client.barrier().await.unwrap().len(), 1);
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_first_message_must_be_welcome() {
    fn pong(_: &str) -> String {
        ServerMessage::Pong {
            nonce: None,
            server_time: 1,
        }
        .to_json()
    }
    let url = server(1, pong).await;
    let err = Client::connect(&url, "tok-1").await.unwrap_err();
    assert!(matches!(err, Error::NoWelcome(_)), "{err}");
    assert!(err.to_string().contains("\"pong\""), "{err}");
}

#[tokio::test]
async fn split_halves_send_and_receive() {
    let url = server(1, welcome).await;
    let client = Client::connect(&url, "tok-1").await.unwrap();
    let (mut tx, mut rx) = client.split();
    tx.send(&ClientMessage::Ping { nonce: Some(5) })
        .await
        .unwrap();
    assert!(matches!(
        rx.recv().await.unwrap(),
        ServerMessage::Signal { .. }
    ));
    assert!(matches!(
        rx.recv().await.unwrap(),
        ServerMessage::Pong { nonce: Some(5), .. }
    ));
    tx.close().await.unwrap();
}

#[tokio::test]
async fn bad_addresses_and_unreachable_servers_are_errors() {
    let err = Client::connect("http://127.0.0.1:1/ws", "t")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadUrl { .. }), "{err}");
    let err = Client::connect("not a url", "t").await.unwrap_err();
    assert!(matches!(err, Error::BadUrl { .. }), "{err}");
    let err = Client::connect("ws://127.0.0.1:9/ws", "bad\ntoken")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadToken), "{err}");
    // Nothing listens on port 9 (discard) here: refused.
    let err = Client::connect("ws://127.0.0.1:9/ws", "t")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot open the signalling WebSocket ws://127.0.0.1:9/ws: "),
        "{err}"
    );
}

#[test]
fn decodes_what_the_server_writes() {
    // Every kind the server writes reads back, signals with their data as
    // written (the quick path and the general one).
    let quick = format!(r#"{{"type":"signal","call_id":1,"data":{SIGNAL_DATA}}}"#);
    let reordered = format!(r#"{{ "call_id": 1, "data": {SIGNAL_DATA}, "type": "signal" }}"#);
    for text in [quick, reordered] {
        match decode(&text).unwrap() {
            ServerMessage::Signal { call_id, data } => {
                assert_eq!(call_id, CallId(1));
                assert_eq!(data.get(), SIGNAL_DATA);
            }
            other => panic!("{other:?}"),
        }
    }
    let pong = decode(r#"{"type":"pong","nonce":3,"server_time":9,"new_field":true}"#).unwrap();
    assert_eq!(
        pong,
        ServerMessage::Pong {
            nonce: Some(3),
            server_time: 9
        }
    );
    let err = decode(r#"{"type":"launch"}"#).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
    let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(1000));
    // An error shows only the start of what it could not read.
    assert!(decode(&long).unwrap_err().to_string().len() < 600);
}
