// The device and network check: camera preview, microphone level, the
// alert tone, the MIU Link server, and the STUN and TURN servers that calls
// use. Signed in as a station or clinician, those servers are the account's
// own `ice_servers` (the list a call uses) and are tried for real: a peer
// connection gathers candidates with them. A server-reflexive candidate
// proves STUN; with `iceTransportPolicy: 'relay'`, a relay candidate proves
// TURN.
//
// The verdict at the top counts only what really ran, and names what did
// not and why: it never says "All checks passed" while something is still
// to do.

import { $, el, icon, setIcon, announce } from './ui.js';
import { me, HOME } from './api.js';
import { listDevices, stopStream } from './media.js';
import { playChime } from './alerts.js';

/** How long one STUN or TURN server may take to give its candidate. */
const ICE_TIMEOUT_MS = 8000;
const ICE_TIMEOUT_TEXT = `${ICE_TIMEOUT_MS / 1000} seconds`;

const RESULT_ICON = { ok: 'check', bad: 'x', warn: 'alert', pending: 'clock', idle: 'speaker', info: 'info' };

/** The badge on each card (cam, mic, spk, net): `{status, text, detail}`. */
const results = {};

/**
 * The checks the verdict counts, in the order it names them. `status` is
 * 'pending' (running by itself), 'ok', 'warn' (works, with a problem),
 * 'bad', or 'unchecked' (has not run; `reason` says what to do about it).
 */
const checks = {};
for (const [name, label] of [
  ['cam', 'camera'],
  ['mic', 'microphone'],
  ['spk', 'speakers'],
  ['server', 'MIU Link server'],
  ['stun', 'STUN server'],
  ['turn', 'TURN relay'],
]) {
  checks[name] = { label, status: 'pending', reason: '' };
}

const verdict = { settled: false, state: 'pending', text: '', passed: 0, total: 0, failed: [], warned: [], notChecked: [], checks };
/** What the last network check found, for anyone curious (and the tests). */
const network = { running: false, runs: 0, found: null, stun: [], turn: [] };
window.miulink = { checks: results, verdict, network };

function setResult(name, status, text, detail) {
  results[name] = { status, text, detail: detail || '' };
  const badge = $(`#${name}-result`);
  badge.dataset.state = status;
  setIcon($('svg', badge), RESULT_ICON[status] || 'info');
  $('span', badge).textContent = text;
  const detailBox = $(`#${name}-detail`);
  if (detailBox && detail !== undefined) detailBox.textContent = detail;
}

/** Records one counted check's outcome and updates the verdict. */
function mark(name, status, reason = '') {
  checks[name].status = status;
  checks[name].reason = reason;
  summarise();
}

function described(list) {
  return list.map((c) => (c.reason ? `${c.label} (${c.reason})` : c.label)).join(', ');
}

function summarise() {
  const all = Object.values(checks);
  const running = all.filter((c) => c.status === 'pending');
  const passed = all.filter((c) => c.status === 'ok');
  const failed = all.filter((c) => c.status === 'bad');
  const warned = all.filter((c) => c.status === 'warn');
  const notChecked = all.filter((c) => c.status === 'unchecked');
  Object.assign(verdict, {
    settled: running.length === 0,
    passed: passed.length,
    total: all.length,
    failed: failed.map((c) => c.label),
    warned: warned.map((c) => c.label),
    notChecked: notChecked.map((c) => c.label),
  });
  let text;
  let state;
  if (running.length > 0) {
    state = 'pending';
    text = `Checking\u2026 ${all.length - running.length} of ${all.length} checks done so far.`;
  } else if (passed.length === all.length) {
    state = 'ok';
    text = `All ${all.length} checks passed: this device is ready for consults.`;
  } else {
    state = failed.length > 0 ? 'bad' : 'warn';
    const parts = [`${passed.length} of ${all.length} checks passed`];
    if (failed.length > 0) parts.push(`failed: ${described(failed)}`);
    if (warned.length > 0) parts.push(`passed with a warning: ${described(warned)}`);
    if (notChecked.length > 0) parts.push(`not checked: ${described(notChecked)}`);
    text = `${parts.join('; ')}.`;
  }
  verdict.state = state;
  verdict.text = text;
  const box = $('#check-summary');
  box.dataset.state = state;
  // Only real changes: the box is a live region.
  if (box.textContent !== text) box.textContent = text;
}

