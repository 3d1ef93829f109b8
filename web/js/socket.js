// The signalling WebSocket, kept open: reconnects by itself with exponential
// backoff and jitter. The server resumes this account's state on every new
// connection (PROTOCOL.md, "Connection life"), so a reconnect needs no
// bookkeeping here beyond "we are back".
//
// It stops for good when the server says this session has ended (signed
// out elsewhere, expired, the account disabled or its password changed):
// `error` `signed_out`, then close code 4001. The page then goes to the
// login page, which says "You have been signed out".

import { CHANGE_PASSWORD_PAGE } from './api.js';

const BACKOFF_FIRST_MS = 500;
/** The ceiling while reconnecting: a restart or a takeover (about 3 s) is
 * noticed within a second of the server being back, not after a long
 * backoff. (A trust has tens of screens, not thousands: a try a second
 * each for a few seconds is nothing to the server.) */
const BACKOFF_RECONNECTING_MS = 1_000;
const BACKOFF_MAX_MS = 20_000;
/** Tries (0.5 + 1 + 1 … s, about 10 s at most) said as "Reconnecting…"
 * before "Offline"; after them the ceiling doubles from 2 s up to 20 s. */
const RECONNECTING_TRIES = 10;
const PING_EVERY_MS = 15_000;
/** Nothing heard for this long (not even a pong): the link is dead. */
const SILENCE_LIMIT_MS = 40_000;
const CLOSE_REPLACED = 4000;
const CLOSE_SIGNED_OUT = 4001;
/** How the login page learns the server's words (never from the address). */
export const SIGNED_OUT_KEY = 'miulink.signedOut';

export class Signalling {
  constructor() {
    this.ws = null;
    this.handlers = new Map();
    this.state = 'idle'; // connecting | open | waiting | replaced | signed_out
    /** The server's words with `error` `signed_out`, shown on the login page. */
    this.signedOutMessage = null;
    this.attempt = 0;
    this.retryAt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    /** How many times this page has been welcomed (reconnects + 1). */
    this.welcomes = 0;
    /** server clock minus local clock (ms). */
    this.clockOffset = 0;
    this.nonce = 0;
    this.barriers = new Map();
  }

  /** Registers a handler for a message type, or for 'state' changes. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(fn);
    return this;
  }

  emit(type, value) {
    for (const fn of this.handlers.get(type) || []) {
      try {
        fn(value);
      } catch (e) {
        console.error(`handler for ${type} failed`, e);
      }
    }
  }

  setState(state) {
    this.state = state;
    this.emit('state', state);
  }

  /** Server time now, corrected by the offset learnt from welcome and pong. */
  serverNow() {
    return Date.now() + this.clockOffset;
  }

  get open() {
    return this.state === 'open';
  }

  /** Signed out for good: no more reconnecting, ever, on this page. */
  get stopped() {
    return this.state === 'signed_out';
  }

