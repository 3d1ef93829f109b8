//! One real WebRTC peer (the `webrtc` crate): a VP8 video track that sends
//! the synthetic test card, a receiver for the other side's video, and the
//! probe's data channel. Everything the peer notices is sent to its owner
//! as a [`PeerEvent`]; the owner (the probe's signalling loop) decides what
//! to do with it.

use super::video;
use bytes::{Bytes, BytesMut};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

/// The label of the probe's data channel. The far side echoes every
/// message on it (a `miulink probe --role clinician-only` does; a person's
/// browser may not, and then no round trip is measured).
pub const DATA_CHANNEL_LABEL: &str = "miulink-probe";
const VP8_PAYLOAD_TYPE: u8 = 96;
const OPUS_PAYLOAD_TYPE: u8 = 111;
const ICE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// What the peer noticed, with when.
pub enum PeerEvent {
    LocalCandidate(RTCIceCandidateInit),
    IceConnected(Instant),
    IceFailed,
    /// DTLS is up (the peer connection is `connected`).
    Connected(Instant),
    Failed,
    /// The first RTP packet of the other side's video, and the size of the
    /// key frame it starts, if it starts one.
    FirstVideoPacket(Instant, Option<(u16, u16)>),
    /// Video packets received so far (sent every 15 packets).
    VideoPackets(u64),
    DataChannelOpen(Arc<dyn DataChannel>),
    DataChannelMessage(Instant, Bytes),
    DataChannelClosed,
}