// ----- The account (for the STUN and TURN servers) -------------------------

let account = null;
/** Why there is no account: the ApiError of GET /api/me, or null. */
let accountError = null;

async function loadAccount() {
  try {
    account = await me();
    accountError = null;
  } catch (e) {
    account = null;
    accountError = e;
  }
  const back = $('#back-link');
  if (account && HOME[account.role]) {
    back.href = HOME[account.role];
    $('span', back).textContent = 'Back to MIU Link';
  } else {
    back.href = '/';
    $('span', back).textContent = 'Back to sign in';
  }
}

// ----- Camera --------------------------------------------------------------

let camStream = null;
async function startCamera(deviceId) {
  stopStream(camStream);
  camStream = null;
  setResult('cam', 'pending', 'Checking', '');
  mark('cam', 'pending');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setResult('cam', 'bad', 'Not available', 'This browser cannot use a camera here. Use Chrome, Edge or Firefox, over https.');
    mark('cam', 'bad', 'not available in this browser');
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
    mark('cam', 'ok');
    await fillSelect('#cam-select', 'videoinput', s.deviceId);
  } catch (e) {
    $('#cam-off').hidden = false;
    const [text, reason] = e.name === 'NotAllowedError'
      ? ['The browser is not allowed to use the camera. Allow it in the site settings (left of the address), then reload.', 'not allowed']
      : e.name === 'NotFoundError' ? ['No camera found. Check that it is plugged in.', 'none found']
        : [`The camera did not start (${e.name}). Close other video programs and reload.`, 'did not start'];
    setResult('cam', 'bad', 'Problem', `${text} Calls will be audio-only.`);
    mark('cam', 'bad', reason);
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
  mark('mic', 'pending');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setResult('mic', 'bad', 'Not available', 'This browser cannot use a microphone here.');
    mark('mic', 'bad', 'not available in this browser');
    return;
  }
  try {
    const audio = { echoCancellation: true, noiseSuppression: true };
    if (deviceId) audio.deviceId = { exact: deviceId };
    micStream = await navigator.mediaDevices.getUserMedia({ audio });
  } catch (e) {
    const [text, reason] = e.name === 'NotAllowedError'
      ? ['The browser is not allowed to use the microphone. Allow it in the site settings, then reload.', 'not allowed']
      : e.name === 'NotFoundError' ? ['No microphone found. Check the headset or speakerphone is plugged in.', 'none found']
        : [`The microphone did not start (${e.name}).`, 'did not start'];
    setResult('mic', 'bad', 'Problem', text);
    mark('mic', 'bad', reason);
    return;
  }
  const track = micStream.getAudioTracks()[0];
  const name = track.label || 'Microphone';
  await fillSelect('#mic-select', 'audioinput', track.getSettings().deviceId);
  const ctx = ensureAudio();
  if (!ctx) {
    setResult('mic', 'warn', 'Started', `${name} started; this browser cannot show its level.`);
    mark('mic', 'warn', 'started, but its level cannot be shown');
    return;
  }
  const source = ctx.createMediaStreamSource(micStream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = $('#mic-level');
  const label = $('#mic-level-text');
  // Started is not working: it has passed once it has picked up sound.
  const waiting = () => {
    const suspended = ctx.state !== 'running';
    const reason = suspended ? 'click the page, then say a few words' : 'no sound heard yet: say a few words';
    if (checks.mic.status === 'unchecked' && checks.mic.reason === reason) return;
    setResult('mic', 'info', 'Listening', suspended
      ? `${name} started. Click anywhere on the page to start the level meter, then say a few words.`
      : `${name} started. Say a few words.`);
    mark('mic', 'unchecked', reason);
  };
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
    if (loudest >= 20) {
      if (checks.mic.status !== 'ok') {
        setResult('mic', 'ok', 'Working', `${name} picks up sound.`);
        mark('mic', 'ok');
      }
    } else {
      waiting();
    }
    meterFrame = window.requestAnimationFrame(draw);
  };
  draw();
}

