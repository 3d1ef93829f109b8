// One WebRTC call: the peer connection, its negotiation over `signal`, the
// chat data channel, recovery when the network path breaks, and the
// figures that tell how good the link is.
//
// Negotiation. The station is the offerer. Each peer connection gets a
// `negotiation` id that travels with every description and candidate, so a
// fresh negotiation (after a page reload, a lost connection, or a failed
// one) cleanly replaces the old peer connection on both sides and stray
// candidates of an old one are dropped. The answerer asks for a fresh offer
// with `{want_offer: true}` when it has lost its peer connection.
//
// Recovery. Media is peer to peer: it does not depend on the signalling
// socket, which may drop and return (even a server restart) while the
// picture carries on. When the media path itself breaks (ICE `failed`, or
// `disconnected` for more than DISCONNECTED_GRACE_MS):
//   1. an ICE restart on the same peer connection (new ICE credentials,
//      fresh candidates, fresh TURN credentials); the station makes the
//      offer, the clinician asks for it with `{want_ice_restart: true}`;
//   2. if that has not reconnected within ICE_RESTART_TIMEOUT_MS, a whole
//      new negotiation (a new peer connection), repeated at
//      growing intervals until the link is back or the call ends.
// Meanwhile the screen says "Reconnecting" (the `link` event), never a
// silently frozen picture. A link that still claims to be connected but
// carries no media at all is shown as reconnecting after STALL_MS, and
// treated as broken DISCONNECTED_GRACE_MS later (the browser can take much
// longer to give up on it).
//
// Quality. getStats every second gives round trip, loss, received bitrate
// and frame rate over the last few seconds (good / fair / poor); a summary
// goes to the server (`call_quality`) a few seconds after media starts,
// every half minute, and at hang-up: the side hanging up sends its own and
// tells the other side (`bye` on the data channel) to send its last one
// while the call still exists. On a poor link either side may switch
// the call to audio only: both sides stop sending video (`{audio_only}`).

const STATS_FAST_MS = 100;
const STATS_EVERY_MS = 1000;
/** A prepared offer older than this is made afresh (its candidates may be stale). */
const PREPARED_MAX_AGE_MS = 5 * 60_000;
/** Requests for a new negotiation closer together than this are one request. */
const RESTART_MIN_GAP_MS = 4000;
/** ICE `disconnected` often mends itself within a second or two; after this, restart ICE. */
const DISCONNECTED_GRACE_MS = 2000;
/** An ICE restart that has not reconnected by then: a whole new peer connection. */
const ICE_RESTART_TIMEOUT_MS = 10_000;
/** New negotiations after that come at growing intervals, at most this far apart. */
const RENEGOTIATE_MAX_GAP_MS = 30_000;
/** A negotiation that has not connected by then is treated as a lost link. */
const SETUP_TIMEOUT_MS = 20_000;
/** No media bytes at all for this long on a "connected" link: show reconnecting. */
const STALL_MS = 2500;
/** Seconds of figures the quality level is judged on. */
const QUALITY_WINDOW = 5;
/** A link poor for this long offers audio only. */
const POOR_OFFER_MS = 5000;
/** First quality summary to the server this long after media flows, then every QUALITY_EVERY_MS. */
const QUALITY_FIRST_MS = 3000;
/** At hang-up, how long the other side gets to send its last summary first. */
const BYE_WAIT_MS = 250;
const QUALITY_EVERY_MS = 30_000;

/**
 * When a link is poor by its round trip and loss, until the server says
 * (`welcome.limits.poor_link`: the rule its reports judge by).
 */
const POOR_LINK_FALLBACK = { rttMs: 500, lossPct: 8 };

/**
 * Where the quality levels change (what a clinician would call "fair" or
 * "poor"). `poor.rttMs` and `poor.lossPct` are the server's, set by
 * `setPoorLink`: a link is poor over them, as in the reports.
 */
export const QUALITY_LIMITS = {
  fair: { rttMs: 250, lossPct: 3, fps: 15 },
  poor: { ...POOR_LINK_FALLBACK, fps: 8 },
};

/** The server's poor-link rule (`welcome.limits.poor_link`); the fallback where it sent none. */
export function setPoorLink(poorLink) {
  const given = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  const p = poorLink && typeof poorLink === 'object' ? poorLink : {};
  QUALITY_LIMITS.poor.rttMs = given(p.rtt_ms) ? p.rtt_ms : POOR_LINK_FALLBACK.rttMs;
  QUALITY_LIMITS.poor.lossPct = given(p.loss_pct) ? p.loss_pct : POOR_LINK_FALLBACK.lossPct;
}

