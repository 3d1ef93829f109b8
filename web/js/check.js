// The device and network check: camera preview, microphone level, the
// alert tone, the server, and the ICE (STUN/TURN) servers calls will use.

import { $, el, icon, setIcon, announce } from './ui.js';
import { me, HOME } from './api.js';
import { listDevices, stopStream } from './media.js';
import { playChime } from './alerts.js';

const RESULT_ICON = { ok: 'check', bad: 'x', warn: 'alert', pending: 'clock', idle: 'speaker', info: 'info' };
const results = {};
window.miulink = { checks: results };

function setResult(name, status, text, detail) {
  results[name] = { status, text, detail: detail || '' };
  const badge = $(`#${name}-result`);
  badge.dataset.state = status;
  setIcon($('svg', badge), RESULT_ICON[status] || 'info');
  $('span', badge).textContent = text;
  const detailBox = $(`#${name}-detail`);
  if (detailBox && detail !== undefined) detailBox.textContent = detail;
  summarise();
}

function summarise() {
  const done = Object.values(results).filter((r) => r.status !== 'pending' && r.status !== 'idle');
  const pending = Object.values(results).some((r) => r.status === 'pending');
  const bad = done.filter((r) => r.status === 'bad').length;
  const warn = done.filter((r) => r.status === 'warn').length;
  const box = $('#check-summary');
  box.dataset.state = pending ? 'pending' : bad ? 'bad' : warn ? 'warn' : 'ok';
  box.textContent = pending
    ? 'Checking\u2026'
    : bad ? `${bad} problem${bad === 1 ? '' : 's'} found: see the red panels below.`
      : warn ? 'Usable, with warnings: see below.' : 'All checks passed: this device is ready for consults.';
}

let account = null;
try {
  account = await me();
} catch {
  account = null;
}
if (account && HOME[account.role]) {
  const back = $('#back-link');
  back.href = HOME[account.role];
  $('span', back).textContent = 'Back to MIU Link';
}

// ----- Camera --------------------------------------------------------------

let camStream = null;
async function startCamera(deviceId) {
  stopStream(camStream);
  camStream = null;
  setResult('cam', 'pending', 'Checking', '');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setResult('cam', 'bad', 'Not available', 'This browser cannot use a camera here. Use Chrome, Edge or Firefox, over https.');
    return;
  }
  try {
    const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
    if (deviceId) video.deviceId = { exact: deviceId };
    camStream = await navigator.mediaDevices.getUserMedia({ video });
    const track = camStream.getVideoTracks()[0];
    $('#cam-preview').srcObject = camStream;
    $('#cam-off').hidden = true;
    const s = track.getSettings();
    setResult('cam', 'ok', 'Working', `${track.label || 'Camera'}: ${s.width}\u00d7${s.height}. Check that the picture is sharp and well lit.`);
    await fillSelect('#cam-select', 'videoinput', s.deviceId);
  } catch (e) {
    $('#cam-off').hidden = false;
    const text = e.name === 'NotAllowedError'
      ? 'The browser is not allowed to use the camera. Allow it in the site settings (left of the address), then reload.'
      : e.name === 'NotFoundError' ? 'No camera found. Check that it is plugged in.'
        : `The camera did not start (${e.name}). Close other video programs and reload.`;
    setResult('cam', 'bad', 'Problem', `${text} Calls will be audio-only.`);
  }
}