$('#mic-select').addEventListener('change', (e) => startMic(e.target.value));
window.addEventListener('pointerdown', () => {
  if (audioCtx && audioCtx.state !== 'running') audioCtx.resume().catch(() => {});
}, { capture: true });

// ----- Speakers ------------------------------------------------------------

// Only the user can tell whether the tone came out of the speakers: the
// check has passed when they say they heard it.
const SPEAKER_ADVICE = 'Check the volume, that the sound is not muted, and which speakers or headset the computer uses; then play the tone again.';

$('#spk-button').addEventListener('click', async () => {
  const ctx = ensureAudio();
  if (!ctx) {
    setResult('spk', 'bad', 'Not available', 'This browser cannot play the alert tone.');
    mark('spk', 'bad', 'this browser cannot play sound');
    return;
  }
  await ctx.resume();
  const gain = ctx.createGain();
  gain.gain.value = 0.35;
  gain.connect(ctx.destination);
  playChime(ctx, gain, ctx.currentTime + 0.05);
  setResult('spk', 'info', 'Played', 'You should have heard two rising double tones.');
  $('#spk-confirm').hidden = false;
  mark('spk', 'unchecked', 'say whether you heard the tone');
  announce('Alert tone played. Did you hear it? Answer with the Yes or No buttons below.');
});

$('#spk-heard').addEventListener('click', () => {
  setResult('spk', 'ok', 'Working', 'You heard the alert tone: the speakers work.');
  mark('spk', 'ok');
  announce('Speakers: working.');
});

$('#spk-not-heard').addEventListener('click', () => {
  setResult('spk', 'bad', 'Problem', `You did not hear the alert tone. ${SPEAKER_ADVICE}`);
  mark('spk', 'bad', 'the tone was not heard');
  announce('Speakers: problem. The alert tone was not heard.');
});

// ----- Network -------------------------------------------------------------

function netItem(status, title, detail, key) {
  return el('li', { 'data-state': status, 'data-check': key }, icon(RESULT_ICON[status] || 'info'),
    el('div', {}, el('strong', { text: title }), detail ? el('p', { text: detail }) : null));
}

/** "turn:relay.example.nhs.uk:3478 (UDP)" for "turn:relay.example.nhs.uk:3478?transport=udp". */
function serverName(url) {
  const [address, query] = url.split('?');
  const transport = new URLSearchParams(query || '').get('transport');
  return transport ? `${address} (${transport.toUpperCase()})` : address;
}

/**
 * Gathers ICE candidates with these servers, until a candidate of type
 * `want` arrives, gathering completes, or `timeoutMs` passes. Resolves to
 * the candidates found by type, the servers' errors, and how it ended.
 */
function gather(iceServers, { policy = 'all', want = null, timeoutMs = ICE_TIMEOUT_MS } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const found = { host: 0, srflx: 0, relay: 0, prflx: 0 };
    const firstMs = {};
    const errors = [];
    const done = (extra) => resolve({ ...found, firstMs, errors, ms: Math.round(performance.now() - started), ...extra });
    let pc;
    try {
      pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy });
    } catch (e) {
      done({ error: e.message || String(e), ended: 'error' });
      return;
    }
    let finished = false;
    let timer = 0;
    const finish = (ended, error) => {
      if (finished) return;
      finished = true;
      window.clearTimeout(timer);
      pc.close();
      done({ ended, error });
    };
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate) {
        finish('complete');
        return;
      }
      const type = e.candidate.type || (/ typ (\w+)/.exec(e.candidate.candidate) || [])[1];
      if (type in found) {
        found[type] += 1;
        if (!(type in firstMs)) firstMs[type] = Math.round(performance.now() - started);
        if (type === want) finish('found');
      }
    });
    pc.addEventListener('icecandidateerror', (e) => {
      errors.push({ url: e.url || '', code: e.errorCode || 0, text: e.errorText || '' });
    });
    pc.createDataChannel('check');
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch((e) => finish('error', e.message || String(e)));
    timer = window.setTimeout(() => finish('timeout'), timeoutMs);
  });
}