  start() {
    if (this.stopped) return;
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      console.error('cannot open the signalling socket', e);
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.setState('connecting');
    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
      this.lastHeard = Date.now();
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        console.error('the server sent something that is not JSON', event.data);
        return;
      }
      this.receive(message);
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      window.clearInterval(this.pingTimer);
      for (const resolve of this.barriers.values()) resolve(false);
      this.barriers.clear();
      if (this.stopped) return;
      if (event.code === CLOSE_REPLACED) {
        this.setState('replaced');
        return;
      }
      if (event.code === CLOSE_SIGNED_OUT || this.signedOutMessage !== null) {
        this.signedOut(this.signedOutMessage);
        return;
      }
      if (!opened) {
        // The upgrade was refused or the server is down. A lapsed login
        // also looks like this: ask the API which one it is.
        this.checkLogin();
      }
      this.scheduleRetry();
    });
  }

  async checkLogin() {
    let response;
    try {
      response = await fetch('/api/me', { credentials: 'same-origin' });
    } catch {
      // The server is unreachable: keep retrying.
      return;
    }
    if (response.status === 401) {
      // The session is gone (it ended while we were away).
      this.signedOut(null);
    } else if (response.status === 403) {
      let code = null;
      try {
        code = (await response.json()).error;
      } catch {
        code = null;
      }
      if (code === 'password_change_required') {
        this.stop();
        window.location.replace(CHANGE_PASSWORD_PAGE);
      }
    }
  }

  /**
   * This page is signing out: no retry, no ping, and no "signed out
   * elsewhere" when the server closes the socket, but the socket stays open
   * until the server ends it, so that it is a sign-out there too (a
   * station's waiting request is withdrawn, not held for a reconnect).
   */
  leave() {
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    window.clearInterval(this.pingTimer);
    this.setState('signed_out');
  }

  /** No more connections from this page: no retry, no ping. */
  stop() {
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    window.clearInterval(this.pingTimer);
    for (const resolve of this.barriers.values()) resolve(false);
    this.barriers.clear();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.setState('signed_out');
  }

  /**
   * The session has ended: stop, and show the login page, which says
   * "You have been signed out" (with the server's words, if it sent any).
   */
  signedOut(message) {
    if (this.stopped) return;
    this.stop();
    try {
      if (message) window.sessionStorage.setItem(SIGNED_OUT_KEY, String(message).slice(0, 300));
      else window.sessionStorage.removeItem(SIGNED_OUT_KEY);
    } catch {
      // Storage is off: the login page still says the main thing.
    }
    window.location.replace(`/?signed_out=1&next=${encodeURIComponent(window.location.pathname)}`);
  }

  receive(message) {
    if (message.type === 'error' && message.code === 'signed_out') {
      // The close (4001) follows; remember why, for the login page.
      this.signedOutMessage = typeof message.message === 'string' ? message.message : '';
      return;
    }
    if (message.type === 'welcome') {
      this.welcomes += 1;
      this.clockOffset = message.server_time - Date.now();
      this.attempt = 0;
      this.setState('open');
      window.clearInterval(this.pingTimer);
      this.pingTimer = window.setInterval(() => this.heartbeat(), PING_EVERY_MS);
    } else if (message.type === 'pong') {
      if (typeof message.server_time === 'number') this.clockOffset = message.server_time - Date.now();
      const resolve = this.barriers.get(message.nonce);
      if (resolve) {
        this.barriers.delete(message.nonce);
        resolve(true);
      }
    }
    this.emit(message.type, message);
  }

  heartbeat() {
    if (!this.ws) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      // Half-open TCP: the browser would wait minutes. Start again now.
      this.ws.close();
      return;
    }
    this.send({ type: 'ping', nonce: ++this.nonce });
  }

  /**
   * Resolves once the server has handled everything sent so far and we have
   * received all it sent before: the server resumes state straight after
   * welcome, so a barrier right after welcome tells "nothing more to resume".
   */
  barrier() {
    const nonce = ++this.nonce;
    return new Promise((resolve) => {
      if (!this.send({ type: 'ping', nonce })) {
        resolve(false);
        return;
      }
      this.barriers.set(nonce, resolve);
    });
  }

  scheduleRetry() {
    if (this.stopped || this.state === 'replaced') return;
    const ceiling = this.attempt < RECONNECTING_TRIES
      ? Math.min(BACKOFF_RECONNECTING_MS, BACKOFF_FIRST_MS * 2 ** this.attempt)
      : Math.min(BACKOFF_MAX_MS, BACKOFF_RECONNECTING_MS * 2 ** (this.attempt - RECONNECTING_TRIES + 1));
    // "Equal jitter": between half and all of the ceiling, so that many
    // screens restarting together do not reconnect in step.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('waiting');
    this.retryTimer = window.setTimeout(() => this.start(), delay);
  }

  /** Reconnect at once (the user asked, or took the account back). */
  reconnectNow() {
    if (this.stopped) return;
    this.attempt = 0;
    if (this.ws) this.ws.close();
    else this.start();
  }

  /** Sends a message; false if there is no live connection to send it on. */
  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

/**
 * Shows the connection in a status pill: a dot and words, never colour
 * alone. `element` holds `.label`.
 */
export function bindConnectionPill(socket, element) {
  const label = element.querySelector('.label');
  let timer = null;
  const render = () => {
    window.clearInterval(timer);
    element.dataset.state = socket.state;
    switch (socket.state) {
      case 'open':
        label.textContent = 'Connected';
        break;
      case 'connecting':
        label.textContent = 'Connecting\u2026';
        break;
      case 'waiting': {
        const update = () => {
          // The first few tries (about 10 s: a server restarting, or a
          // standby taking over) are a reconnection, not an outage.
          if (socket.attempt <= RECONNECTING_TRIES) {
            label.textContent = 'Reconnecting\u2026';
            return;
          }
          const s = Math.max(1, Math.ceil((socket.retryAt - Date.now()) / 1000));
          label.textContent = `Offline: retrying in ${s} s`;
        };
        update();
        timer = window.setInterval(update, 1000);
        break;
      }
      case 'replaced':
        label.textContent = 'Open elsewhere';
        break;
      case 'signed_out':
        label.textContent = 'Signed out';
        break;
      default:
        label.textContent = 'Starting';
    }
  };
  socket.on('state', render);
  render();
}
