// Alerts a clinician cannot miss: a repeating tone (Web Audio, no sound
// file), a desktop notification for every request, and a flashing title.
//
// A desktop notification can show on a locked screen or a shared monitor
// and may be kept by the operating system, so it says only how urgent the
// request is and where it comes from: never the reason or the local
// reference (the page's own queue shows those).
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

/**
 * The escalation alarm: unlike the ring, three short urgent beeps, high and
 * harsh enough to be told apart from it across a department.
 */
const ALARM_NOTES = [
  { at: 0, freq: 1318.5, length: 0.12 },
  { at: 0.18, freq: 1318.5, length: 0.12 },
  { at: 0.36, freq: 1568, length: 0.22 },
];
const ALARM_EVERY_S = 3;

/** Schedules one chime on `ctx` at time `t0`, into `destination`. */
export function playChime(ctx, destination, t0, notes = NOTES, type = 'triangle') {
  for (const note of notes) {
    const osc = ctx.createOscillator();
    const env = ctx.createGain();
    osc.type = type;
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
    // The escalation alarm has its own schedule and bus.
    this.alarmBus = null;
    this.alarmTimes = [];
    this.alarmUntil = 0;
    this.alarmTimer = null;
    this.alarmsSounded = 0;
    this.alarmWanted = null; // null | 'repeat' | 'once'
    this.escalationNotes = new Map();
    this.onceTimes = [];
    this.escalated = 0;
    // While an outcome is owed: what waits (the title counts it; the
    // clinician is not rung, so the page decides what sounds).
    this.owedQueue = [];
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (AudioContextClass) {
      this.ctx = new AudioContextClass();
      this.ctx.addEventListener('statechange', () => {
        if (this.ctx.state === 'running' && this.ringing.size) this.startTone();
        if (this.ctx.state === 'running' && this.alarmWanted === 'repeat') this.startAlarm();
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

  /** Where a request comes from, for a notification: station (site). */
  static origin(entry) {
    return `${entry.station}${entry.site ? ` (${entry.site})` : ''}`;
  }

  /** A new `ring`: a notification of its own, whatever else is ringing. */
  notify(entry, urgencyLabel) {
    if (!this.notificationsOn) return;
    const prefix = { realerted: 'Still waiting: ', escalated: 'ESCALATED: ' }[entry.escalation] || '';
    const n = new Notification(`${prefix}${urgencyLabel} consult request`, {
      body: `From ${Alerts.origin(entry)}. Open MIU Link to see it and answer.`,
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
    this.startFlash();
  }

  startFlash() {
    window.clearInterval(this.flashTimer);
    let on = true;
    this.flashTimer = window.setInterval(() => {
      on = !on;
      this.renderTitle(on);
    }, 1000);
  }

  stopFlash() {
    window.clearInterval(this.flashTimer);
    this.flashTimer = null;
    document.title = this.baseTitle;
  }

  stop() {
    if (!this.escalated) this.stopFlash();
    window.clearInterval(this.refillTimer);
    this.refillTimer = null;
    this.settle();
    this.chimeTimes = [];
    if (this.bus) {
      // Disconnecting the bus silences every chime already scheduled.
      this.bus.disconnect();
      this.bus = null;
    }
    this.scheduledUntil = 0;
    this.renderTitle(true);
  }

  renderTitle(on) {
    if (this.escalated) {
      document.title = on
        ? `\u26A0 ESCALATED (${this.escalated}): nobody has answered: MIU Link`
        : `(${this.escalated}) Escalated request waiting: MIU Link`;
      return;
    }
    const owed = this.owedQueue.length;
    if (owed) {
      // The most urgent first: "(2) Waiting: IMMEDIATE – MIU Link"; it
      // flashes (with what to do) while something sounds.
      const top = this.owedQueue[0];
      const level = top.escalation === 'escalated' ? ', ESCALATED' : '';
      document.title = on
        ? `(${owed}) Waiting: ${(top.urgency || '').toUpperCase()}${level} \u2013 MIU Link`
        : `(${owed}) Save the outcome to answer \u2013 MIU Link`;
      return;
    }
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

  /**
   * The escalation alarm. `repeat`: every few seconds until stopped (a
   * duty holder who is not in a call); `once`: a single alarm (in a call,
   * where a repeating alarm would drown the consult).
   */
  alarm(mode) {
    if (mode === 'repeat') {
      this.alarmWanted = 'repeat';
      this.startAlarm();
    } else if (this.soundOn) {
      // Its own gain node: stopping the repeating alarm leaves it alone.
      const bus = this.ctx.createGain();
      bus.gain.value = 0.25;
      bus.connect(this.ctx.destination);
      const t0 = this.ctx.currentTime + 0.05;
      playChime(this.ctx, bus, t0, ALARM_NOTES, 'square');
      this.onceTimes.push(t0);
    }
  }

  makeAlarmBus() {
    this.alarmBus = this.ctx.createGain();
    this.alarmBus.gain.value = 0.25;
    this.alarmBus.connect(this.ctx.destination);
  }

  startAlarm() {
    if (!this.soundOn || this.alarmTimer) return;
    if (!this.alarmBus) this.makeAlarmBus();
    this.alarmUntil = Math.max(this.alarmUntil, this.ctx.currentTime + 0.05);
    const refill = () => {
      this.settleAlarms();
      const horizon = this.ctx.currentTime + SCHEDULE_AHEAD_S;
      while (this.alarmUntil < horizon) {
        playChime(this.ctx, this.alarmBus, this.alarmUntil, ALARM_NOTES, 'square');
        this.alarmTimes.push(this.alarmUntil);
        this.alarmUntil += ALARM_EVERY_S;
      }
    };
    refill();
    this.alarmTimer = window.setInterval(refill, 5000);
  }

  stopAlarm() {
    this.alarmWanted = null;
    window.clearInterval(this.alarmTimer);
    this.alarmTimer = null;
    this.settleAlarms();
    this.alarmTimes = [];
    this.alarmUntil = 0;
    if (this.alarmBus) {
      this.alarmBus.disconnect();
      this.alarmBus = null;
    }
  }

  settleAlarms() {
    if (!this.ctx) return;
    const now = this.ctx.currentTime;
    for (const key of ['alarmTimes', 'onceTimes']) {
      const future = this[key].filter((t) => t > now);
      this.alarmsSounded += this[key].length - future.length;
      this[key] = future;
    }
  }

  /** How many escalation alarms have sounded so far (for tests and support). */
  alarmsPlayed() {
    this.settleAlarms();
    return this.alarmsSounded;
  }

  /** An escalated request: a notification that stays until clicked, whatever else is going on. */
  notifyEscalation(entry, urgencyLabel, waited) {
    if (!this.notificationsOn) return;
    const n = new Notification(`ESCALATED: ${urgencyLabel} request, nobody has answered`, {
      body: `From ${Alerts.origin(entry)}. Waiting ${waited}. Open MIU Link to answer.`,
      tag: `miulink-escalation-${entry.request_id}`,
      requireInteraction: true,
    });
    n.addEventListener('click', () => {
      window.focus();
      n.close();
    });
    const old = this.escalationNotes.get(entry.request_id);
    if (old) old.close();
    this.escalationNotes.set(entry.request_id, n);
    this.notified += 1;
    this.escalationsNotified = (this.escalationsNotified || 0) + 1;
  }

  /** Closes the escalation notification of a request that is no longer waiting. */
  closeEscalation(requestId) {
    const n = this.escalationNotes.get(requestId);
    if (n) n.close();
    this.escalationNotes.delete(requestId);
  }

  /**
   * The queue while the clinician owes an outcome (null or empty: none, or
   * nothing owed): the title counts it. What sounds is `setRinging`'s.
   */
  setOwedQueue(entries) {
    this.owedQueue = entries ? [...entries] : [];
    this.renderTitle(true);
  }

  /** How many escalated requests the title should shout about (duty holders). */
  setEscalated(count) {
    const before = this.escalated;
    this.escalated = count;
    if (count && !this.flashTimer) this.startFlash();
    else if (!count && before && !this.ringing.size) this.stopFlash();
    this.renderTitle(true);
  }

  /** How many chimes have actually sounded so far (for tests and support). */
  chimesPlayed() {
    this.settle();
    return this.played;
  }
}