/** One STUN server: a server-reflexive candidate proves it answers. */
async function testStun(url) {
  const r = await gather([{ urls: [url] }], { want: 'srflx' });
  const name = serverName(url);
  const result = { url, srflx: r.srflx, host: r.host, ended: r.ended, ms: r.ms, errors: r.errors };
  if (r.error) {
    return { ...result, status: 'bad', reason: `${name} is not usable`, title: `STUN server ${name}: not usable`, detail: `The browser refused it (${r.error}). Tell IT.` };
  }
  if (r.srflx > 0) {
    return {
      ...result,
      status: 'ok',
      title: `STUN server ${name}: answered`,
      detail: `This device's public address (a server-reflexive candidate) came back in ${r.firstMs.srflx} ms: direct video can cross ordinary routers (NAT).`,
    };
  }
  // Gathering finished without an error but with no public address: the
  // server answered with the address this device already has (no NAT in
  // between), which the browser does not list twice.
  if (r.ended === 'complete' && r.errors.length === 0 && r.host > 0) {
    return {
      ...result,
      status: 'ok',
      title: `STUN server ${name}: answered`,
      detail: `It answered in ${r.ms} ms with this device's own address: there is no NAT between this device and the server.`,
    };
  }
  const error = r.errors[0];
  return {
    ...result,
    status: 'bad',
    reason: `no answer from ${name}`,
    title: `STUN server ${name}: no answer`,
    detail: `Nothing came back${r.ended === 'timeout' ? ` within ${ICE_TIMEOUT_TEXT}` : ''}${error && error.text ? ` (${error.text})` : ''}. The firewall may block UDP to this server: video between different networks will need the relay. Tell IT.`,
  };
}

/** One TURN server, relay candidates only: a relay candidate proves it. */
async function testTurn(server, url) {
  const single = { urls: [url] };
  if (server.username) single.username = server.username;
  if (server.credential) single.credential = server.credential;
  const r = await gather([single], { policy: 'relay', want: 'relay' });
  const name = serverName(url);
  const result = { url, relay: r.relay, ended: r.ended, ms: r.ms, errors: r.errors };
  if (r.error) {
    return { ...result, status: 'bad', reason: `${name} is not usable`, title: `TURN relay ${name}: not usable`, detail: `The browser refused its settings (${r.error}). Calls through strict firewalls will fail; tell IT.` };
  }
  if (r.relay > 0) {
    return {
      ...result,
      status: 'ok',
      title: `TURN relay ${name}: working`,
      detail: `A relay address (relay candidate) came back in ${r.firstMs.relay} ms: calls can go through the relay, even through strict firewalls.`,
    };
  }
  const refused = r.errors.find((e) => e.code >= 300 && e.code < 700);
  if (refused && refused.code === 401) {
    return {
      ...result,
      status: 'bad',
      reason: `the relay at ${name} refused this account's password`,
      title: `TURN relay ${name}: password refused`,
      detail: `The relay at ${name} refused this account's password: MIU Link's TURN secret and the relay's do not match. Calls through strict firewalls will fail; tell IT.`,
    };
  }
  if (refused) {
    return {
      ...result,
      status: 'bad',
      reason: `the relay at ${name} refused to relay`,
      title: `TURN relay ${name}: refused`,
      detail: `The relay at ${name} answered but gave no relay address (error ${refused.code}${refused.text ? `: ${refused.text}` : ''}). Calls through strict firewalls will fail; tell IT.`,
    };
  }
  return {
    ...result,
    status: 'bad',
    reason: `could not reach ${name}`,
    title: `TURN relay ${name}: not reachable`,
    detail: `Could not reach the relay at ${name}: calls through strict firewalls will fail; tell IT.${r.ended === 'timeout' ? ` (No answer within ${ICE_TIMEOUT_TEXT}.)` : ''}`,
  };
}

