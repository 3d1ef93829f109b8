// Alerts a clinician cannot miss: a repeating tone (Web Audio, no sound
// file), a desktop notification for every request, and a flashing title.
//
// The tone is scheduled ahead on the audio clock rather than by timers: a
// browser throttles timers in a background tab to once a minute, but audio
// already scheduled plays on time.

const CHIME_EVERY_S = 2.5;
const SCHEDULE_AHEAD_S = 30;
const NOTES = [
  { at: 0, freq: 659.25, length: 0.18 },
  { at: 0.24, freq: 880, length: 0.18 },
  { at: 0.6, freq: 659.25, length: 0.18 },
  { at: 0.84, freq: 880, length: 0.3 },
];

/** Schedules one chime on `ctx` at time `t0`, into `destination`. */
export function playChime(ctx, destination, t0) {
  for (const note of NOTES) {
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = 'triangle';
    osc.frequency.value = note.freq;
    const start = t0 + note.at;
    const end = start + note.length;
    env.gain.setValueAtTime(0.0001, start);
    env.gain.exponentialRampToValueAtTime(1, start + 0.015);
    env.gain.exponentialRampToValueAtTime(0.0001, end);
    osc.connect(env).connect(destination);
    osc.start(start);
    osc.stop(end + 0.02);
  }
}

export class Alerts {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.ctx = null;
    this.bus = null;
    this.scheduledUntil = 0;
    this.chimeTimes = [];
    this.played = 0;
    this.ringing = new Map(); // request_id -> queue entry
    this.notifications = new Map();
    this.notified = 0;
    this.baseTitle = document.title;
    this.flashTimer = null;
    this.refillTimer = null;
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (AudioContextClass) {
      this.ctx = new AudioContextClass();
      this.ctx.addEventListener('statechange', () => {
        if (this.ctx.state === 'running' && this.ringing.size) this.startTone();
        this.onChange();
      });
    }
  }

  get soundOn() {
    return !!this.ctx && this.ctx.state === 'running';
  }

  get notificationsOn() {
    return 'Notification' in window && Notification.permission === 'granted';
  }

  /** Needs a user gesture: unlocks sound and asks for notifications. */
  async enable() {
    if (this.ctx && this.ctx.state !== 'running') {
      try {
        await this.ctx.resume();
      } catch (e) {
        console.warn('sound could not be turned on', e);
      }
    }
    if ('Notification' in window && Notification.permission === 'default') {
      try {
        await Notification.requestPermission();
      } catch (e) {
        console.warn('notification permission request failed', e);
      }
    }
    this.onChange();
  }

  /** The requests that should ring now (the rest stop ringing). */
  setRinging(entries) {
    const ids = new Set(entries.map((e) => e.request_id));
    for (const [id, n] of this.notifications) {
      if (!ids.has(id)) {
        n.close();
        this.notifications.delete(id);
      }
    }
    const before = this.ringing.size;
    this.ringing = new Map(entries.map((e) => [e.request_id, e]));
    if (this.ringing.size && !before) this.start();
    else if (!this.ringing.size && before) this.stop();
    this.renderTitle(true);
  }

  /** A new `ring`: a notification of its own, whatever else is ringing. */
  notify(entry, urgencyLabel) {
    if (!this.notificationsOn) return;
    const n = new Notification(`${urgencyLabel} consult request`, {
      body: `${entry.station}${entry.site ? ` (${entry.site})` : ''}: ${entry.reason}`,
      tag: `miulink-request-${entry.request_id}`,
      requireInteraction: true,
    });
    n.addEventListener('click', () => {
      window.focus();
      n.close();
    });
    const old = this.notifications.get(entry.request_id);
    if (old) old.close();
    this.notifications.set(entry.request_id, n);
    this.notified += 1;
  }

  start() {
    this.startTone();
    window.clearInterval(this.flashTimer);
    let on = true;
    this.flashTimer = window.setInterval(() => {
      on = !on;
      this.renderTitle(on);
    }, 1000);
  }

  stop() {
    window.clearInterval(this.flashTimer);
    window.clearInterval(this.refillTimer);
    this.flashTimer = null;
    this.refillTimer = null;
    this.settle();
    this.chimeTimes = [];
    if (this.bus) {
      // Disconnecting the bus silences every chime already scheduled.
      this.bus.disconnect();
      this.bus = null;
    }
    this.scheduledUntil = 0;
    document.title = this.baseTitle;
  }

  renderTitle(on) {
    const n = this.ringing.size;
    if (!n) {
      document.title = this.baseTitle;
      return;
    }
    document.title = on
      ? `\u{1F514} (${n}) Consult request waiting: MIU Link`
      : `(${n}) Answer the MIU: MIU Link`;
  }

  startTone() {
    if (!this.soundOn || this.bus) return;
    this.bus = this.ctx.createGain();
    this.bus.gain.value = 0.35;
    this.bus.connect(this.ctx.destination);
    this.scheduledUntil = this.ctx.currentTime + 0.05;
    this.refill();
    window.clearInterval(this.refillTimer);
    this.refillTimer = window.setInterval(() => this.refill(), 5000);
  }

  refill() {
    if (!this.bus) return;
    this.settle();
    const horizon = this.ctx.currentTime + SCHEDULE_AHEAD_S;
    while (this.scheduledUntil < horizon) {
      this.chime(this.scheduledUntil);
      this.scheduledUntil += CHIME_EVERY_S;
    }
  }

  chime(t0) {
    playChime(this.ctx, this.bus, t0);
    this.chimeTimes.push(t0);
  }

  /** Moves chimes that have sounded from the schedule to the count. */
  settle() {
    if (!this.ctx) return;
    const now = this.ctx.currentTime;
    const future = this.chimeTimes.filter((t) => t > now);
    this.played += this.chimeTimes.length - future.length;
    this.chimeTimes = future;
  }

  /** How many chimes have actually sounded so far (for tests and support). */
  chimesPlayed() {
    this.settle();
    return this.played;
  }
}
