//! One side of the probe's call: a task that owns its signalling
//! connection and its WebRTC peer, relays the negotiation, answers the
//! data-channel pings, and reports what happened (with when) to the run.

use super::*;

pub(super) fn peer_config(cfg: &ProbeConfig, client: &Client) -> PeerConfig {
    let ice_servers = client
        .welcome()
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .filter(|s| !s.urls.is_empty())
        .collect();
    let udp_bind = cfg.udp_bind.clone().unwrap_or_else(|| {
        if cfg.server.loopback {
            "127.0.0.1:0".to_owned()
        } else {
            "0.0.0.0:0".to_owned()
        }
    });
    PeerConfig {
        ice_servers,
        udp_bind,
    }
}

pub(super) struct SideSpec {
    pub(super) side: Side,
    pub(super) client: Client,
    pub(super) peer: PeerConfig,
    pub(super) marks: mpsc::UnboundedSender<(Side, Mark)>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    /// The station waits for `completed` (the outcome is in the log).
    pub(super) wait_for_completed: bool,
    /// How long the call may take from `call_start` to its end.
    pub(super) limit: Duration,
}

pub(super) async fn side_task(spec: SideSpec) {
    let side = spec.side;
    let marks = spec.marks.clone();
    let mark = |m| {
        let _ = marks.send((side, m));
    };
    match side_call(spec).await {
        Ok(()) => mark(Mark::Done),
        Err(e) => mark(Mark::Failed(e)),
    }
}

pub(super) async fn side_call(spec: SideSpec) -> Result<()> {
    let SideSpec {
        side,
        mut client,
        peer: peer_cfg,
        marks,
        mut commands,
        wait_for_completed,
        limit,
    } = spec;
    let mark = |m| {
        let _ = marks.send((side, m));
    };
    let deadline = tokio::time::Instant::now() + limit;
    let ((call_id, offerer), _) = wait_for(&mut client, deadline, "call_start", |m| match m {
        ServerMessage::CallStart {
            call_id, offerer, ..
        } => Some((*call_id, *offerer)),
        _ => None,
    })
    .await?;
    mark(Mark::CallStart { call_id });
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut peer = Peer::new(&peer_cfg, events_tx.clone())
        .await
        .map_err(ProbeError::Peer)?;
    let result = call_loop(
        side,
        &mut client,
        &mut peer,
        &mut events,
        events_tx,
        &mut commands,
        &mark,
        CallLoop {
            call_id,
            offerer,
            wait_for_completed,
            deadline,
        },
    )
    .await;
    peer.close().await;
    if let Err(e) = &result {
        // Best effort, so the accounts are left clean for the next run.
        let clean = async {
            if side == Side::Clinician {
                let note = format!("Probe test call failed: {e}");
                let _ = client
                    .send(&record_outcome(call_id, Outcome::TechnicalFailure, note))
                    .await;
            }
            let _ = client.send(&ClientMessage::HangUp { call_id }).await;
            let _ = client.barrier().await;
        };
        let _ = tokio::time::timeout(CLEANUP_WAIT, clean).await;
    }
    let _ = client.close().await;
    result
}

pub(super) struct CallLoop {
    call_id: CallId,
    offerer: bool,
    wait_for_completed: bool,
    deadline: tokio::time::Instant,
}

