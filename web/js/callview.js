// The in-call screen, the same for the station and the clinician: large
// remote video, small self view, connection state, controls, and the text
// chat (for spelling drug names and doses).

import { $, el, fill, icon, setIcon, announce, formatDuration, confirmButton, URGENCY, clockTime } from './ui.js';
import { nextCamera } from './media.js';

const CONNECTION_TEXT = {
  new: ['Setting up the call\u2026', 'pending'],
  connecting: ['Connecting\u2026', 'pending'],
  connected: ['Connected', 'ok'],
  disconnected: ['Connection interrupted: trying to recover\u2026', 'warn'],
  failed: ['Connection failed: trying again\u2026', 'bad'],
  closed: ['Call ended', 'off'],
};

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
    this.waitingOthers = el('span', { class: 'others-waiting', hidden: true });

    this.micButton = controlButton('mic', 'mic', 'Mute', { 'aria-pressed': 'false', 'data-focus': true });
    this.camButton = controlButton('camera', 'cam', 'Camera off', { 'aria-pressed': 'false' });
    this.switchButton = controlButton('switch', 'switch-cam', 'Switch camera', { hidden: true });
    this.hangUpButton = controlButton('hangup', 'hangup', 'Hang up');
    this.micButton.addEventListener('click', () => this.toggleMic());
    this.camButton.addEventListener('click', () => this.toggleCamera());
    this.switchButton.addEventListener('click', () => this.switchCamera());

    this.chatLog = el('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Chat messages' });
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

    section.replaceChildren(
      el('div', { class: 'call-stage' },
        el('header', { class: 'call-top' },
          el('div', { class: 'call-top-left' },
            el('div', { class: 'peer' }, this.peerName, this.peerMeta),
            this.consult),
          el('div', { class: 'call-top-right' }, this.waitingOthers, this.status, this.elapsed)),
        el('div', { class: 'remote' }, this.remoteVideo, this.remotePlaceholder, this.remoteFlags, this.soundButton),
        el('figure', { class: 'self-view' }, this.selfVideo, this.selfOff, el('figcaption', { text: 'You' })),
        el('div', { class: 'call-notices' }, this.notice, this.peerNotice),
        el('div', { class: 'call-controls', role: 'toolbar', 'aria-label': 'Call controls' },
          this.micButton, this.camButton, this.switchButton, this.hangUpButton)),
      el('aside', { class: 'chat', 'aria-labelledby': 'chat-title' },
        el('h2', { id: 'chat-title', text: 'Chat' }),
        this.chatState,
        this.chatEmpty,
        this.chatLog,
        chatForm));
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
    this.chatLog.replaceChildren();
    this.chatEmpty.hidden = false;
    this.setConnection('new');
    this.statusText.textContent = 'Answering\u2026';
    this.setPeerOnline(true);
    this.showPeerMedia({ mic: true, camera: true });
    this.elapsed.textContent = '0:00';
    media.then((local) => this.showLocal(local));
  }

  /** A `call_start`, with the Call that carries it. */
  begin(start, call) {
    this.call = call;
    this.info = start;
    this.disarmHangUp();
    const peer = start.peer;
    this.showHeader(peer, start.consult);
    if (!start.resumed) {
      this.chatLog.replaceChildren();
      this.chatEmpty.hidden = false;
    }
    this.setConnection('new');
    this.setPeerOnline(true);
    this.showPeerMedia({ mic: true, camera: true });
    this.micButton.setAttribute('aria-pressed', 'false');
    this.camButton.setAttribute('aria-pressed', 'false');
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
      case 'stats':
        this.showStats(detail);
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
    const [text, tone] = CONNECTION_TEXT[state] || [state, 'pending'];
    this.status.dataset.tone = tone;
    this.statusText.textContent = text;
    this.status.dataset.state = state;
    if (state === 'connected') announce('Call connected.');
    if (state === 'failed' || state === 'disconnected') announce(text, { assertive: true });
    const placeholderText = this.remotePlaceholder.querySelector('.placeholder-text');
    if (state !== 'connected' && placeholderText) placeholderText.textContent = text;
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

  showStats(figures) {
    const quality = figures.rttMs === null ? '' : figures.rttMs < 250 ? 'good' : figures.rttMs < 600 ? 'fair' : 'poor';
    this.status.title = figures.rttMs === null ? '' : `Round trip ${figures.rttMs} ms, ${quality}`;
  }

  addChat({ text, mine, at }) {
    this.chatEmpty.hidden = true;
    const who = mine ? 'You' : (this.info ? this.info.peer.display_name : 'Them');
    this.chatLog.append(el('li', { class: mine ? 'mine' : 'theirs' },
      el('span', { class: 'chat-meta' }, el('strong', { text: who }), ` ${clockTime(at)}`),
      el('span', { class: 'chat-text', text })));
    this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  toggleMic() {
    if (!this.call) return;
    const muted = this.micButton.getAttribute('aria-pressed') !== 'true';
    this.call.setMic(!muted);
    this.micButton.setAttribute('aria-pressed', String(muted));
    $('.label', this.micButton).textContent = muted ? 'Unmute' : 'Mute';
    setIcon($('svg', this.micButton), muted ? 'mic-off' : 'mic');
    announce(muted ? 'Microphone muted.' : 'Microphone on.');
  }

  toggleCamera() {
    if (!this.call) return;
    const off = this.camButton.getAttribute('aria-pressed') !== 'true';
    this.call.setCamera(!off);
    this.camButton.setAttribute('aria-pressed', String(off));
    $('.label', this.camButton).textContent = off ? 'Camera on' : 'Camera off';
    setIcon($('svg', this.camButton), off ? 'cam-off' : 'cam');
    this.selfOff.hidden = !off;
    announce(off ? 'Camera off.' : 'Camera on.');
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