async function fillSelect(selector, kind, currentId) {
  const select = $(selector);
  const devices = await listDevices(kind);
  select.replaceChildren(...devices.map((d, i) =>
    el('option', { value: d.deviceId, text: d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}` })));
  if (currentId) select.value = currentId;
  select.disabled = devices.length < 2;
}

$('#cam-select').addEventListener('change', (e) => startCamera(e.target.value));

// ----- Microphone ----------------------------------------------------------

let micStream = null;
let audioCtx = null;
let meterFrame = 0;
let loudest = 0;

function ensureAudio() {
  if (!audioCtx) {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (AudioContextClass) audioCtx = new AudioContextClass();
  }
  return audioCtx;
}

async function startMic(deviceId) {
  stopStream(micStream);
  micStream = null;
  window.cancelAnimationFrame(meterFrame);
  loudest = 0;
  setResult('mic', 'pending', 'Checking', '');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setResult('mic', 'bad', 'Not available', 'This browser cannot use a microphone here.');
    return;
  }
  try {
    const audio = { echoCancellation: true, noiseSuppression: true };
    if (deviceId) audio.deviceId = { exact: deviceId };
    micStream = await navigator.mediaDevices.getUserMedia({ audio });
  } catch (e) {
    const text = e.name === 'NotAllowedError'
      ? 'The browser is not allowed to use the microphone. Allow it in the site settings, then reload.'
      : e.name === 'NotFoundError' ? 'No microphone found. Check the headset or speakerphone is plugged in.'
        : `The microphone did not start (${e.name}).`;
    setResult('mic', 'bad', 'Problem', text);
    return;
  }
  const track = micStream.getAudioTracks()[0];
  await fillSelect('#mic-select', 'audioinput', track.getSettings().deviceId);
  const ctx = ensureAudio();
  if (!ctx) {
    setResult('mic', 'warn', 'Started', `${track.label || 'Microphone'} started; this browser cannot show its level.`);
    return;
  }
  const source = ctx.createMediaStreamSource(micStream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = $('#mic-level');
  const label = $('#mic-level-text');
  setResult('mic', 'pending', 'Listening', `${track.label || 'Microphone'} started. Say a few words.`);
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    const rms = Math.sqrt(sum / samples.length);
    // -60 dBFS (silence) .. 0 dBFS (loudest) as 0..100.
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.max(0, Math.min(100, Math.round(((db + 60) / 60) * 100)));
    meter.value = level;
    meter.textContent = `${level}%`;
    label.textContent = `${level}%`;
    if (level > loudest) loudest = level;
    if (loudest >= 20 && results.mic.status !== 'ok') {
      setResult('mic', 'ok', 'Working', `${track.label || 'Microphone'} picks up sound.`);
    }
    meterFrame = window.requestAnimationFrame(draw);
  };
  draw();
  if (ctx.state !== 'running') {
    $('#mic-detail').textContent = 'Click anywhere on the page to start the level meter.';
  }
}

$('#mic-select').addEventListener('change', (e) => startMic(e.target.value));
window.addEventListener('pointerdown', () => {
  if (audioCtx && audioCtx.state !== 'running') audioCtx.resume().catch(() => {});
}, { capture: true });

// ----- Speakers ------------------------------------------------------------

$('#spk-button').addEventListener('click', async () => {
  const ctx = ensureAudio();
  if (!ctx) {
    setResult('spk', 'bad', 'Not available', 'This browser cannot play the alert tone.');
    return;
  }
  await ctx.resume();
  const gain = ctx.createGain();
  gain.gain.value = 0.35;
  gain.connect(ctx.destination);
  playChime(ctx, gain, ctx.currentTime + 0.05);
  setResult('spk', 'info', 'Played', 'Did you hear two rising double tones? If not, check the volume and which speakers are selected.');
  announce('Alert tone played.');
});

// ----- Network -------------------------------------------------------------

function netItem(status, title, detail) {
  return el('li', { 'data-state': status }, icon(RESULT_ICON[status] || 'info'),
    el('div', {}, el('strong', { text: title }), detail ? el('p', { text: detail }) : null));
}

/** Gathers ICE candidates with these servers; resolves to counts by type. */
function gather(iceServers, timeoutMs = 6000) {
  return new Promise((resolve) => {
    const started = performance.now();
    const found = { host: 0, srflx: 0, relay: 0, prflx: 0, firstMs: {} };
    let pc;
    try {
      pc = new RTCPeerConnection({ iceServers });
    } catch (e) {
      resolve({ error: e.message, ...found });
      return;
    }
    let finished = false;
    const finish = (timedOut) => {
      if (finished) return;
      finished = true;
      pc.close();
      resolve({ ...found, timedOut, ms: Math.round(performance.now() - started) });
    };
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate) {
        finish(false);
        return;
      }
      const type = e.candidate.type || (/ typ (\w+)/.exec(e.candidate.candidate) || [])[1];
      if (type in found) {
        found[type] += 1;
        if (!(type in found.firstMs)) found.firstMs[type] = Math.round(performance.now() - started);
      }
    });
    pc.createDataChannel('check');
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch((e) => {
      found.error = e.message;
      finish(false);
    });
    window.setTimeout(() => finish(true), timeoutMs);
  });
}

async function checkNetwork() {
  const list = $('#net-list');
  list.replaceChildren(netItem('pending', 'Checking the server\u2026'));
  setResult('net', 'pending', 'Checking');
  const items = [];
  let worst = 'ok';
  const note = (status) => {
    const rank = { ok: 0, info: 0, warn: 1, bad: 2 };
    if (rank[status] > rank[worst]) worst = status;
  };

  const t0 = performance.now();
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    const ms = Math.round(performance.now() - t0);
    const health = await response.json();
    if (response.ok) {
      items.push(netItem('ok', 'MIU Link server reachable', `Answered in ${ms} ms.`));
    } else {
      note('warn');
      items.push(netItem('warn', 'MIU Link server reachable but degraded', `It cannot write its session log (${health.status}). Tell IT.`));
    }
  } catch {
    note('bad');
    items.push(netItem('bad', 'MIU Link server not reachable', 'Check the network cable or Wi-Fi. If other sites work, tell IT.'));
  }

  if (!('RTCPeerConnection' in window)) {
    note('bad');
    items.push(netItem('bad', 'Video calls are not supported by this browser', 'Use a current Chrome, Edge or Firefox.'));
    list.replaceChildren(...items);
    setResult('net', worst, worst === 'bad' ? 'Problem' : 'Working');
    return;
  }

  const local = await gather([], 3000);
  if (local.host > 0 || local.srflx > 0) {
    items.push(netItem('ok', 'Peer-to-peer video possible on this network', `${local.host} local address${local.host === 1 ? '' : 'es'} found.`));
  } else {
    note('warn');
    items.push(netItem('warn', 'No local network address found', 'Calls will need a relay (TURN) server.'));
  }

  if (!account) {
    items.push(netItem('info', 'Relay (STUN/TURN) servers not checked', 'Sign in first: the list of relay servers comes with your account.'));
  } else {
    const servers = (account.settings && account.settings.ice_servers) || [];
    if (servers.length === 0) {
      items.push(netItem('info', 'No STUN or TURN servers are configured',
        'Calls connect when both devices can reach each other directly (the same network or VPN). Across firewalls, ask IT to configure a TURN server.'));
    }
    for (const server of servers) {
      for (const url of server.urls) {
        const single = { urls: [url] };
        if (server.username) single.username = server.username;
        if (server.credential) single.credential = server.credential;
        const isTurn = /^turns?:/i.test(url);
        const r = await gather([single], 6000);
        const wanted = isTurn ? r.relay : r.srflx;
        if (r.error) {
          note('bad');
          items.push(netItem('bad', `${url}: not usable`, r.error));
        } else if (wanted > 0) {
          const ms = r.firstMs[isTurn ? 'relay' : 'srflx'];
          items.push(netItem('ok', `${url}: reachable`, `${isTurn ? 'Relay address' : 'Public address'} obtained in ${ms} ms.`));
        } else {
          note(isTurn ? 'bad' : 'warn');
          items.push(netItem(isTurn ? 'bad' : 'warn', `${url}: no answer`,
            `Nothing came back within 6 s. The firewall may block ${isTurn ? 'the relay' : 'UDP to this server'}; tell IT.`));
        }
      }
    }
  }
  list.replaceChildren(...items);
  setResult('net', worst === 'info' ? 'ok' : worst, worst === 'bad' ? 'Problem' : worst === 'warn' ? 'Warning' : 'Working');
}

$('#net-again').addEventListener('click', () => checkNetwork());

results.spk = { status: 'idle' };
startCamera();
startMic();
checkNetwork();
