// The life of a call in a page, the same for the station and the clinician:
// the call screen (CallView), a Call prepared before it exists, the start
// from `call_start` (a new call, or the same one found again after a
// reload or a reconnect), the signals, hanging up (also while the server
// is away), the teardown, and the chat transcript for the after-call
// screen. What each page shows around it comes in as callbacks.

import { $, fill, END_REASONS } from './ui.js';
import { stopStream } from './media.js';
import { Call, setPoorLink } from './call.js';
import { CallView } from './callview.js';

/** Where a reload during a call remembers whom it was with. */
const CALL_KEY = 'miulink.call';

/** Who is on the other side, when the call_start is not known. */
const OTHER_SIDE = { station: 'The clinician', clinician: 'The station' };

export class CallSession {
  /**
   * @param {object} o
   * @param {import('./socket.js').Signalling} o.socket
   * @param {'station'|'clinician'} o.role this page's side (the station offers)
   * @param {object} o.settings `/api/me` settings (`ice_servers`, `ice_transport_policy`)
   * @param {object} o.marks the page's set-up timings (`window.miulink.marks`)
   * @param {(view: string) => void} o.show shows one of the page's views ('call')
   * @param {() => Promise<object>} o.media the camera for a call that was not prepared
   * @param {(start: object, fresh: boolean) => boolean} o.isReturn whether a
   *   new `call_start` is this page finding its call again (a reload);
   *   `fresh`: nothing was prepared for it
   * @param {() => void} o.told the server spoke of our call (`call_start`, `call_end`)
   * @param {(start: object, o: {same: boolean}) => void} [o.onStart] after a
   *   `call_start` is shown; `same`: the call in progress, found again
   * @param {(end: object, o: {call: Call|null, start: object|null, text: string}) => void} o.onEnd
   *   after the call is torn down: the page's after-call screen. `start` is
   *   the ended call's `call_start` if known, `text` says why it ended.
   * @param {boolean} [o.newMarks] a new call clears the page's timings first
   */
  constructor({ socket, role, settings, marks, show, media, isReturn, told, onStart = () => {}, onEnd, newMarks = false }) {
    this.socket = socket;
    this.role = role;
    this.settings = settings;
    this.marks = marks;
    this.o = { show, media, isReturn, told, onStart, onEnd, newMarks };
    /** Renewed by the server (`ice_servers`) before TURN credentials expire. */
    this.iceServers = settings.ice_servers || [];
    /** The call in progress (it has a call id). */
    this.call = null;
    /** A Call made ready before the call exists (the waiting station's offer, the clinician's answer). */
    this.prepared = null;
    /** The `call_start` of the live or last call. */
    this.start = null;
    /** The call id whose hang-up waits for the server. */
    this.hangUpPending = null;
    this.callView = new CallView($('#call-section'), { socket, marks, onHangUp: () => this.hangUp() });
    this.sayReturning();
    this.listen();
  }

  /** A reload during a call: say so while the call is found again. */
  sayReturning() {
    try {
      const last = JSON.parse(window.sessionStorage.getItem(CALL_KEY) || 'null');
      if (last && last.peer) $('#loading-text').textContent = `Returning to your call with ${last.peer}\u2026`;
    } catch {
      window.sessionStorage.removeItem(CALL_KEY);
    }
  }

  /** The live call, else the one being prepared. */
  get current() {
    return this.call || this.prepared;
  }

  listen() {
    const { socket } = this;
    socket.on('welcome', (welcome) => {
      this.setIceServers(welcome.ice_servers);
      setPoorLink(welcome.limits && welcome.limits.poor_link);
    });
    socket.on('ice_servers', (m) => this.setIceServers(m.ice_servers));
    socket.on('state', (s) => {
      if (this.call) this.callView.setServerOnline(s === 'open');
    });
    socket.on('call_start', (start) => this.begin(start));
    socket.on('signal', (m) => {
      if (this.call && this.call.callId === m.call_id) this.call.handleSignal(m.data);
    });
    socket.on('peer_status', (m) => {
      if (!this.call || this.call.callId !== m.call_id) return;
      this.callView.setPeerOnline(m.connected);
      if (m.connected) this.call.peerReturned();
    });
    socket.on('call_end', (end) => {
      this.o.told();
      // The end of an older call never closes the one in progress.
      const current = this.current;
      if (current && current.callId !== end.call_id) return;
      this.end(end);
    });
  }