/** The counted STUN or TURN check from each server's own result. */
function overall(name, tested, what) {
  const working = tested.filter((t) => t.status === 'ok');
  if (working.length === tested.length) {
    mark(name, 'ok');
  } else if (working.length > 0) {
    const broken = tested.filter((t) => t.status !== 'ok');
    mark(name, 'warn', `${broken.length} of ${tested.length} ${what} failed: ${broken.map((t) => t.reason).join(', ')}`);
  } else {
    mark(name, 'bad', tested.map((t) => t.reason).join(', '));
  }
}

/** What the candidates found say about how calls can connect. */
function pathItem(found, servers, policy) {
  const kinds = [];
  if (found.host) kinds.push('host');
  if (found.srflx) kinds.push('server-reflexive');
  if (found.relay) kinds.push('relay');
  const relayOnly = policy === 'relay'
    ? ' This service sends every call through the relay (relay-only policy), so the relay must work.' : '';
  if (kinds.length === 0) {
    return netItem('bad', 'No network address found',
      'Video calls cannot connect from this device. Check the network cable or Wi-Fi; if other sites work, tell IT.', 'path');
  }
  const title = `Address types found: ${kinds.length === 1 ? `${kinds[0]} only` : kinds.join(', ')}`;
  if (found.relay) {
    return netItem('ok', title, `Calls can connect through the relay, even through strict firewalls.${relayOnly}`, 'path');
  }
  if (found.srflx) {
    return netItem('info', title,
      `Direct video can cross ordinary routers (NAT), but not strict firewalls: those need a working TURN relay.${relayOnly}`, 'path');
  }
  const why = !servers ? ' STUN and TURN were not tried: sign in first.'
    : servers.stun + servers.turn === 0 ? ' No STUN or TURN server is configured to find more.'
      : found.host && servers.turn === 0 ? ' No TURN relay is configured.' : '';
  const detail = found.srflxAnswered
    ? 'Only this device\u2019s own addresses, which are already public (no NAT). Direct video works wherever the firewall allows it.'
    : 'Only this device\u2019s own (local) addresses. Direct video works only with devices on the same network or VPN.';
  // Signed out, nothing more was tried: that is said, not a fault found.
  const state = found.srflxAnswered || !servers ? 'info' : 'warn';
  return netItem(state, title, `${detail}${why}${relayOnly}`, 'path');
}

async function checkServer() {
  const t0 = performance.now();
  try {
    const response = await fetch('/healthz', { cache: 'no-store' });
    const ms = Math.round(performance.now() - t0);
    const health = await response.json();
    if (response.ok) {
      mark('server', 'ok');
      return netItem('ok', 'MIU Link server reachable', `Answered in ${ms} ms.`, 'server');
    }
    mark('server', 'warn', 'it cannot write its session log');
    return netItem('warn', 'MIU Link server reachable but degraded', `It cannot write its session log (${health.status}). Tell IT.`, 'server');
  } catch {
    mark('server', 'bad', 'not reachable');
    return netItem('bad', 'MIU Link server not reachable', 'Check the network cable or Wi-Fi. If other sites work, tell IT.', 'server');
  }
}