/**
 * What a peer-connection operation resolves to when the connection was
 * closed under it. A closed RTCPeerConnection never settles the promises
 * it still has pending (createOffer, setRemoteDescription, ...), so every
 * such await is raced against the connection's closing: otherwise one
 * negotiation replaced by another would stall the signal inbox for good.
 */
const CLOSED = Symbol('peer connection closed');
const closings = new WeakMap();

function closing(pc) {
  let c = closings.get(pc);
  if (!c) {
    let resolve;
    const promise = new Promise((r) => { resolve = r; });
    c = { promise, resolve };
    closings.set(pc, c);
    if (pc.signalingState === 'closed') resolve(CLOSED);
  }
  return c;
}

/** Closes `pc` and settles whatever was still waiting on it. */
function closePeer(pc) {
  if (!pc) return;
  pc.close();
  closing(pc).resolve(CLOSED);
}

/** `op` (a promise from `pc`), or CLOSED as soon as `pc` is closed. */
function whileOpen(pc, op) {
  return Promise.race([op, closing(pc).promise]);
}

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
   * @param {'all'|'relay'} [o.iceTransportPolicy]
   * @param {Promise<{stream: MediaStream, hasVideo: boolean, hasAudio: boolean}>} o.media
   * @param {(event: string, detail?: any) => void} o.onEvent
   */
  constructor({ socket, offerer, iceServers, iceTransportPolicy = 'all', media, onEvent }) {
    this.socket = socket;
    /** Set by start(): a call may be prepared before it exists. */
    this.callId = null;
    this.offerer = offerer;
    this.iceServers = iceServers || [];
    this.iceTransportPolicy = iceTransportPolicy === 'relay' ? 'relay' : 'all';
    this.onEvent = onEvent;
    this.local = null;
    this.media = media.then((m) => {
      this.local = m;
      return m;
    });
    this.pc = null;
    this.dc = null;
    this.negotiation = null;
    this.outbox = [];
    this.descriptionSent = false;
    this.inbox = Promise.resolve();
    this.remoteStream = new MediaStream();
    this.mediaFlowing = false;
    this.connectedSent = false;
    this.closed = false;
    this.lastRestart = 0;
    this.negotiatedAt = 0;
    this.statsTimer = null;
    this.micOn = true;
    this.cameraOn = true;
    this.videoTransceiver = null;
    this.trace = [];
    this.prepared = null;
    this.preparedAt = 0;
    this.spare = null;
    // Recovery.
    this.everConnected = false;
    this.connectedPcs = new WeakSet();
    this.link = 'new'; // new | ok | reconnecting
    this.linkAttempt = 0;
    this.stalled = false;
    this.recovery = null; // {since, attempt, why, how, timer}
    this.recoveries = []; // finished ones: {why, how, attempts, ms}
    this.disconnectTimer = null;
    this.reconnectingSince = 0;
    this.iceRestarts = 0;
    this.negotiations = 0;
    // Quality.
    this.prevStats = null;
    this.lastBytes = 0;
    this.lastBytesAt = 0;
    this.window = [];
    this.period = null;
    this.quality = null;
    this.poorSince = 0;
    this.sawVideo = false;
    this.peerCamera = true;
    this.audioOnly = false;
    this.qualityDueAt = 0;
  }

  /** Timings of this call's set-up and recovery (for support and benchmarks). */
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

  configuration() {
    // A candidate pool makes the browser gather candidates as soon as the
    // peer connection exists, before it has a description: the answerer's
    // candidates are then ready the moment it answers.
    return {
      iceServers: this.iceServers,
      iceTransportPolicy: this.iceTransportPolicy,
      bundlePolicy: 'max-bundle',
      iceCandidatePoolSize: 1,
    };
  }

  /** Fresh ICE servers (TURN credentials renewed): used from the next gathering on. */
  setIceServers(list) {
    if (!Array.isArray(list)) return;
    this.iceServers = list;
    for (const pc of [this.pc, this.spare]) this.applyConfiguration(pc);
  }

  applyConfiguration(pc) {
    if (!pc || pc.signalingState === 'closed') return;
    try {
      pc.setConfiguration(this.configuration());
    } catch (e) {
      console.warn('the new ICE servers could not be applied', e);
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
      this.spare = new RTCPeerConnection(this.configuration());
    }
  }

  /** First negotiation. `resumed`: this page lost an earlier one. */
  async start({ callId, resumed = false }) {
    this.callId = callId;
    this.negotiatedAt = Date.now();
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

  get iceConnected() {
    return !!this.pc && ['connected', 'completed'].includes(this.pc.iceConnectionState);
  }

  /** Media is arriving on the current peer connection (or it is still being set up). */
  get healthy() {
    if (!this.pc) return false;
    if (this.iceConnected) return !this.stalled;
    return ['new', 'connecting'].includes(this.pc.connectionState) && !this.recovery;
  }

  /**
   * Signalling is back: ours after a reconnect (`call_start` with
   * `resumed`), or the other side's (`peer_status`). A peer connection that
   * still carries media is kept as it is: a server restart costs nothing.
   */
  resume(why) {
    if (this.closed) return;
    if (this.healthy) {
      // Anything we sent while the server was away was lost.
      if (this.mediaFlowing && !this.connectedSent) this.connectedSent = this.socket.send({ type: 'call_connected', call_id: this.callId });
      return;
    }
    if (!this.recovery) this.linkLost(why);
    else if (Date.now() - this.lastRestart >= RESTART_MIN_GAP_MS) this.nextAttempt();
  }

  /** The other side is back on the signalling server. */
  peerReturned() {
    this.resume('peer returned');
  }

  askForOffer() {
    this.negotiatedAt = Date.now();
    this.sendSignal({ negotiation: this.negotiation, want_offer: true });
  }

  /**
   * Starts a fresh negotiation with a new peer connection (offerer only).
   * With `send: false` the offer is made but kept until `start()`.
   * Resolves to the new peer connection.
   */
  async restart(why, { send = true } = {}) {
    if (this.closed || !this.offerer) return null;
    this.lastRestart = Date.now();
    this.negotiatedAt = Date.now();
    this.negotiations += 1;
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
      const offer = await whileOpen(pc, pc.createOffer());
      if (pc !== this.pc || offer === CLOSED) return null;
      await whileOpen(pc, pc.setLocalDescription(offer));
      if (pc !== this.pc) return null;
      if (send) this.sendDescription(pc);
      return pc;
    } catch (e) {
      this.emit('error', `The call could not be set up: ${e.message}`);
      return null;
    }
  }

  /**
   * Restarts ICE on the current peer connection (offerer only): new ICE
   * credentials and candidates, same media and data channel. Falls back
   * to a new negotiation when the peer connection cannot do it.
   */
  async iceRestart(why) {
    if (this.closed || !this.offerer) return;
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'stable' || !pc.remoteDescription) {
      this.restart(`${why}; no settled connection to restart`);
      return;
    }
    this.lastRestart = Date.now();
    this.negotiatedAt = Date.now();
    this.iceRestarts += 1;
    console.info(`call ${this.callId}: ICE restart (${why})`);
    this.mark('ice-restart');
    this.applyConfiguration(pc);
    this.descriptionSent = false;
    this.outbox = [];
    try {
      const offer = await whileOpen(pc, pc.createOffer({ iceRestart: true }));
      if (pc !== this.pc || this.closed || offer === CLOSED) return;
      await whileOpen(pc, pc.setLocalDescription(offer));
      if (pc !== this.pc || this.closed) return;
      this.sendDescription(pc);
    } catch (e) {
      console.warn('the ICE restart could not start; negotiating afresh', e);
      if (pc === this.pc) this.restart('ICE restart failed to start');
    }
  }

  /** Sends the local camera and microphone on `pc` once they are open. */
  async attachLocal(pc) {
    const local = await this.media;
    if (pc !== this.pc || this.closed) return;
    this.mark('local-media');
    this.sendMediaState();
    for (const transceiver of pc.getTransceivers()) {
      const kind = transceiver.receiver.track.kind;
      if (kind === 'video' && this.audioOnly) continue;
      const track = local.stream.getTracks().find((t) => t.kind === kind);
      if (track && transceiver.sender.track !== track) {
        try {
          await whileOpen(pc, transceiver.sender.replaceTrack(track));
        } catch (e) {
          console.warn(`could not send the local ${kind}`, e);
        }
      }
    }
  }

  /** Makes `pc` (or a new peer connection) this call's, for `negotiation`. */
  newPeer(negotiation, made = null) {
    closePeer(this.pc);
    if (this.dc) this.dc.close();
    this.negotiation = negotiation;
    this.outbox = [];
    this.descriptionSent = false;
    this.prevStats = null;
    this.window = [];
    this.poorSince = 0;
    this.remoteStream = new MediaStream();
    this.emit('remote-stream', this.remoteStream);
    const pc = made || new RTCPeerConnection(this.configuration());
    if (made) this.applyConfiguration(pc);
    this.pc = pc;
    pc.addEventListener('icecandidate', (e) => {
      if (pc !== this.pc || !e.candidate) return;
      this.mark(`candidate-${e.candidate.type}-${e.candidate.address && e.candidate.address.endsWith('.local') ? 'mdns' : 'ip'}`);
      const data = { negotiation, candidate: e.candidate.toJSON() };
      if (this.descriptionSent) this.sendSignal(data);
      else this.outbox.push(data);
    });
    pc.addEventListener('track', (e) => {
      if (pc !== this.pc) return;
      this.remoteStream.addTrack(e.track);
      this.emit('remote-track', e.track);
    });
    pc.addEventListener('iceconnectionstatechange', () => {
      if (pc !== this.pc) return;
      this.mark(`ice-${pc.iceConnectionState}`);
      this.onIceState(pc.iceConnectionState);
    });
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc === this.pc) this.mark(`gathering-${pc.iceGatheringState}`);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== this.pc) return;
      this.mark(`pc-${pc.connectionState}`);
      this.emit('connection', pc.connectionState);
      if (pc.connectionState === 'failed') this.linkLost('failed');
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

  // ----- Recovery --------------------------------------------------------

  /** The link state the screens show, with the recovery attempt under way. */
  setLink(link) {
    const attempt = this.recovery ? this.recovery.attempt : 0;
    if (this.link === link && this.linkAttempt === attempt) return;
    if (this.link !== link) {
      if (link === 'reconnecting') this.reconnectingSince = Date.now();
      this.mark(`link-${link}`);
    }
    this.link = link;
    this.linkAttempt = attempt;
    this.emit('link', { state: link, attempt, stalled: this.stalled });
  }

  onIceState(state) {
    if (state === 'connected' || state === 'completed') {
      window.clearTimeout(this.disconnectTimer);
      this.disconnectTimer = null;
      this.everConnected = true;
      this.connectedPcs.add(this.pc);
      if (this.recovery) this.recovered();
      if (!this.stalled) this.setLink('ok');
    } else if (state === 'disconnected') {
      if (!this.everConnected) return;
      this.setLink('reconnecting');
      window.clearTimeout(this.disconnectTimer);
      this.disconnectTimer = window.setTimeout(() => {
        this.disconnectTimer = null;
        if (!this.iceConnected) this.linkLost('disconnected');
      }, DISCONNECTED_GRACE_MS);
    } else if (state === 'failed') {
      this.linkLost('failed');
    }
  }

  /** The media path is broken: start recovering (once; the watchdog goes on). */
  linkLost(why) {
    if (this.closed || this.callId === null) return;
    this.setLink('reconnecting');
    if (this.recovery) return;
    this.mark(`link-lost-${why}`);
    this.recovery = { since: Date.now(), attempt: 0, why, how: null, timer: null };
    this.nextAttempt();
  }

  nextAttempt() {
    const r = this.recovery;
    if (!r || this.closed) return;
    r.attempt += 1;
    const ice = r.attempt === 1;
    r.how = ice ? 'ice-restart' : 'renegotiation';
    this.setLink('reconnecting');
    if (this.offerer) {
      if (ice) this.iceRestart(`link ${r.why}`);
      // (A negotiation the other side asked for a moment ago is this attempt.)
      else if (Date.now() - this.lastRestart >= RESTART_MIN_GAP_MS) this.restart(`ICE restart did not recover (attempt ${r.attempt})`);
    } else if (ice) {
      this.negotiatedAt = Date.now();
      this.lastRestart = Date.now();
      this.sendSignal({ negotiation: this.negotiation, want_ice_restart: true });
    } else {
      this.lastRestart = Date.now();
      this.askForOffer();
    }
    const wait = ice ? ICE_RESTART_TIMEOUT_MS : Math.min(RENEGOTIATE_MAX_GAP_MS, 5000 * r.attempt);
    window.clearTimeout(r.timer);
    r.timer = window.setTimeout(() => {
      if (this.recovery !== r) return;
      if (this.iceConnected && !this.stalled) this.recovered();
      else this.nextAttempt();
    }, wait);
  }

  recovered() {
    const r = this.recovery;
    if (!r) return;
    this.recovery = null;
    window.clearTimeout(r.timer);
    // ms: from the start of recovery; interruptedMs: from when the
    // picture stopped (what the users lived through).
    const since = Math.min(r.since, this.reconnectingSince || r.since);
    const done = { why: r.why, how: r.how, attempts: r.attempt, ms: Date.now() - r.since, interruptedMs: Date.now() - since };
    this.recoveries.push(done);
    this.mark(`recovered-${r.how}`);
    console.info(`call ${this.callId}: media recovered by ${r.how} after ${done.ms} ms`);
    this.emit('recovered', done);
    if (this.iceConnected && !this.stalled) this.setLink('ok');
  }

  sendDescription(pc) {
    this.mark(`sent-${pc.localDescription.type}`);
    this.sendSignal({ negotiation: this.negotiation, description: pc.localDescription.toJSON() });
    this.descriptionSent = true;
    for (const data of this.outbox) this.sendSignal(data);
    this.outbox = [];
  }

  sendSignal(data) {
    if (this.callId === null) return false;
    return this.socket.send({ type: 'signal', call_id: this.callId, data });
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
    if (typeof data.audio_only === 'boolean') {
      this.setAudioOnly(data.audio_only, { fromPeer: true });
      return;
    }
    if (data.want_offer) {
      if (!this.offerer) return;
      // A request about an older peer connection, just after we made a
      // new one: our offer is already on its way.
      const stale = data.negotiation && data.negotiation !== this.negotiation;
      if (stale && Date.now() - this.lastRestart < RESTART_MIN_GAP_MS) return;
      await this.restart('peer asked for an offer');
      return;
    }
    if (data.want_ice_restart) {
      if (!this.offerer) return;
      if (data.negotiation !== this.negotiation) {
        if (Date.now() - this.lastRestart >= RESTART_MIN_GAP_MS) await this.restart('peer lost its peer connection');
        return;
      }
      if (Date.now() - this.lastRestart < RESTART_MIN_GAP_MS) return;
      // The other side's media path is broken: recover as if ours were.
      if (this.recovery) this.nextAttempt();
      else this.linkLost('peer');
      return;
    }
    if (data.description) {
      const description = data.description;
      this.mark(`got-${description.type}`);
      if (description.type === 'offer' && !this.offerer) {
        if (data.negotiation === this.negotiation && this.pc && this.pc.signalingState !== 'closed') {
          try {
            await this.reanswer(description);
          } catch (e) {
            console.warn('the ICE restart offer could not be applied; asking for a new one', e);
            this.askForOffer();
          }
        } else {
          await this.answer(data.negotiation, description);
        }
      } else if (description.type === 'answer' && this.offerer) {
        if (data.negotiation !== this.negotiation || !this.pc) return;
        if (this.pc.signalingState !== 'have-local-offer') return;
        await whileOpen(this.pc, this.pc.setRemoteDescription(description));
      }
      return;
    }
    if (data.candidate) {
      if (data.negotiation !== this.negotiation || !this.pc) return;
      try {
        await whileOpen(this.pc, this.pc.addIceCandidate(data.candidate));
      } catch (e) {
        console.warn('a remote ICE candidate was refused', e);
      }
    }
  }

  async answer(negotiation, offer) {
    // The peer connection made in advance, if it is still unused.
    const spare = this.spare;
    this.spare = null;
    this.negotiatedAt = Date.now();
    this.negotiations += 1;
    const pc = this.newPeer(negotiation, spare);
    await whileOpen(pc, pc.setRemoteDescription(offer));
    if (pc !== this.pc || this.closed) return;
    for (const transceiver of pc.getTransceivers()) {
      transceiver.direction = 'sendrecv';
      if (transceiver.receiver.track.kind === 'video') this.videoTransceiver = transceiver;
    }
    // Answer at once; the camera is attached when it is open (attachLocal).
    this.attachLocal(pc);
    const answer = await whileOpen(pc, pc.createAnswer());
    if (pc !== this.pc || answer === CLOSED) return;
    await whileOpen(pc, pc.setLocalDescription(answer));
    if (pc !== this.pc) return;
    this.sendDescription(pc);
  }

  /** A new offer in the same negotiation: an ICE restart, answered on the same peer connection. */
  async reanswer(offer) {
    const pc = this.pc;
    this.negotiatedAt = Date.now();
    this.applyConfiguration(pc);
    this.descriptionSent = false;
    this.outbox = [];
    await whileOpen(pc, pc.setRemoteDescription(offer));
    if (pc !== this.pc || this.closed) return;
    const answer = await whileOpen(pc, pc.createAnswer());
    if (pc !== this.pc || answer === CLOSED) return;
    await whileOpen(pc, pc.setLocalDescription(answer));
    if (pc !== this.pc) return;
    this.iceRestarts += 1;
    this.mark('ice-restart-answered');
    this.sendDescription(pc);
  }

  // ----- Chat, media state, audio only -----------------------------------

  onChannelMessage(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    if (message.t === 'chat' && typeof message.text === 'string') {
      this.emit('chat', { text: message.text.slice(0, 1000), mine: false, at: Date.now() });
    } else if (message.t === 'bye') {
      // The other side is hanging up: our last summary, while the call exists.
      this.finalQuality({ bye: false });
    } else if (message.t === 'media') {
      this.peerCamera = message.camera !== false;
      this.emit('peer-media', { mic: message.mic !== false, camera: this.peerCamera });
      // A side that reloaded forgets that the call went audio only; the
      // side that remembers tells it here. Turning video back on is only
      // ever an explicit `{audio_only: false}`.
      if (message.audio_only === true && !this.audioOnly) this.setAudioOnly(true, { fromPeer: true });
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
    // Until the camera has opened, assume it will (it is told when it has).
    const hasVideo = this.local ? this.local.hasVideo : true;
    this.dc.send(JSON.stringify({ t: 'media', mic: this.micOn, camera: this.cameraOn && hasVideo, audio_only: this.audioOnly }));
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

  /**
   * Audio only: neither side sends video, which leaves the link's capacity
   * to the voice. Either side may turn it on or off; the other follows.
   */
  setAudioOnly(on, { fromPeer = false } = {}) {
    if (this.closed || this.audioOnly === on) return;
    this.audioOnly = on;
    this.mark(on ? 'audio-only' : 'video-back');
    this.poorSince = 0;
    this.window = [];
    this.applyVideoSending();
    if (!fromPeer) this.sendSignal({ audio_only: on });
    this.emit('audio-only', { on, byPeer: fromPeer });
    this.sendMediaState();
  }

  applyVideoSending() {
    const transceiver = this.videoTransceiver;
    if (!transceiver || !this.pc || this.pc.signalingState === 'closed') return;
    const camera = this.local ? this.local.stream.getVideoTracks()[0] || null : null;
    const track = this.audioOnly ? null : camera;
    if (transceiver.sender.track === track) return;
    transceiver.sender.replaceTrack(track).catch((e) => console.warn('could not change the video sent', e));
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
    if (this.videoTransceiver && !this.audioOnly) await this.videoTransceiver.sender.replaceTrack(track);
  }

  // ----- Stats: media flowing, stalls, quality ---------------------------

  /** Polls getStats: tells the server once media flows, watches the link, reports quality. */
  pollStats() {
    const tick = async () => {
      if (this.closed) return;
      await this.sampleOnce();
      if (this.closed) return;
      this.statsTimer = window.setTimeout(tick, this.mediaFlowing ? STATS_EVERY_MS : STATS_FAST_MS);
    };
    window.clearTimeout(this.statsTimer);
    tick();
  }

  async sampleOnce() {
    const pc = this.pc;
    if (!pc) {
      this.watchSetup();
      return;
    }
    try {
      const figures = await whileOpen(pc, readStats(pc));
      if (pc !== this.pc || this.closed || figures === CLOSED) return;
      this.observe(pc, figures);
    } catch (e) {
      console.warn('getStats failed', e);
    }
  }

  observe(pc, f) {
    const now = performance.now();
    if (!this.mediaFlowing && pc.connectionState === 'connected' && f.bytesReceived > 0) {
      this.mediaFlowing = true;
      this.mark('media-flowing');
      this.qualityDueAt = now + QUALITY_FIRST_MS;
      this.emit('media-flowing');
    }
    if (this.mediaFlowing && !this.connectedSent) {
      this.connectedSent = this.socket.send({ type: 'call_connected', call_id: this.callId });
    }
    if (f.framesDecoded > 0) this.sawVideo = true;

    // A link that says "connected" but carries nothing is not connected.
    const prev = this.prevStats;
    const samePc = prev && prev.pc === pc;
    if (!samePc || f.bytesReceived > this.lastBytes) {
      this.lastBytes = f.bytesReceived;
      this.lastBytesAt = now;
      if (this.stalled) {
        this.stalled = false;
        this.mark('media-resumed');
        // Bytes arriving again on a connected path is the recovery: ICE
        // may never have left "connected", so do not wait for it to say so.
        if (this.iceConnected) {
          this.recovered();
          this.setLink('ok');
        }
      }
    } else if (this.mediaFlowing && this.iceConnected && !this.stalled && now - this.lastBytesAt > STALL_MS) {
      this.stalled = true;
      this.mark('media-stalled');
      this.setLink('reconnecting');
    } else if (this.stalled && !this.recovery && now - this.lastBytesAt > STALL_MS + DISCONNECTED_GRACE_MS) {
      // The browser may take a while to call the path broken; nothing has
      // arrived for long enough to act on it now.
      this.linkLost('no media');
    }

    if (samePc) {
      const dt = (f.at - prev.at) / 1000;
      if (dt > 0) {
        const d = {
          dt,
          bytes: Math.max(0, f.bytesReceived - prev.bytesReceived),
          lost: Math.max(0, f.packetsLost - prev.packetsLost),
          received: Math.max(0, f.packetsReceived - prev.packetsReceived),
          frames: Math.max(0, f.framesDecoded - prev.framesDecoded),
          rttMs: f.rttMs,
        };
        this.window.push(d);
        if (this.window.length > QUALITY_WINDOW) this.window.shift();
        const p = this.period || (this.period = { dt: 0, bytes: 0, lost: 0, received: 0, frames: 0, rtts: [] });
        p.dt += d.dt;
        p.bytes += d.bytes;
        p.lost += d.lost;
        p.received += d.received;
        p.frames += d.frames;
        if (typeof d.rttMs === 'number') p.rtts.push(d.rttMs);
      }
    }
    this.prevStats = { pc, ...f };
    this.relayed = f.relayed;
    this.quality = this.assess(f);
    this.emit('quality', this.quality);
    if (this.mediaFlowing && now >= this.qualityDueAt && this.sendQuality()) this.qualityDueAt = now + QUALITY_EVERY_MS;
    this.watchSetup();
  }

  /** A negotiation that never connected (an offer lost on the way): recover. */
  watchSetup() {
    if (this.closed || this.callId === null || this.recovery || this.iceConnected) return;
    // A peer connection that has connected before is watched by onIceState.
    if (this.pc && this.connectedPcs.has(this.pc)) return;
    if (this.negotiatedAt && Date.now() - this.negotiatedAt > SETUP_TIMEOUT_MS) this.linkLost('setup timed out');
  }

  /** Is video expected from the other side just now? */
  get videoExpected() {
    return this.sawVideo && this.peerCamera && !this.audioOnly;
  }

  /** Good / fair / poor over the last few seconds, with the figures behind it. */
  assess(f) {
    const w = this.window;
    const dt = w.reduce((s, d) => s + d.dt, 0);
    if (!this.mediaFlowing || dt < 2.5) return { level: null, relayed: f.relayed };
    const lost = w.reduce((s, d) => s + d.lost, 0);
    const received = w.reduce((s, d) => s + d.received, 0);
    const rtts = w.map((d) => d.rttMs).filter((v) => typeof v === 'number').sort((a, b) => a - b);
    const q = {
      rttMs: rtts.length ? rtts[Math.floor(rtts.length / 2)] : null,
      lossPct: lost + received > 0 ? (100 * lost) / (lost + received) : 0,
      kbps: (w.reduce((s, d) => s + d.bytes, 0) * 8) / dt / 1000,
      fps: w.reduce((s, d) => s + d.frames, 0) / dt,
      relayed: f.relayed,
      audioOnly: this.audioOnly,
    };
    const { fair, poor } = QUALITY_LIMITS;
    const lowFps = (limits) => this.videoExpected && q.fps < limits.fps;
    // Poor strictly over the server's figures, as the reports count it.
    const isPoor = (q.rttMs !== null && q.rttMs > poor.rttMs) || q.lossPct > poor.lossPct || lowFps(poor);
    const isFair = (q.rttMs !== null && q.rttMs >= fair.rttMs) || q.lossPct >= fair.lossPct || lowFps(fair);
    q.level = isPoor ? 'poor' : isFair ? 'fair' : 'good';
    const now = performance.now();
    // A live but poor link is what audio only helps; a broken one is
    // shown as poor, but recovering it is another matter.
    if (q.level === 'poor' && !this.recovery && !this.stalled) this.poorSince = this.poorSince || now;
    else this.poorSince = 0;
    if (this.stalled || (this.recovery && !this.iceConnected)) q.level = 'poor';
    q.poorForMs = this.poorSince ? now - this.poorSince : 0;
    q.offerAudioOnly = !this.audioOnly && this.link === 'ok' && this.videoExpected && q.poorForMs >= POOR_OFFER_MS;
    return q;
  }

  /** Sends the summary of the figures since the last one; false if it could not be sent. */
  sendQuality() {
    const p = this.period;
    if (this.callId === null || !p || p.dt <= 0) return false;
    const round = (v) => Math.round(v * 10) / 10;
    const sample = {
      packet_loss_pct: round(Math.min(100, p.lost + p.received > 0 ? (100 * p.lost) / (p.lost + p.received) : 0)),
      bitrate_kbps: round((p.bytes * 8) / p.dt / 1000),
      audio_only: this.audioOnly || !this.sawVideo,
      relayed: !!this.relayed,
    };
    if (p.rtts.length) sample.rtt_ms = round(p.rtts.reduce((s, v) => s + v, 0) / p.rtts.length);
    if (!sample.audio_only) sample.fps = round(p.frames / p.dt);
    if (!this.socket.send({ type: 'call_quality', call_id: this.callId, sample })) return false;
    this.period = null;
    this.mark('quality-sent');
    return true;
  }

  /**
   * The last summary, just before hanging up (waits at most a moment for
   * fresh figures). With `bye`, the other side is asked for its last one
   * too, and given a moment to send it before we hang up.
   */
  async finalQuality({ bye = true } = {}) {
    if (!this.mediaFlowing || this.closed) return;
    const asked = bye && this.chatOpen;
    if (asked) this.dc.send(JSON.stringify({ t: 'bye' }));
    await Promise.race([this.sampleOnce(), new Promise((r) => { window.setTimeout(r, 500); })]);
    this.sendQuality();
    if (asked) await new Promise((r) => { window.setTimeout(r, BYE_WAIT_MS); });
  }

  close() {
    this.closed = true;
    closePeer(this.spare);
    this.spare = null;
    window.clearTimeout(this.statsTimer);
    window.clearTimeout(this.disconnectTimer);
    if (this.recovery) window.clearTimeout(this.recovery.timer);
    if (this.dc) this.dc.close();
    closePeer(this.pc);
    this.emit('connection', 'closed');
  }
}

/** The figures the screens and the tests look at, from one getStats(). */
export async function readStats(pc) {
  const report = await pc.getStats();
  const out = {
    at: performance.now(),
    bytesReceived: 0,
    framesDecoded: 0,
    rttMs: null,
    packetsLost: 0,
    packetsReceived: 0,
    relayed: false,
    localCandidateType: null,
    remoteCandidateType: null,
  };
  let selectedId = null;
  let nominated = null;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      out.bytesReceived += s.bytesReceived || 0;
      out.packetsLost += Math.max(0, s.packetsLost || 0);
      out.packetsReceived += s.packetsReceived || 0;
      if (s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
      }
    } else if (s.type === 'transport' && s.selectedCandidatePairId) {
      selectedId = s.selectedCandidatePairId;
    } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      nominated = s;
    }
  });
  const pair = (selectedId && report.get(selectedId)) || nominated;
  if (pair) {
    if (typeof pair.currentRoundTripTime === 'number') out.rttMs = Math.round(pair.currentRoundTripTime * 1000);
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    out.localCandidateType = local ? local.candidateType : null;
    out.remoteCandidateType = remote ? remote.candidateType : null;
    out.relayed = out.localCandidateType === 'relay' || out.remoteCandidateType === 'relay';
  }
  return out;
}