/// A `signal` about this call, its data carrying the negotiation's
/// `negotiation` (when there is one).
pub(super) fn signal(
    call_id: CallId,
    negotiation: &Option<String>,
    mut data: Value,
) -> ClientMessage {
    if let (Some(s), Some(obj)) = (negotiation, data.as_object_mut()) {
        obj.insert("negotiation".into(), Value::String(s.clone()));
    }
    ClientMessage::Signal {
        call_id,
        data: data.into(),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn call_loop(
    side: Side,
    client: &mut Client,
    peer: &mut Peer,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
    events_tx: mpsc::UnboundedSender<PeerEvent>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    mark: &impl Fn(Mark),
    spec: CallLoop,
) -> Result<()> {
    let CallLoop {
        call_id,
        offerer,
        wait_for_completed,
        deadline,
    } = spec;
    // The browser client names each peer connection's negotiation with a
    // `negotiation` id and ignores signals for any other one: the offerer picks
    // it, the answerer echoes it on everything it sends.
    let mut negotiation: Option<String> =
        offerer.then(|| format!("probe-{:016x}", rand::random::<u64>()));
    if offerer {
        peer.create_data_channel(events_tx)
            .await
            .map_err(ProbeError::Peer)?;
        let offer = peer.offer().await.map_err(ProbeError::Peer)?;
        client
            .send(&signal(
                call_id,
                &negotiation,
                json!({"description": offer}),
            ))
            .await?;
    } else {
        drop(events_tx);
    }
    let mut remote_set = false;
    let mut early_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    // The offerer sends its candidates only once the answer is applied:
    // connectivity checks that reach webrtc-rs before it has the answer
    // fail (a role conflict) and are retried about a second later.
    let mut held_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    let mut channel: Option<Arc<dyn DataChannel>> = None;
    let mut ping_sent: Vec<Instant> = Vec::new();
    let mut rtts: Vec<f64> = Vec::new();
    let mut echo_deadline = far_future();
    let mut outcome = (
        Outcome::TechnicalFailure,
        "Probe test call ended before it completed".to_owned(),
    );
    let mut ended = false;
    let mut first_video: Option<(Instant, Option<(u16, u16)>)> = None;
    loop {
        tokio::select! {
            m = client.recv() => match m? {
                ServerMessage::Signal { call_id: about, data } if about == call_id => {
                    let data: Value = serde_json::from_str(data.get()).unwrap_or_default();
                    if data["description"].is_object() {
                        if !offerer {
                            if let Some(s) = data["negotiation"].as_str() {
                                negotiation = Some(s.to_owned());
                            }
                        }
                        let desc: RTCSessionDescription =
                            serde_json::from_value(data["description"].clone())
                                .map_err(ProbeError::BadDescription)?;
                        if let Some(answer) = peer.remote_description(desc).await.map_err(ProbeError::Peer)? {
                            client.send(&signal(call_id, &negotiation, json!({"description": answer}))).await?;
                        }
                        remote_set = true;
                        for c in early_candidates.drain(..) {
                            peer.add_candidate(c).await.map_err(ProbeError::Peer)?;
                        }
                        for c in held_candidates.drain(..) {
                            client.send(&signal(call_id, &negotiation, json!({"candidate": c}))).await?;
                        }
                    } else if data["candidate"].is_object() {
                        match serde_json::from_value::<RTCIceCandidateInit>(data["candidate"].clone()) {
                            Ok(c) if c.candidate.is_empty() => {} // end of candidates
                            Ok(c) if remote_set => {
                                if let Err(e) = peer.add_candidate(c).await {
                                    mark(Mark::Note(format!("{}: {e}", side.name())));
                                }
                            }
                            Ok(c) => early_candidates.push(c),
                            Err(e) => mark(Mark::Note(format!("ignored a bad candidate: {e}"))),
                        }
                    }
                }
                ServerMessage::CallEnd { reason, .. } => {
                    mark(Mark::CallEnded(Instant::now(), reason));
                    ended = true;
                    if side == Side::Clinician {
                        client.send(&record_outcome(call_id, outcome.0, outcome.1.clone())).await?;
                    } else if !wait_for_completed {
                        return Ok(());
                    }
                }
                ServerMessage::OutcomeRecorded { .. } if side == Side::Clinician && ended => return Ok(()),
                ServerMessage::RequestUpdate { state: RequestState::Completed, .. }
                    if side == Side::Station && ended => return Ok(()),
                ServerMessage::Pong { nonce: Some(CONNECTED_NONCE), .. } => {
                    if let Some((at, size)) = first_video {
                        mark(Mark::FirstVideo(at, size));
                    }
                }
                ServerMessage::PeerStatus { connected: false, .. } => {
                    mark(Mark::Note(format!("the other side's signalling connection dropped during call {call_id}")));
                }
                ServerMessage::Error { code: ErrorCode::UnknownCall | ErrorCode::NotInCall, in_reply_to, .. }
                    if matches!(in_reply_to.as_deref(), Some("hang_up" | "call_connected")) => {
                    // The other side hung up at the same moment: the
                    // call is over either way, and call_end follows.
                }
                ServerMessage::Error { message, in_reply_to, .. } => {
                    return Err(refused(&in_reply_to, &message, None));
                }
                _ => {}
            },
            Some(ev) = events.recv() => match ev {
                PeerEvent::LocalCandidate(c) => {
                    if offerer && !remote_set {
                        held_candidates.push(c);
                    } else {
                        client.send(&signal(call_id, &negotiation, json!({"candidate": c}))).await?;
                    }
                }
                PeerEvent::IceConnected(at) => mark(Mark::IceConnected(at)),
                PeerEvent::Connected(at) => {
                    mark(Mark::DtlsConnected(at));
                    peer.start_video().await.map_err(ProbeError::Peer)?;
                    if !offerer && channel.is_none() {
                        // The answerer only learns of a probe data channel
                        // if the offerer opened one (a browser does not).
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                    }
                }
                PeerEvent::IceFailed => return Err(ProbeError::IceFailed),
                PeerEvent::Failed => return Err(ProbeError::PeerFailed),
                PeerEvent::FirstVideoPacket(at, size) => {
                    if first_video.is_none() {
                        // Tell the server media is flowing, and report the
                        // packet only once the server has handled that (its
                        // pong follows): the other side may hang up as soon
                        // as it hears of it.
                        first_video = Some((at, size));
                        client.send(&ClientMessage::CallConnected { call_id }).await?;
                        client.send(&ClientMessage::Ping { nonce: Some(CONNECTED_NONCE) }).await?;
                    }
                }
                PeerEvent::VideoPackets(n) => mark(Mark::VideoPackets(n)),
                PeerEvent::DataChannelOpen(dc) => {
                    if channel.is_none() {
                        // Both sides ping and both answer pings, so each
                        // can time the round trip itself.
                        peer::send_text(&dc, &json!({"probe_ping": 0}).to_string()).await.map_err(ProbeError::Peer)?;
                        ping_sent.push(Instant::now());
                        echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                        channel = Some(dc);
                    }
                }
                PeerEvent::DataChannelMessage(at, data) => {
                    let Some(dc) = &channel else { continue };
                    let message = serde_json::from_slice::<Value>(&data).unwrap_or_default();
                    if let Some(n) = message["probe_ping"].as_u64() {
                        peer::send_text(dc, &json!({"probe_pong": n}).to_string()).await.map_err(ProbeError::Peer)?;
                        continue;
                    }
                    let seq = message["probe_pong"].as_u64()
                        .and_then(|s| usize::try_from(s).ok());
                    if let Some(sent) = seq.and_then(|s| ping_sent.get(s).copied()) {
                        if seq == Some(rtts.len()) {
                            rtts.push(ms(at - sent));
                            if rtts.len() == PINGS {
                                mark(Mark::Rtt(rtts.clone()));
                                echo_deadline = far_future();
                            } else {
                                peer::send_text(dc, &json!({"probe_ping": rtts.len()}).to_string()).await.map_err(ProbeError::Peer)?;
                                ping_sent.push(Instant::now());
                                echo_deadline = tokio::time::Instant::now() + ECHO_WAIT;
                            }
                        }
                    }
                }
                PeerEvent::DataChannelClosed => {}
            },
            Some(cmd) = commands.recv() => match cmd {
                Command::Outcome(o, note) => outcome = (o, note),
                Command::HangUp => {
                    client.send(&ClientMessage::HangUp { call_id }).await?;
                    mark(Mark::HangUpSent(Instant::now()));
                }
            },
            _ = tokio::time::sleep_until(echo_deadline) => {
                echo_deadline = far_future();
                mark(Mark::RttUnavailable(if offerer {
                    format!("no echo on the {} data channel within {} s (a browser client does not echo)",
                        peer::DATA_CHANNEL_LABEL, ECHO_WAIT.as_secs())
                } else {
                    format!("the other side opened no {} data channel (a browser client does not)",
                        peer::DATA_CHANNEL_LABEL)
                }));
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(if ended {
                    ProbeError::EndNotConfirmed
                } else {
                    ProbeError::CallNotUp
                });
            }
        }
    }
}
