// The in-call screen, the same for the station and the clinician: large
// remote video, small self view, connection state, controls, and the text
// chat (for spelling drug names and doses).

import { $, el, fill, icon, setIcon, announce, formatDuration, confirmButton, URGENCY, clockTime } from './ui.js';
import { QUALITY_LIMITS } from './call.js';
import { nextCamera } from './media.js';

const CONNECTION_TEXT = {
  new: ['Setting up the call\u2026', 'pending'],
  connecting: ['Connecting\u2026', 'pending'],
  connected: ['Connected', 'ok'],
  disconnected: ['Connection interrupted: trying to recover\u2026', 'warn'],
  failed: ['Connection failed: trying again\u2026', 'bad'],
  closed: ['Call ended', 'off'],
};

const QUALITY_TEXT = {
  good: ['Good connection', 'bars-3'],
  fair: ['Fair connection', 'bars-2'],
  poor: ['Poor connection', 'bars-1'],
};

/** After "Keep video", the poor-link offer stays away this long. */
const OFFER_SNOOZE_MS = 2 * 60_000;

function controlButton(name, iconName, label, extra = {}) {
  return el('button', { type: 'button', class: `control control-${name}`, 'data-control': name, ...extra },
    icon(iconName), el('span', { class: 'label', text: label }));
}

export class CallView {
  /**
   * @param {HTMLElement} section the (empty) <section data-view="call">
   * @param {{socket: any, onHangUp: () => void, marks: object}} o
   */
  constructor(section, { socket, onHangUp, marks }) {
    this.socket = socket;
    this.marks = marks;
    this.call = null;
    this.info = null;
    this.timer = null;
    this.frameWatch = null;
    this.connectionState = 'new';
    this.link = { state: 'new', attempt: 0 };
    this.offerSnoozedUntil = 0;
    this.returnedTimer = null;
    this.build(section);
    this.disarmHangUp = confirmButton(this.hangUpButton, { armedLabel: 'Press again to end', action: () => onHangUp() });
  }