struct Handler {
    events: mpsc::UnboundedSender<PeerEvent>,
    /// The mids of the local description's m-lines, in order.
    mids: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The `a=mid:` of each m-line of an SDP, in order (empty for an m-line
/// without one).
pub fn mids_of(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            mids.push(String::new());
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            if let Some(last) = mids.last_mut() {
                *last = mid.to_owned();
            }
        }
    }
    mids
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(mut init) = event.candidate.to_json() {
            // webrtc-rs leaves sdpMid empty; other stacks want the m-line's
            // mid (with BUNDLE, the first m-line carries the transport).
            if init.sdp_mid.as_deref().is_none_or(str::is_empty) {
                let mids = self.mids.lock().unwrap_or_else(|e| e.into_inner());
                let index = usize::from(init.sdp_mline_index.unwrap_or(0));
                if let Some(mid) = mids.get(index).or(mids.first()).filter(|m| !m.is_empty()) {
                    init.sdp_mid = Some(mid.clone());
                    init.sdp_mline_index.get_or_insert(0);
                }
            }
            let _ = self.events.send(PeerEvent::LocalCandidate(init));
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let event = match state {
            RTCIceConnectionState::Connected => PeerEvent::IceConnected(Instant::now()),
            RTCIceConnectionState::Failed => PeerEvent::IceFailed,
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => PeerEvent::Connected(Instant::now()),
            RTCPeerConnectionState::Failed => PeerEvent::Failed,
            _ => return,
        };
        let _ = self.events.send(event);
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if dc.label().await.ok().as_deref() == Some(DATA_CHANNEL_LABEL) {
            // A channel the other side opened is usable now.
            let _ = self.events.send(PeerEvent::DataChannelOpen(dc.clone()));
            tokio::spawn(poll_data_channel(dc, self.events.clone()));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await == RtpCodecKind::Video {
            tokio::spawn(read_video(track, self.events.clone()));
        } else {
            // A browser sends audio too. Unread, its packets pile up and
            // webrtc-rs logs an error for each one after a few seconds.
            tokio::spawn(drain(track));
        }
    }
}

async fn poll_data_channel(dc: Arc<dyn DataChannel>, events: mpsc::UnboundedSender<PeerEvent>) {
    while let Some(event) = dc.poll().await {
        let sent = match event {
            DataChannelEvent::OnOpen => events.send(PeerEvent::DataChannelOpen(dc.clone())),
            DataChannelEvent::OnMessage(msg) => events.send(PeerEvent::DataChannelMessage(
                Instant::now(),
                msg.data.freeze(),
            )),
            DataChannelEvent::OnClose => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = events.send(PeerEvent::DataChannelClosed);
}

/// Reads and discards a track the probe does not examine (audio).
async fn drain(track: Arc<dyn TrackRemote>) {
    while let Some(event) = track.poll().await {
        if matches!(event, TrackRemoteEvent::OnEnded) {
            break;
        }
    }
}

async fn read_video(track: Arc<dyn TrackRemote>, events: mpsc::UnboundedSender<PeerEvent>) {
    let mut packets = 0u64;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                if packet.payload.is_empty() {
                    continue; // padding
                }
                packets += 1;
                if packets == 1 {
                    let size = video::keyframe_size(&packet.payload);
                    let _ = events.send(PeerEvent::FirstVideoPacket(Instant::now(), size));
                }
                if packets.is_multiple_of(15)
                    && events.send(PeerEvent::VideoPackets(packets)).is_err()
                {
                    break;
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// How to build a peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub ice_servers: Vec<RTCIceServer>,
    /// Local UDP address to gather on. `127.0.0.1:0` for a loopback server;
    /// `0.0.0.0:0` (every interface except loopback) otherwise.
    pub udp_bind: String,
}

/// A peer connection with the probe's video track.
pub struct Peer {
    pc: Arc<dyn PeerConnection>,
    mids: Arc<std::sync::Mutex<Vec<String>>>,
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    video_task: Option<tokio::task::JoinHandle<()>>,
}

impl Peer {
    /// Builds the peer and adds its video track. The answering side takes
    /// the DTLS server role: webrtc-rs as a DTLS client waits for its next
    /// ICE tick before its first handshake flight, so a browser offerer (a
    /// real station) starts the handshake at once; between two probe peers
    /// the shorter ICE tick below bounds that wait.
    pub async fn new(
        config: &PeerConfig,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<Peer, String> {
        let codec = RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        };
        let mut media = MediaEngine::default();
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec.clone(),
                    payload_type: VP8_PAYLOAD_TYPE,
                },
                RtpCodecKind::Video,
            )
            .map_err(|e| format!("registering VP8: {e}"))?;
        // Opus is registered so that the probe accepts a browser's audio
        // (it only receives it): an answer that rejects the offer's first,
        // bundle-tagged m-line is refused by Chromium ("Failed to setup RTCP
        // mux"), which is what a real station offers.
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: MIME_TYPE_OPUS.to_owned(),
                        clock_rate: 48_000,
                        channels: 2,
                        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                        rtcp_feedback: vec![],
                    },
                    payload_type: OPUS_PAYLOAD_TYPE,
                },
                RtpCodecKind::Audio,
            )
            .map_err(|e| format!("registering Opus: {e}"))?;
        let registry = register_default_interceptors(Registry::new(), &mut media)
            .map_err(|e| format!("setting up RTP interceptors: {e}"))?;
        let settings = SettingEngineBuilder::new()
            .with_answering_dtls_role(RTCDtlsRole::Server)
            // The DTLS client's first flight waits for the next ICE tick
            // (200 ms by default); 50 ms is RFC 8445's pacing floor (Ta).
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), None)
            .build();
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(config.ice_servers.clone())
            .build();
        let mids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let pc = PeerConnectionBuilder::new()
            .with_setting_engine(settings)
            .with_configuration(configuration)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                events,
                mids: mids.clone(),
            }))
            .with_udp_addrs(vec![config.udp_bind.clone()])
            .build()
            .await
            .map_err(|e| format!("creating the peer connection on {}: {e}", config.udp_bind))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand::random::<u32>();
        let track = Arc::new(
            TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    "miulink-probe".to_owned(),
                    "miulink-probe-video".to_owned(),
                    "MIU Link probe test card".to_owned(),
                    RtpCodecKind::Video,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                ),
            )
            .map_err(|e| format!("creating the video track: {e}"))?,
        );
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| format!("adding the video track: {e}"))?;
        Ok(Peer {
            pc,
            mids,
            track,
            sender,
            video_task: None,
        })
    }

    /// Creates the probe's data channel (the offerer does, before the offer).
    pub async fn create_data_channel(
        &self,
        events: mpsc::UnboundedSender<PeerEvent>,
    ) -> Result<(), String> {
        let dc = self
            .pc
            .create_data_channel(DATA_CHANNEL_LABEL, None)
            .await
            .map_err(|e| format!("creating the data channel: {e}"))?;
        tokio::spawn(poll_data_channel(dc, events));
        Ok(())
    }

    pub async fn offer(&self) -> Result<RTCSessionDescription, String> {
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|e| format!("creating the offer: {e}"))?;
        self.set_mids(&offer.sdp);
        self.pc
            .set_local_description(offer.clone())
            .await
            .map_err(|e| format!("applying the local offer: {e}"))?;
        Ok(offer)
    }

    /// Applies a remote description; for an offer, returns the answer to send.
    pub async fn remote_description(
        &self,
        desc: RTCSessionDescription,
    ) -> Result<Option<RTCSessionDescription>, String> {
        let is_offer = desc.sdp_type == webrtc::peer_connection::RTCSdpType::Offer;
        self.pc
            .set_remote_description(desc)
            .await
            .map_err(|e| format!("applying the remote description: {e}"))?;
        if !is_offer {
            return Ok(None);
        }
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| format!("creating the answer: {e}"))?;
        self.set_mids(&answer.sdp);
        self.pc
            .set_local_description(answer.clone())
            .await
            .map_err(|e| format!("applying the local answer: {e}"))?;
        Ok(Some(answer))
    }

    fn set_mids(&self, sdp: &str) {
        *self.mids.lock().unwrap_or_else(|e| e.into_inner()) = mids_of(sdp);
    }

    pub async fn add_candidate(&self, candidate: RTCIceCandidateInit) -> Result<(), String> {
        self.pc
            .add_ice_candidate(candidate)
            .await
            .map_err(|e| format!("adding a remote ICE candidate: {e}"))
    }

    /// Starts sending the test card (once connected), at its real frame rate.
    pub async fn start_video(&mut self) -> Result<(), String> {
        if self.video_task.is_some() {
            return Ok(());
        }
        let frames = video::frames()?;
        let payload_type = self
            .sender
            .get_parameters()
            .await
            .map_err(|e| format!("reading the negotiated video codec: {e}"))?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or("the other side accepted no video codec we offered (VP8)")?;
        let ssrc = *self
            .track
            .ssrcs()
            .await
            .first()
            .ok_or("the video track has no SSRC")?;
        let track = Arc::clone(&self.track);
        self.video_task = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(video::FRAME_DURATION);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for frame in frames.iter().cycle() {
                tick.tick().await;
                let sample = Sample {
                    data: frame.clone(),
                    duration: video::FRAME_DURATION,
                    ..Sample::new(Instant::now())
                };
                if track
                    .sample_writer(ssrc, payload_type)
                    .write_sample(&sample)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
        Ok(())
    }

    /// Closes the connection and stops the video.
    pub async fn close(mut self) {
        if let Some(task) = self.video_task.take() {
            task.abort();
            let _ = task.await;
        }
        let _ = self.pc.close().await;
    }
}

/// Sends text on a data channel.
pub async fn send_text(dc: &Arc<dyn DataChannel>, text: &str) -> Result<(), String> {
    dc.send(BytesMut::from(text.as_bytes()))
        .await
        .map_err(|e| format!("sending on the data channel: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mids_are_read_per_m_line() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\nm=audio 9 x 0\r\n";
        assert_eq!(mids_of(sdp), vec!["0", "1", ""]);
    }
}
