// One WebRTC call: the peer connection, its negotiation over `signal`, the
// chat data channel, and the checks that media really flows.
//
// Negotiation. The station is the offerer. Each peer connection gets a
// `session` id that travels with every description and candidate, so a
// fresh negotiation (after a page reload, a lost connection, or a failed
// one) cleanly replaces the old peer connection on both sides and stray
// candidates of an old one are dropped. The answerer asks for a fresh offer
// with `{want_offer: true}` when it has lost its peer connection.
//
// Where a later ICE restart fits: `restart()` is the single place that
// starts a new negotiation; an ICE restart on the same peer connection
// would be another branch there (createOffer({iceRestart: true})).

const STATS_FAST_MS = 100;
/** A prepared offer older than this is made afresh (its candidates may be stale). */
const PREPARED_MAX_AGE_MS = 5 * 60_000;
const STATS_SLOW_MS = 2000;
const RESTART_MIN_GAP_MS = 4000;

function newSessionId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class Call {
  /**
   * @param {object} o
   * @param {import('./socket.js').Signalling} o.socket
   * @param {boolean} o.offerer
   * @param {RTCIceServer[]} o.iceServers
   * @param {Promise<{stream: MediaStream, hasVideo: boolean, hasAudio: boolean}>} o.media
   * @param {(event: string, detail?: any) => void} o.onEvent
   */
  constructor({ socket, offerer, iceServers, media, onEvent }) {
    this.socket = socket;
    /** Set by start(): a call may be prepared before it exists. */
    this.callId = null;
    this.offerer = offerer;
    this.iceServers = iceServers || [];
    this.onEvent = onEvent;
    this.local = null;
    this.media = media.then((m) => {
      this.local = m;
      return m;
    });
    this.pc = null;
    this.dc = null;
    this.session = null;
    this.outbox = [];
    this.descriptionSent = false;
    this.inbox = Promise.resolve();
    this.remoteStream = new MediaStream();
    this.mediaFlowing = false;
    this.connectedSent = false;
    this.closed = false;
    this.lastRestart = 0;
    this.statsTimer = null;
    this.micOn = true;
    this.cameraOn = true;
    this.videoTransceiver = null;
    this.trace = [];
    this.prepared = null;
    this.preparedAt = 0;
    this.spare = null;
  }

  /** Timings of this call's set-up (for support and the set-up benchmark). */
  mark(what) {
    this.trace.push([what, Math.round(performance.timeOrigin + performance.now())]);
  }

  emit(event, detail) {
    try {
      this.onEvent(event, detail);
    } catch (e) {
      console.error(`call event ${event} failed`, e);
    }
  }

  /**
   * Gets ready before the call exists, so that set-up starts the moment the
   * call does. The offerer (the waiting station) makes its offer and
   * gathers candidates now; the answerer (a clinician who pressed Answer)
   * creates its peer connection. Nothing is sent until `start()`.
   */
  prepare() {
    if (this.offerer) {
      this.preparedAt = Date.now();
      this.prepared = this.restart('prepared in advance', { send: false });
    } else if (!this.spare) {
      this.spare = this.makePeerConnection();
    }
  }

  /** First negotiation. `resumed`: this page lost an earlier one. */
  async start({ callId, resumed = false }) {
    this.callId = callId;
    this.pollStats();
    if (this.offerer) {
      const prepared = this.prepared;
      this.prepared = null;
      if (prepared) {
        const pc = await prepared;
        const fresh = Date.now() - this.preparedAt < PREPARED_MAX_AGE_MS;
        if (pc && pc === this.pc && fresh && pc.connectionState === 'new' && pc.localDescription) {
          this.sendDescription(pc);
          return;
        }
      }
      this.restart('start');
    } else if (resumed) {
      this.askForOffer();
    }
  }

  /** Is the current peer connection still worth keeping? */
  get healthy() {
    return !!this.pc && ['new', 'connecting', 'connected'].includes(this.pc.connectionState);
  }

  /** The other side is back on the signalling server. */
  peerReturned() {
    if (this.healthy && this.pc.connectionState === 'connected') return;
    if (this.offerer) this.restart('peer returned');
    else this.askForOffer();
  }

  askForOffer() {
    this.sendSignal({ want_offer: true });
  }

  /**
   * Starts a fresh negotiation with a new peer connection (offerer only).
   * With `send: false` the offer is made but kept until `start()`.
   * Resolves to the new peer connection.
   */
  async restart(why, { send = true } = {}) {
    if (this.closed || !this.offerer) return null;
    this.lastRestart = Date.now();
    console.info(`call ${this.callId ?? '(not started yet)'}: new negotiation (${why})`);
    const pc = this.newPeer(newSessionId());
    this.mark('offer-start');
    // Both directions are negotiated straight away, before the camera is
    // open: the connection is set up while the camera starts, and the
    // tracks are attached without renegotiating when they are ready.
    pc.addTransceiver('audio', { direction: 'sendrecv' });
    this.videoTransceiver = pc.addTransceiver('video', { direction: 'sendrecv' });
    this.attachLocal(pc);
    try {
      const offer = await pc.createOffer();
      if (pc !== this.pc) return null;
      await pc.setLocalDescription(offer);
      if (pc !== this.pc) return null;
      if (send) this.sendDescription(pc);
      return pc;
    } catch (e) {
      this.emit('error', `The call could not be set up: ${e.message}`);
      return null;
    }
  }

  /** Sends the local camera and microphone on `pc` once they are open. */
  async attachLocal(pc) {
    const local = await this.media;
    if (pc !== this.pc || this.closed) return;
    this.mark('local-media');
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      const track = local.stream.getTracks().find((t) => t.kind === kind);
      if (track && transceiver.sender.track !== track) {
        try {
          await transceiver.sender.replaceTrack(track);
        } catch (e) {
          console.warn(`could not send the local ${kind}`, e);
        }
      }
    }
  }

  makePeerConnection() {
    // A candidate pool makes the browser gather candidates as soon as the
    // peer connection exists, before it has a description: the answerer's
    // candidates are then ready the moment it answers.
    return new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle', iceCandidatePoolSize: 1 });
  }

  /** Makes `pc` (or a new peer connection) this call's, for `session`. */
  newPeer(session, made = null) {
    if (this.pc) this.pc.close();
    if (this.dc) this.dc.close();
    this.session = session;
    this.outbox = [];
    this.descriptionSent = false;
    this.remoteStream = new MediaStream();
    this.emit('remote-stream', this.remoteStream);
    const pc = made || this.makePeerConnection();
    this.pc = pc;
    pc.addEventListener('icecandidate', (e) => {
      if (pc !== this.pc || !e.candidate) return;
      this.mark(`candidate-${e.candidate.type}-${e.candidate.address && e.candidate.address.endsWith('.local') ? 'mdns' : 'ip'}`);
      const data = { session, candidate: e.candidate.toJSON() };
      if (this.descriptionSent) this.sendSignal(data);
      else this.outbox.push(data);
    });
    pc.addEventListener('track', (e) => {
      if (pc !== this.pc) return;
      this.remoteStream.addTrack(e.track);
      this.emit('remote-track', e.track);
    });
    pc.addEventListener('iceconnectionstatechange', () => {
      if (pc === this.pc) this.mark(`ice-${pc.iceConnectionState}`);
    });
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc === this.pc) this.mark(`gathering-${pc.iceGatheringState}`);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== this.pc) return;
      this.mark(`pc-${pc.connectionState}`);
      this.emit('connection', pc.connectionState);
      if (pc.connectionState === 'failed') this.recover();
    });
    // The chat channel is negotiated (same id on both sides), so it exists
    // as soon as the peer connection does, whoever made the offer.
    const dc = pc.createDataChannel('chat', { negotiated: true, id: 0, ordered: true });
    this.dc = dc;
    dc.addEventListener('open', () => {
      if (dc !== this.dc) return;
      this.emit('chat-open', true);
      this.sendMediaState();
    });
    dc.addEventListener('close', () => {
      if (dc === this.dc) this.emit('chat-open', false);
    });
    dc.addEventListener('message', (e) => this.onChannelMessage(e.data));
    this.emit('connection', pc.connectionState);
    return pc;
  }

  recover() {
    if (this.closed) return;
    const wait = Math.max(0, this.lastRestart + RESTART_MIN_GAP_MS - Date.now());
    window.setTimeout(() => {
      if (this.closed || (this.pc && this.pc.connectionState !== 'failed')) return;
      this.lastRestart = Date.now();
      if (this.offerer) this.restart('connection failed');
      else this.askForOffer();
    }, wait);
  }

  sendDescription(pc) {
    this.mark(`sent-${pc.localDescription.type}`);
    this.sendSignal({ session: this.session, description: pc.localDescription.toJSON() });
    this.descriptionSent = true;
    for (const data of this.outbox) this.sendSignal(data);
    this.outbox = [];
  }

  sendSignal(data) {
    if (this.callId === null) return;
    this.socket.send({ type: 'signal', call_id: this.callId, data });
  }

  /** A relayed `signal`. Handled strictly in arrival order. */
  handleSignal(data) {
    if (data && data.description) this.mark(`recv-${data.description.type}`);
    this.inbox = this.inbox.then(() => this.applySignal(data)).catch((e) => {
      console.error('signal could not be applied', e, data);
    });
    return this.inbox;
  }

  async applySignal(data) {
    if (this.closed || !data || typeof data !== 'object') return;
    if (data.want_offer) {
      if (this.offerer) await this.restart('peer asked for an offer');
      return;
    }
    if (data.description) {
      const description = data.description;
      this.mark(`got-${description.type}`);
      if (description.type === 'offer' && !this.offerer) {
        await this.answer(data.session, description);
      } else if (description.type === 'answer' && this.offerer) {
        if (data.session !== this.session || !this.pc) return;
        if (this.pc.signalingState !== 'have-local-offer') return;
        await this.pc.setRemoteDescription(description);
      }
      return;
    }
    if (data.candidate) {
      if (data.session !== this.session || !this.pc) return;
      try {
        await this.pc.addIceCandidate(data.candidate);
      } catch (e) {
        console.warn('a remote ICE candidate was refused', e);
      }
    }
  }

  async answer(session, offer) {
    // The peer connection made in advance, if it is still unused.
    const spare = this.spare;
    this.spare = null;
    const pc = this.newPeer(session, spare);
    await pc.setRemoteDescription(offer);
    if (pc !== this.pc || this.closed) return;
    for (const transceiver of pc.getTransceivers()) {
      transceiver.direction = 'sendrecv';
      if (transceiver.receiver.track.kind === 'video') this.videoTransceiver = transceiver;
    }
    // Answer at once; the camera is attached when it is open (attachLocal).
    this.attachLocal(pc);
    const answer = await pc.createAnswer();
    if (pc !== this.pc) return;
    await pc.setLocalDescription(answer);
    if (pc !== this.pc) return;
    this.sendDescription(pc);
  }

  onChannelMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message.t === 'chat' && typeof message.text === 'string') {
      this.emit('chat', { text: message.text.slice(0, 1000), mine: false, at: Date.now() });
    } else if (message.t === 'media') {
      this.emit('peer-media', { mic: message.mic !== false, camera: message.camera !== false });
    }
  }

  get chatOpen() {
    return !!this.dc && this.dc.readyState === 'open';
  }

  sendChat(text) {
    if (!this.chatOpen) return false;
    this.dc.send(JSON.stringify({ t: 'chat', text }));
    this.emit('chat', { text, mine: true, at: Date.now() });
    return true;
  }

  sendMediaState() {
    if (!this.chatOpen) return;
    const hasVideo = !!(this.local && this.local.hasVideo);
    this.dc.send(JSON.stringify({ t: 'media', mic: this.micOn, camera: this.cameraOn && hasVideo }));
  }

  setMic(on) {
    this.micOn = on;
    if (this.local) for (const t of this.local.stream.getAudioTracks()) t.enabled = on;
    this.sendMediaState();
  }

  setCamera(on) {
    this.cameraOn = on;
    if (this.local) for (const t of this.local.stream.getVideoTracks()) t.enabled = on;
    this.sendMediaState();
  }

  /** Sends this camera track instead of the current one. */
  async replaceVideoTrack(track) {
    const stream = this.local.stream;
    for (const old of stream.getVideoTracks()) {
      stream.removeTrack(old);
      old.stop();
    }
    track.enabled = this.cameraOn;
    stream.addTrack(track);
    if (this.videoTransceiver) await this.videoTransceiver.sender.replaceTrack(track);
  }

  /** Polls getStats: tells the server once media flows, then reports quality. */
  pollStats() {
    const tick = async () => {
      if (this.closed) return;
      const pc = this.pc;
      let next = this.mediaFlowing ? STATS_SLOW_MS : STATS_FAST_MS;
      if (pc) {
        try {
          const figures = await readStats(pc);
          if (!this.mediaFlowing && pc.connectionState === 'connected' && figures.bytesReceived > 0) {
            this.mediaFlowing = true;
            this.mark('media-flowing');
            next = STATS_SLOW_MS;
            this.emit('media-flowing');
          }
          if (this.mediaFlowing && !this.connectedSent) {
            this.connectedSent = this.socket.send({ type: 'call_connected', call_id: this.callId });
          }
          this.emit('stats', figures);
        } catch (e) {
          console.warn('getStats failed', e);
        }
      }
      this.statsTimer = window.setTimeout(tick, next);
    };
    tick();
  }

  close() {
    this.closed = true;
    if (this.spare) this.spare.close();
    this.spare = null;
    window.clearTimeout(this.statsTimer);
    if (this.dc) this.dc.close();
    if (this.pc) this.pc.close();
    this.emit('connection', 'closed');
  }
}

/** The figures the screens and the tests look at. */
export async function readStats(pc) {
  const report = await pc.getStats();
  const out = { bytesReceived: 0, framesDecoded: 0, rttMs: null, packetsLost: 0, packetsReceived: 0, audioOnly: true };
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      out.bytesReceived += s.bytesReceived || 0;
      out.packetsLost += Math.max(0, s.packetsLost || 0);
      out.packetsReceived += s.packetsReceived || 0;
      if (s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
        if ((s.framesDecoded || 0) > 0) out.audioOnly = false;
      }
    } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && typeof s.currentRoundTripTime === 'number') {
      out.rttMs = Math.round(s.currentRoundTripTime * 1000);
    }
  });
  return out;
}