  build(section) {
    section.classList.add('call-view');
    this.peerName = el('span', { class: 'peer-name' });
    this.peerMeta = el('span', { class: 'peer-meta' });
    this.consult = el('div', { class: 'call-consult' });
    this.statusText = el('span', { class: 'label' });
    this.elapsed = el('span', { class: 'call-elapsed', 'aria-label': 'Call time' });
    this.status = el('div', { class: 'call-status', role: 'status', 'data-tone': 'pending' },
      el('span', { class: 'dot', 'aria-hidden': 'true' }), this.statusText);
    this.remoteVideo = el('video', { class: 'remote-video', autoplay: true, playsinline: true, 'aria-label': 'Video from the other side' });
    this.remotePlaceholder = el('div', { class: 'remote-placeholder' }, icon('user', 'big'), el('p', { class: 'placeholder-text', text: 'Connecting\u2026' }));
    this.remoteFlags = el('ul', { class: 'remote-flags', 'aria-label': 'The other side' });
    this.soundButton = el('button', { type: 'button', class: 'btn btn-secondary sound-on', hidden: true },
      icon('speaker'), 'Turn on sound');
    this.soundButton.addEventListener('click', () => {
      this.remoteVideo.muted = false;
      this.remoteVideo.play().then(() => { this.soundButton.hidden = true; }).catch(() => {});
    });
    this.selfVideo = el('video', { class: 'self-video', autoplay: true, playsinline: true, muted: true, 'aria-label': 'Your camera' });
    this.selfVideo.muted = true;
    this.selfOffText = el('span', { text: 'Your camera is off' });
    this.selfOff = el('div', { class: 'self-off', hidden: true }, icon('cam-off'), this.selfOffText);
    this.notice = el('div', { class: 'call-notice', role: 'alert', hidden: true });
    this.peerNotice = el('div', { class: 'call-notice peer-notice', role: 'status', hidden: true });
    this.serverNotice = el('div', { class: 'call-notice server-notice', role: 'status', hidden: true },
      icon('server'), el('span', { text: 'Lost contact with the MIU Link server. The call carries on while the video flows; reconnecting in the background.' }));
    this.infoNotice = el('div', { class: 'call-notice info-notice', role: 'status', hidden: true });
    this.dutyBox = el('div', { class: 'duty-in-call', hidden: true });

    // Shown over the remote picture whenever the media path is broken:
    // never a frozen picture without a word.
    this.overlayTitle = el('p', { class: 'overlay-title', text: 'Reconnecting\u2026' });
    this.overlayDetail = el('p', { class: 'overlay-detail' });
    this.overlayAttempt = el('p', { class: 'overlay-attempt' });
    this.remoteOverlay = el('div', { class: 'remote-overlay', hidden: true },
      el('span', { class: 'spinner spinner-big', 'aria-hidden': 'true' }), this.overlayTitle, this.overlayDetail, this.overlayAttempt);

    this.qualityLabel = el('span', { class: 'label' });
    this.quality = el('span', { class: 'quality', hidden: true, 'data-level': '' }, icon('bars-3'), this.qualityLabel);

    // A poor link offers audio only; audio only offers video back.
    this.audioOnlyYes = el('button', { type: 'button', class: 'btn btn-primary', 'data-action': 'audio-only' }, icon('speaker'), 'Switch to audio only');
    this.audioOnlyNo = el('button', { type: 'button', class: 'btn btn-quiet', 'data-action': 'keep-video' }, 'Keep video');
    this.offer = el('div', { class: 'call-notice quality-offer', role: 'alert', hidden: true },
      icon('bars-1'),
      el('div', { class: 'notice-body' },
        el('p', { class: 'notice-title', text: 'Poor connection' }),
        el('p', { text: 'The picture is breaking up. Audio only keeps the voice clear; you can turn video back on at any time.' }),
        el('div', { class: 'notice-actions' }, this.audioOnlyYes, this.audioOnlyNo)));
    this.audioOnlyYes.addEventListener('click', () => this.setAudioOnly(true));
    this.audioOnlyNo.addEventListener('click', () => {
      this.offerSnoozedUntil = Date.now() + OFFER_SNOOZE_MS;
      this.offer.hidden = true;
    });
    this.videoBackButton = el('button', { type: 'button', class: 'btn btn-secondary video-back', 'data-action': 'video-back' }, icon('cam'), 'Turn video back on');
    this.videoBackButton.addEventListener('click', () => this.setAudioOnly(false));
    this.audioOnlyText = el('p', { class: 'audio-only-text' });
    this.audioOnlyPanel = el('div', { class: 'audio-only-panel', hidden: true },
      el('span', { class: 'audio-only-icon' }, icon('speaker', 'big')),
      el('p', { class: 'audio-only-title', text: 'Audio only' }),
      this.audioOnlyText,
      this.videoBackButton);
    this.waitingOthers = el('span', { class: 'others-waiting', hidden: true });

    this.micButton = controlButton('mic', 'mic', 'Mute', { 'aria-pressed': 'false', 'data-focus': true });
    this.camButton = controlButton('camera', 'cam', 'Camera off', { 'aria-pressed': 'false' });
    this.switchButton = controlButton('switch', 'switch-cam', 'Switch camera', { hidden: true });
    this.audioOnlyButton = controlButton('audio-only', 'speaker', 'Audio only', { 'aria-pressed': 'false' });
    this.audioOnlyButton.addEventListener('click', () => this.setAudioOnly(this.audioOnlyButton.getAttribute('aria-pressed') !== 'true'));
    this.hangUpButton = controlButton('hangup', 'hangup', 'Hang up');
    // Below 1025 px the chat waits behind this button (the picture comes
    // first); messages that arrive meanwhile are counted on it, in words.
    this.chatUnread = 0;
    this.chatUnreadText = el('span', { class: 'chat-unread', hidden: true });
    this.chatToggle = controlButton('chat', 'chat', 'Chat', { 'aria-expanded': 'false', 'aria-controls': 'call-chat' });
    this.chatToggle.classList.add('chat-toggle');
    this.chatToggle.append(this.chatUnreadText);
    this.chatToggle.addEventListener('click', () => this.setChatOpen(this.chatToggle.getAttribute('aria-expanded') !== 'true'));
    this.micButton.addEventListener('click', () => this.toggleMic());
    this.camButton.addEventListener('click', () => this.toggleCamera());
    this.switchButton.addEventListener('click', () => this.switchCamera());

    // The log is a scrollable region (focusable, so the keyboard can scroll
    // it) holding a list: role=log on the <ol> itself would hide that it
    // is a list.
    this.chatList = el('ol', { class: 'chat-list' });
    this.chatLog = el('div', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat messages', tabindex: '0' }, this.chatList);
    this.chatCallId = null;
    this.chatEmpty = el('p', { class: 'chat-empty', text: 'Type here to spell out a drug name, a dose or a number.' });
    this.chatInput = el('input', { id: 'chat-input', type: 'text', maxlength: '500', autocomplete: 'off', placeholder: 'Type a message', disabled: true });
    this.chatSend = el('button', { type: 'submit', class: 'btn btn-primary chat-send', disabled: true }, icon('send'), el('span', { text: 'Send' }));
    this.chatState = el('p', { class: 'chat-state', text: 'Chat starts when the call connects.' });
    const chatForm = el('form', { class: 'chat-form' },
      el('label', { for: 'chat-input', class: 'visually-hidden', text: 'Chat message' }), this.chatInput, this.chatSend);
    chatForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = this.chatInput.value.trim();
      if (!text || !this.call) return;
      if (this.call.sendChat(text)) this.chatInput.value = '';
    });