async function checkNetwork() {
  if (network.running) return;
  network.running = true;
  const list = $('#net-list');
  const again = $('#net-again');
  $('span', again).textContent = 'Checking\u2026';
  list.setAttribute('aria-busy', 'true');
  list.replaceChildren(netItem('pending', 'Checking the server\u2026', null, 'server'));
  setResult('net', 'pending', 'Checking');
  for (const name of ['server', 'stun', 'turn']) checks[name].status = 'pending';
  summarise();

  // Afresh each time: the relay's password expires.
  await loadAccount();
  const items = [await checkServer()];
  const signedIn = !!account;
  $('#net-signin').hidden = signedIn || (accountError && accountError.status === 0);

  const ice = signedIn && account.settings ? account.settings.ice_servers || [] : null;
  const stunUrls = [];
  const turnUrls = [];
  for (const server of ice || []) {
    for (const url of [].concat(server.urls || [])) {
      if (/^stuns?:/i.test(url)) stunUrls.push(url);
      else if (/^turns?:/i.test(url)) turnUrls.push([server, url]);
    }
  }
  const policy = signedIn && account.settings ? account.settings.ice_transport_policy : 'all';

  if (!('RTCPeerConnection' in window)) {
    mark('stun', 'bad', 'this browser cannot make video calls');
    mark('turn', 'bad', 'this browser cannot make video calls');
    items.push(netItem('bad', 'Video calls are not supported by this browser', 'Use a current Chrome, Edge or Firefox.', 'path'));
    finishNetwork(items);
    return;
  }

  list.replaceChildren(...items,
    ...stunUrls.map((url) => netItem('pending', `Trying the STUN server ${serverName(url)}\u2026`, null, 'stun')),
    ...turnUrls.map(([, url]) => netItem('pending', `Trying the TURN relay ${serverName(url)}\u2026`, `Up to ${ICE_TIMEOUT_TEXT}.`, 'turn')));

  const [local, stun, turn] = await Promise.all([
    gather([], { timeoutMs: 3000 }),
    Promise.all(stunUrls.map((url) => testStun(url))),
    Promise.all(turnUrls.map(([server, url]) => testTurn(server, url))),
  ]);
  network.stun = stun;
  network.turn = turn;

  if (!signedIn) {
    const reason = accountError && accountError.status === 0 ? 'the server could not be reached' : 'sign in first';
    mark('stun', 'unchecked', reason);
    mark('turn', 'unchecked', reason);
  } else {
    if (stunUrls.length + turnUrls.length === 0) {
      items.push(netItem('info', 'No STUN or TURN servers are configured',
        'Calls connect when both devices can reach each other directly (the same network or VPN). Across firewalls, ask IT to configure a TURN server.', 'stun'));
    }
    if (stunUrls.length === 0) {
      mark('stun', 'unchecked', 'no STUN server is configured');
    } else {
      items.push(...stun.map((t) => netItem(t.status, t.title, t.detail, 'stun')));
      overall('stun', stun, 'STUN servers');
    }
    if (turnUrls.length > 0) {
      items.push(...turn.map((t) => netItem(t.status, t.title, t.detail, 'turn')));
      overall('turn', turn, 'relay addresses');
    } else if (account.role === 'station' || account.role === 'clinician') {
      if (stunUrls.length > 0) {
        items.push(netItem('warn', 'No TURN relay is configured',
          'Calls through strict firewalls will fail. Ask IT to configure a TURN server.', 'turn'));
      }
      mark('turn', 'unchecked', 'no TURN relay is configured: ask IT');
    } else {
      items.push(netItem('info', 'TURN relay not checked',
        'The relay\u2019s password comes only with station and clinician accounts: sign in as one to check it.', 'turn'));
      mark('turn', 'unchecked', 'only station and clinician accounts can use the relay');
    }
  }

  const found = {
    host: local.host,
    srflx: stun.reduce((n, t) => n + t.srflx, 0),
    relay: turn.reduce((n, t) => n + t.relay, 0),
    srflxAnswered: stun.some((t) => t.status === 'ok'),
  };
  network.found = found;
  items.push(pathItem(found, ice ? { stun: stunUrls.length, turn: turnUrls.length } : null, policy));
  finishNetwork(items);
}

function finishNetwork(items) {
  const list = $('#net-list');
  list.replaceChildren(...items);
  list.removeAttribute('aria-busy');
  const statuses = ['server', 'stun', 'turn'].map((name) => checks[name].status)
    .concat(items.map((li) => li.dataset.state));
  const [status, text] = statuses.includes('bad') ? ['bad', 'Problem']
    : statuses.includes('warn') ? ['warn', 'Warning']
      : statuses.includes('unchecked') ? ['info', 'Partly checked'] : ['ok', 'Working'];
  setResult('net', status, text);
  $('span', $('#net-again')).textContent = 'Check again';
  network.running = false;
  network.runs += 1;
  summarise();
}

$('#net-again').addEventListener('click', () => checkNetwork());

results.spk = { status: 'idle' };
mark('spk', 'unchecked', 'press Play the alert tone');
startCamera();
startMic();
checkNetwork();