  newCall(media) {
    return new Call({
      socket: this.socket,
      offerer: this.role === 'station',
      iceServers: this.iceServers,
      iceTransportPolicy: this.settings.ice_transport_policy,
      media,
      onEvent: (event, detail) => this.callView.handle(event, detail),
    });
  }

  /** Gets a Call ready before the call exists, with this camera (once). */
  prepare(media) {
    if (this.current) return;
    this.prepared = this.newCall(media);
    this.prepared.prepare();
  }

  /** The prepared Call is not wanted after all (its camera is the page's to stop). */
  dropPrepared() {
    if (!this.prepared) return;
    this.prepared.close();
    this.prepared = null;
  }

  setIceServers(list) {
    if (!Array.isArray(list)) return;
    this.iceServers = list;
    for (const call of [this.call, this.prepared]) if (call) call.setIceServers(list);
  }

  /** A `call_start`: a new call, or the one in progress after our signalling returned. */
  begin(start) {
    const { callView, o } = this;
    o.told();
    this.start = start;
    window.sessionStorage.setItem(CALL_KEY, JSON.stringify({ call_id: start.call_id, peer: start.peer.display_name }));
    if (this.hangUpPending === start.call_id) {
      // Hung up while the server was away: end it now.
      this.hangUpPending = null;
      this.socket.send({ type: 'hang_up', call_id: start.call_id });
    }
    if (this.call && this.call.callId === start.call_id) {
      // Our connection to the server came back; the media is peer to peer
      // and is kept if it still flows (a server restart costs nothing).
      callView.begin(start, this.call);
      o.show('call');
      this.call.resume('our signalling returned');
      o.onStart(start, { same: true });
      return;
    }
    // A new call: its set-up is timed from here (a resumed one keeps it).
    if (o.newMarks) for (const key of Object.keys(this.marks)) delete this.marks[key];
    this.marks.callStart = performance.timeOrigin + performance.now();
    if (this.call) this.call.close();
    let call = this.prepared;
    this.prepared = null;
    const fresh = !call;
    if (!call) call = this.newCall(o.media());
    const returned = start.resumed && o.isReturn(start, fresh);
    this.call = call;
    callView.begin(start, call);
    if (returned) callView.showReturned(start.peer.display_name);
    o.show('call');
    call.start({ callId: start.call_id, resumed: start.resumed });
    o.onStart(start, { same: false });
  }

  /** The hang-up button (pressed twice): the last quality figures, then `hang_up`. */
  async hangUp() {
    const call = this.call;
    if (!call || call.callId === null) return;
    await call.finalQuality();
    if (!this.socket.send({ type: 'hang_up', call_id: call.callId })) {
      this.hangUpPending = call.callId;
      this.callView.showNotice('Not connected to the server, so the call has not ended yet. It ends as soon as the connection is back.');
    }
  }

  /**
   * Closes the call (and any prepared one) and its camera, and clears the
   * call screen. Returns the call that was in progress, or null.
   */
  teardown() {
    const call = this.call;
    this.call = null;
    this.dropPrepared();
    this.hangUpPending = null;
    window.sessionStorage.removeItem(CALL_KEY);
    if (call) {
      call.close();
      call.media.then((local) => stopStream(local.stream));
    }
    this.callView.end();
    return call;
  }

  /** The call has ended (`call_end`, or as the page learnt it): tear down, then the page's after-call screen. */
  end(end) {
    const known = this.start;
    const start = known && (end.call_id === undefined || known.call_id === end.call_id) ? known : null;
    const call = this.teardown();
    const peer = start ? start.peer.display_name : OTHER_SIDE[this.role];
    const text = (END_REASONS[end.reason] || (() => 'The call ended.'))(peer, end.reason === `hung_up_by_${this.role}`);
    this.o.onEnd(end, { call, start, text });
  }

  /**
   * The ended call's chat, read-only, into `target` (emptied if nobody
   * wrote): see CallView.transcript for the options.
   */
  showTranscript(target, options) {
    fill(target, this.callView.transcript(options));
  }
}