    this.chatPanel = this.buildChat(chatForm);
    section.replaceChildren(
      el('div', { class: 'call-stage' },
        el('header', { class: 'call-top' },
          el('div', { class: 'call-top-left' },
            el('div', { class: 'peer' }, this.peerName, this.peerMeta),
            this.consult),
          el('div', { class: 'call-top-right' }, this.waitingOthers, this.quality, this.status, this.elapsed)),
        el('div', { class: 'remote' }, this.remoteVideo, this.remotePlaceholder, this.audioOnlyPanel, this.remoteOverlay, this.remoteFlags, this.soundButton),
        el('figure', { class: 'self-view' }, this.selfVideo, this.selfOff, el('figcaption', { text: 'You' })),
        el('div', { class: 'call-notices' }, this.dutyBox, this.notice, this.serverNotice, this.peerNotice, this.offer, this.infoNotice),
        el('div', { class: 'call-controls', role: 'toolbar', 'aria-label': 'Call controls' },
          this.micButton, this.camButton, this.switchButton, this.audioOnlyButton, this.chatToggle, this.hangUpButton)),
      this.chatPanel);
    this.section = section;
    this.setChatOpen(false);
  }

  /** The chat panel, with its heading, log and message box. */
  buildChat(chatForm) {
    const panel = el('aside', { class: 'chat', id: 'call-chat', 'aria-labelledby': 'chat-title' },
      el('h2', { id: 'chat-title', text: 'Chat' }),
      this.chatState,
      this.chatEmpty,
      this.chatLog,
      chatForm);
    // Escape in the chat closes it where it is behind the button.
    panel.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape' || !this.chatCollapsible()) return;
      e.preventDefault();
      this.setChatOpen(false);
      this.chatToggle.focus();
    });
    return panel;
  }

  /** True where the chat sits behind its button (narrow screens). */
  chatCollapsible() {
    return this.chatToggle.getClientRects().length > 0;
  }

  setChatOpen(open) {
    this.chatToggle.setAttribute('aria-expanded', String(open));
    if (this.section) this.section.dataset.chat = open ? 'open' : 'closed';
    if (open) this.setChatUnread(0);
  }

  setChatUnread(count) {
    this.chatUnread = count;
    this.chatUnreadText.hidden = count === 0;
    if (count === 0) {
      this.chatUnreadText.replaceChildren();
      return;
    }
    // Read as "Chat, 2 new messages"; shown as "Chat" with a "2 new" badge.
    this.chatUnreadText.replaceChildren(el('span', { class: 'visually-hidden', text: ', ' }), `${count} new`,
      el('span', { class: 'visually-hidden', text: count === 1 ? ' message' : ' messages' }));
  }

  /** A new call: no messages, chat closed (on narrow screens). */
  clearChat(callId) {
    this.chatList.replaceChildren();
    this.chatEmpty.hidden = false;
    this.chatCallId = callId;
    this.setChatOpen(false);
  }

  /**
   * The chat of the call that ended, read-only, for the after-call screens:
   * a <section> headed "Chat from this call", or null if nobody wrote
   * (or the messages are of another call than `callId`, when given). The
   * messages stay in this page: they were never sent to the server.
   */
  transcript({ headingId, callId, until = 'until the next request' } = {}) {
    const items = [...this.chatList.children];
    if (items.length === 0) return null;
    if (callId !== undefined && this.chatCallId !== null && callId !== this.chatCallId) return null;
    return el('section', { class: 'chat-transcript', 'aria-labelledby': headingId },
      el('h2', { id: headingId, text: 'Chat from this call' }),
      el('p', { class: 'hint', text: `Only on this screen, ${until}. MIU Link does not store the chat.` }),
      el('ol', { class: 'chat-list' }, items.map((li) => li.cloneNode(true))));
  }

  showHeader(peer, consult) {
    this.peerName.textContent = peer.display_name;
    this.peerMeta.textContent = [peer.role === 'clinician' ? 'A&E clinician' : 'MIU station', peer.site].filter(Boolean).join(' \u00b7 ');
    const u = URGENCY[consult.urgency] || { label: consult.urgency, icon: 'info' };
    fill(this.consult,
      el('span', { class: `badge urgency-${consult.urgency}` }, icon(u.icon), u.label),
      el('span', { class: 'consult-reason', text: consult.reason }),
      consult.patient_ref ? el('span', { class: 'consult-ref', text: `Ref ${consult.patient_ref}` }) : null);
  }

  /**
   * The clinician pressed Answer: show the call screen straight away (the
   * server confirms within a moment), with their own camera.
   */
  answering(entry, media) {
    this.call = null;
    this.info = null;
    this.disarmHangUp();
    this.showHeader({ display_name: entry.station, role: 'station', site: entry.site }, entry);
    this.clearChat(null);
    this.resetCallState();
    this.setConnection('new');
    this.statusText.textContent = 'Answering\u2026';
    this.setPeerOnline(true);
    this.showPeerMedia({ mic: true, camera: true });
    this.elapsed.textContent = '0:00';
    media.then((local) => this.showLocal(local));
  }

  /** A `call_start`, with the Call that carries it. */
  begin(start, call) {
    const same = this.call === call;
    this.call = call;
    this.info = start;
    this.disarmHangUp();
    const peer = start.peer;
    this.showHeader(peer, start.consult);
    this.setServerOnline(true);
    this.setPeerOnline(true);
    if (same) {
      // Our signalling connection came back; the call itself carried on.
      this.setConnection(call.pc ? call.pc.connectionState : 'new');
      this.setLink({ state: call.link, attempt: call.recovery ? call.recovery.attempt : 0 });
      return;
    }
    if (!start.resumed) this.clearChat(start.call_id);
    else this.chatCallId = start.call_id;
    this.resetCallState();
    this.setConnection('new');
    this.showPeerMedia({ mic: true, camera: true });
    // A new call starts with the microphone and camera on (a new Call).
    this.showMicMuted(false);
    this.showCameraOff(false);
    window.clearInterval(this.timer);
    const tick = () => {
      this.elapsed.textContent = formatDuration(this.socket.serverNow() - start.consult.accepted_at);
    };
    tick();
    this.timer = window.setInterval(tick, 1000);
    call.media.then((local) => this.showLocal(local));
    announce(`Call with ${peer.display_name} is starting.`, { assertive: true });
  }

  showLocal(local) {
    this.selfVideo.srcObject = local.stream;
    this.selfOff.hidden = local.hasVideo;
    this.selfOffText.textContent = local.hasVideo ? 'Your camera is off' : 'No camera: audio only';
    this.camButton.disabled = !local.hasVideo;
    this.micButton.disabled = !local.hasAudio;
    if (local.warning) this.showNotice(local.warning);
    else this.notice.hidden = true;
    if (local.hasVideo) {
      navigator.mediaDevices.enumerateDevices().then((devices) => {
        this.switchButton.hidden = devices.filter((d) => d.kind === 'videoinput').length < 2;
      }).catch(() => {});
    }
  }

  showNotice(text) {
    this.notice.replaceChildren(icon('alert'), el('span', { text }));
    this.notice.hidden = false;
  }

  /** Everything the Call reports. */
  handle(event, detail) {
    switch (event) {
      case 'remote-stream':
        this.remoteVideo.srcObject = detail;
        this.remotePlaceholder.hidden = false;
        this.watchFirstFrame();
        break;
      case 'remote-track':
        this.playRemote();
        break;
      case 'connection':
        this.setConnection(detail);
        break;
      case 'media-flowing':
        if (this.marks) this.marks.mediaFlowing = performance.timeOrigin + performance.now();
        break;
      case 'chat':
        this.addChat(detail);
        break;
      case 'chat-open':
        this.chatInput.disabled = !detail;
        this.chatSend.disabled = !detail;
        this.chatState.hidden = detail;
        break;
      case 'peer-media':
        this.showPeerMedia(detail);
        break;
      case 'quality':
        this.showQuality(detail);
        break;
      case 'link':
        this.setLink(detail);
        break;
      case 'recovered':
        // Only where the interruption was shown (the other side may have
        // asked for a restart this side never noticed it needed).
        if (this.link.state !== 'reconnecting') break;
        this.showInfo(`Reconnected after ${Math.max(1, Math.round(detail.interruptedMs / 1000))} s.`, 6000);
        announce('Call reconnected.', { assertive: true });
        break;
      case 'audio-only':
        this.showAudioOnly(detail);
        break;
      case 'error':
        this.showNotice(detail);
        break;
      default:
        break;
    }
  }

  /**
   * Plays the remote side. Without a click on this page (e.g. after a
   * reload) the browser refuses sound: play muted, and offer a button.
   */
  playRemote() {
    const video = this.remoteVideo;
    video.muted = false;
    video.play().then(() => { this.soundButton.hidden = true; }).catch(() => {
      video.muted = true;
      video.play().catch(() => {});
      this.soundButton.hidden = false;
    });
  }

  watchFirstFrame() {
    const video = this.remoteVideo;
    if (!('requestVideoFrameCallback' in video)) return;
    const stream = video.srcObject;
    video.requestVideoFrameCallback(() => {
      if (video.srcObject !== stream) return;
      this.remotePlaceholder.hidden = true;
      if (this.marks && !this.marks.firstRemoteFrame) this.marks.firstRemoteFrame = performance.timeOrigin + performance.now();
    });
  }

  setConnection(state) {
    this.connectionState = state;
    this.status.dataset.state = state;
    if (state === 'connected' && this.link.state !== 'reconnecting') announce('Call connected.');
    this.renderStatus();
  }

  /** The media path: `ok`, or `reconnecting` while the call recovers it. */
  setLink({ state, attempt = 0 }) {
    const was = this.link.state;
    this.link = { state, attempt };
    if (state === 'reconnecting' && was !== 'reconnecting') {
      announce('The call was interrupted. Reconnecting.', { assertive: true });
    }
    this.renderStatus();
  }

  renderStatus() {
    const reconnecting = this.link.state === 'reconnecting' && this.connectionState !== 'closed';
    const [text, tone] = reconnecting
      ? ['Reconnecting\u2026', 'warn']
      : CONNECTION_TEXT[this.connectionState] || [this.connectionState, 'pending'];
    this.status.dataset.tone = tone;
    this.status.dataset.link = reconnecting ? 'reconnecting' : 'ok';
    this.statusText.textContent = text;
    const placeholderText = this.remotePlaceholder.querySelector('.placeholder-text');
    if (this.connectionState !== 'connected' && placeholderText && !this.remoteVideo.classList.contains('camera-off')) placeholderText.textContent = text;
    // The overlay goes over the (last) picture once the call had one.
    this.remoteOverlay.hidden = !reconnecting;
    if (reconnecting) {
      const who = this.info ? this.info.peer.display_name : 'the other side';
      this.overlayDetail.textContent = `The connection to ${who} was interrupted. MIU Link is restoring it by itself: stay on the call.`;
      this.overlayAttempt.textContent = this.link.attempt > 1
        ? `Trying a new connection (attempt ${this.link.attempt})`
        : this.link.attempt === 1 ? 'Finding a new network path\u2026' : 'Waiting for the network\u2026';
      this.offer.hidden = true;
    }
  }

  setServerOnline(online) {
    this.serverNotice.hidden = online;
  }

  /** A short-lived note (reconnected, back in the call). */
  showInfo(text, ms) {
    window.clearTimeout(this.returnedTimer);
    this.infoNotice.replaceChildren(icon('check'), el('span', { text }));
    this.infoNotice.hidden = false;
    this.returnedTimer = window.setTimeout(() => { this.infoNotice.hidden = true; }, ms);
  }

  /** This page was reloaded (or reopened) during the call and has found it again. */
  showReturned(peerName) {
    this.showInfo(`Back in your call with ${peerName}. The picture returns in a moment.`, 10_000);
    announce(`Back in your call with ${peerName}.`, { assertive: true });
  }

  setPeerOnline(online) {
    if (online) {
      this.peerNotice.hidden = true;
      return;
    }
    const who = this.info ? this.info.peer.display_name : 'The other side';
    this.peerNotice.replaceChildren(icon('signal'),
      el('span', { text: `${who} has lost contact with the server. The call carries on if the video still flows; otherwise it resumes when they are back.` }));
    this.peerNotice.hidden = false;
    announce(`${who} has lost contact with the server.`, { assertive: true });
  }

  showPeerMedia({ mic, camera }) {
    fill(this.remoteFlags,
      mic ? null : el('li', {}, icon('mic-off'), 'Muted'),
      camera ? null : el('li', {}, icon('cam-off'), 'Camera off'));
    this.remoteVideo.classList.toggle('camera-off', !camera);
    const placeholderText = this.remotePlaceholder.querySelector('.placeholder-text');
    if (!camera) {
      this.remotePlaceholder.hidden = false;
      placeholderText.textContent = 'Audio only: their camera is off';
    } else if (this.remoteVideo.readyState >= 2 && this.status.dataset.state === 'connected') {
      this.remotePlaceholder.hidden = true;
    }
  }

  showQuality(q) {
    if (!q || !q.level) {
      this.quality.hidden = true;
      return;
    }
    const [text, bars] = QUALITY_TEXT[q.level];
    this.quality.hidden = false;
    this.quality.dataset.level = q.level;
    this.qualityLabel.textContent = text;
    setIcon($('svg', this.quality), bars);
    const parts = [];
    if (q.rttMs !== null) parts.push(`round trip ${q.rttMs} ms`);
    parts.push(`loss ${q.lossPct.toFixed(1)}%`);
    parts.push(`${Math.round(q.kbps)} kbit/s received`);
    if (!q.audioOnly) parts.push(`${Math.round(q.fps)} frames/s`);
    if (q.relayed) parts.push('through the relay server');
    this.quality.title = `${text}: ${parts.join(', ')}. Poor over ${QUALITY_LIMITS.poor.rttMs} ms or ${QUALITY_LIMITS.poor.lossPct}% loss.`;
    this.quality.setAttribute('aria-label', `${text}: ${parts.join(', ')}`);
    const offer = q.offerAudioOnly && Date.now() >= this.offerSnoozedUntil && this.link.state === 'ok';
    if (offer && this.offer.hidden) announce('Poor connection. You can switch to audio only.', { assertive: true });
    this.offer.hidden = !offer;
  }

  setAudioOnly(on) {
    if (!this.call) return;
    this.call.setAudioOnly(on);
  }

  showAudioOnly({ on, byPeer }) {
    this.audioOnlyButton.setAttribute('aria-pressed', String(on));
    this.offer.hidden = true;
    this.audioOnlyPanel.hidden = !on;
    this.remoteVideo.classList.toggle('audio-only', on);
    const who = this.info ? this.info.peer.display_name : 'The other side';
    const text = on
      ? `${byPeer ? `${who} switched` : 'You switched'} the call to audio only: video is off on both sides to keep the voice clear.`
      : `${byPeer ? `${who} turned` : 'You turned'} video back on.`;
    this.audioOnlyText.textContent = on ? text : '';
    if (!on) this.showInfo(text, 5000);
    announce(text, { assertive: byPeer });
  }

  /** Escalated requests shown to a duty holder during a call (they cannot answer from here). */
  setDutyAlerts(entries, waitedNow) {
    this.dutyBox.hidden = entries.length === 0;
    fill(this.dutyBox, entries.map((entry) => {
      const u = URGENCY[entry.urgency] || { label: entry.urgency };
      return el('div', { class: 'duty-in-call-item', 'data-id': entry.request_id },
        icon('alert'),
        el('p', {},
          el('strong', { text: 'Escalated: nobody has answered. ' }),
          `${u.label} request from ${entry.station}${entry.site ? ` (${entry.site})` : ''}: ${entry.reason}. `,
          el('span', { class: 'duty-wait', 'data-wait-id': entry.request_id, text: `Waiting ${formatDuration(waitedNow(entry))}` }),
          '. You are in a call, so ask a free colleague to answer it.'));
    }));
  }

  tickDuty(waitedNow, entries) {
    for (const entry of entries) {
      const span = this.dutyBox.querySelector(`[data-wait-id="${entry.request_id}"]`);
      if (span) span.textContent = `Waiting ${formatDuration(waitedNow(entry))}`;
    }
  }

  resetCallState() {
    this.link = { state: 'new', attempt: 0 };
    this.offer.hidden = true;
    this.offerSnoozedUntil = 0;
    this.quality.hidden = true;
    this.remoteOverlay.hidden = true;
    this.audioOnlyPanel.hidden = true;
    this.remoteVideo.classList.remove('audio-only');
    this.audioOnlyButton.setAttribute('aria-pressed', 'false');
    this.infoNotice.hidden = true;
    this.setServerOnline(true);
  }

  addChat({ text, mine, at }) {
    this.chatEmpty.hidden = true;
    const who = mine ? 'You' : (this.info ? this.info.peer.display_name : 'Them');
    this.chatList.append(el('li', { class: mine ? 'mine' : 'theirs' },
      el('span', { class: 'chat-meta' }, el('strong', { text: who }), ` ${clockTime(at)}`),
      el('span', { class: 'chat-text', text })));
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
    // Behind its button: count it, and say so (a hidden log is not read out).
    if (!mine && this.chatPanel.getClientRects().length === 0) {
      this.setChatUnread(this.chatUnread + 1);
      announce(`New chat message from ${who}: ${text}`);
    }
  }

  toggleMic() {
    if (!this.call) return;
    const muted = this.micButton.getAttribute('aria-pressed') !== 'true';
    this.call.setMic(!muted);
    this.showMicMuted(muted);
    announce(muted ? 'Microphone muted.' : 'Microphone on.');
  }

  /** The mute button's state, label and icon, together. */
  showMicMuted(muted) {
    this.micButton.setAttribute('aria-pressed', String(muted));
    $('.label', this.micButton).textContent = muted ? 'Unmute' : 'Mute';
    setIcon($('svg', this.micButton), muted ? 'mic-off' : 'mic');
  }

  toggleCamera() {
    if (!this.call) return;
    const off = this.camButton.getAttribute('aria-pressed') !== 'true';
    this.call.setCamera(!off);
    this.showCameraOff(off);
    this.selfOff.hidden = !off;
    announce(off ? 'Camera off.' : 'Camera on.');
  }

  /** The camera button's state, label and icon, together. */
  showCameraOff(off) {
    this.camButton.setAttribute('aria-pressed', String(off));
    $('.label', this.camButton).textContent = off ? 'Camera on' : 'Camera off';
    setIcon($('svg', this.camButton), off ? 'cam-off' : 'cam');
  }

  async switchCamera() {
    if (!this.call || !this.call.local) return;
    const current = this.call.local.stream.getVideoTracks()[0];
    const currentId = current ? current.getSettings().deviceId : null;
    this.switchButton.disabled = true;
    try {
      const next = await nextCamera(currentId);
      if (!next) {
        announce('There is no other camera.');
        return;
      }
      await this.call.replaceVideoTrack(next.track);
      this.selfVideo.srcObject = this.call.local.stream;
      announce(`Now using ${next.label}.`);
    } catch (e) {
      this.showNotice(`The other camera could not be started: ${e.message}`);
    } finally {
      this.switchButton.disabled = false;
    }
  }

  setOthersWaiting(count) {
    this.waitingOthers.hidden = count === 0;
    this.waitingOthers.replaceChildren(icon('bell'), `${count} waiting`);
  }

  end() {
    window.clearInterval(this.timer);
    this.disarmHangUp();
    this.remoteVideo.srcObject = null;
    this.selfVideo.srcObject = null;
    this.call = null;
  }
}
