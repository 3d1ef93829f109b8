// The A&E clinician: availability, the live queue with ticking waits,
// ringing for every request, answering, the call with chat, and the
// outcome form that must be filled before the next ring.

import { $, $$, el, fill, icon, announce, showView, formatDuration, spokenDuration, clockTime, formLimits, URGENCY, OUTCOMES } from './ui.js';
import { requireRole } from './api.js';
import { startShell } from './shell.js';
import { openLocalMedia, stopStream } from './media.js';
import { CallSession } from './callsession.js';
import { Alerts } from './alerts.js';

/** A wait at or over this is highlighted (by urgency). */
const LONG_WAIT_MS = { immediate: 60_000, urgent: 5 * 60_000, routine: 15 * 60_000 };

const AVAILABILITY_HINT = {
  available: 'You are alerted for every new request.',
  busy: 'You are not alerted. The queue stays visible and you can still answer.',
  away: 'You are not alerted. Set Available when you are back.',
};

const account = await requireRole('clinician');
const socket = startShell(account, { signOutWarning: () => signOutWarning() });
const hook = window.miulink;
const settings = account.settings || {};

const state = {
  view: 'loading',
  presence: null,
  queue: [],
  queueAt: 0, // performance.now() when the queue arrived
  rung: new Map(), // request id -> entry, for each request this clinician was rung for
  answering: null, // request id we sent `accept` for
  answerMedia: null, // the camera of the Call prepared when Answer was pressed
  ringMedia: null, // camera opened while a request rings
  owed: null, // {callId, start} while an outcome is owed
  told: false,
  escalations: new Map(), // request id -> {entry, acknowledged} (duty holders)
};

const alerts = new Alerts({ onChange: renderAlertState });
// The clinician answers: its Call is prepared when Answer is pressed.
const callSession = new CallSession({
  socket,
  role: 'clinician',
  settings,
  marks: hook.marks,
  show: go,
  media: () => state.answerMedia || openLocalMedia(),
  // Found again: nothing was prepared here for it (a reload, or taken back).
  isReturn: (start, fresh) => fresh,
  told: () => { state.told = true; },
  onStart: afterCallStart,
  onEnd: afterCallEnd,
});
const { callView } = callSession;

// The live call only (not the one prepared while answering).
Object.defineProperty(hook, 'pc', { get: () => (callSession.call ? callSession.call.pc : null) });
Object.defineProperty(hook, 'call', { get: () => callSession.call });
hook.callSession = callSession;
hook.alerts = alerts;
// The thresholds, live (support can inspect them; tests shorten them).
hook.longWaitMs = LONG_WAIT_MS;
hook.state = state;

function go(view) {
  state.view = view;
  showView(view);
}

/** What signing out now would lose (null: nothing, sign out at once). */
function signOutWarning() {
  if (callSession.call || state.answering !== null) return 'your call will end.';
  if (state.owed) return 'the outcome of your last call is not saved yet.';
  return null;
}

function notice(text) {
  const box = $('#queue-notice');
  box.hidden = !text;
  box.textContent = text || '';
}

// ----- Alerts ------------------------------------------------------------

const BLOCKED_DISMISSED_KEY = 'miulink.notificationsBlockedDismissed';

function renderAlertState() {
  const soundOn = alerts.soundOn;
  const notifyOn = alerts.notificationsOn;
  const notifyBlocked = 'Notification' in window && Notification.permission === 'denied';
  $('#sound-state').textContent = soundOn ? 'On' : 'Off';
  $('#notify-state').textContent = notifyOn ? 'On' : notifyBlocked ? 'Blocked in the browser' : 'Off';
  // Blocked (often by the trust's policy): say what that means and how to
  // allow them, until dismissed for this browser session.
  $('#notify-blocked').hidden = !notifyBlocked || window.sessionStorage.getItem(BLOCKED_DISMISSED_KEY) === 'yes';
  const banner = $('#alerts-banner');
  const needsGesture = !soundOn || (!notifyOn && !notifyBlocked && 'Notification' in window);
  banner.hidden = !needsGesture;
  $('#alerts-text').textContent = !soundOn
    ? 'Sound alerts are off. Turn them on so that you hear new requests.'
    : 'Desktop notifications are off. Turn them on to be alerted while working in other programs.';
}

$('#alerts-button').addEventListener('click', () => alerts.enable());
$('#notify-blocked-dismiss').addEventListener('click', () => {
  window.sessionStorage.setItem(BLOCKED_DISMISSED_KEY, 'yes');
  renderAlertState();
  // Focus was on the button that is now gone: keep it in the queue view.
  const heading = $('[data-view=queue] h1');
  heading.setAttribute('tabindex', '-1');
  heading.focus();
  announce('Notice dismissed. Desktop notifications stay blocked; you are alerted by the tone and the tab title.');
});
// Allowed (or blocked) in the site settings while the page is open.
if (navigator.permissions && navigator.permissions.query) {
  navigator.permissions.query({ name: 'notifications' })
    .then((status) => status.addEventListener('change', renderAlertState))
    .catch(() => {});
}
// Any click or key press on the page may unlock sound.
for (const type of ['pointerdown', 'keydown']) {
  window.addEventListener(type, () => {
    if (!alerts.soundOn && alerts.ctx) alerts.ctx.resume().catch(() => {});
  }, { capture: true });
}

// ----- Camera while ringing -------------------------------------------------

const CAMERA_READY_KEY = 'miulink.cameraWhileRinging';
const cameraReady = $('#camera-ready');
// Off unless the clinician chose it: answering is about as quick without
// it (the call sets up while the camera starts; see BENCHMARKS.md).
cameraReady.checked = window.localStorage.getItem(CAMERA_READY_KEY) === 'on';
cameraReady.addEventListener('change', () => {
  window.localStorage.setItem(CAMERA_READY_KEY, cameraReady.checked ? 'on' : 'off');
  updateRinging();
});

/** Opens the camera while something rings (if chosen), closes it after. */
function ringCamera(ringing) {
  const want = ringing && cameraReady.checked && !callSession.call && state.answering === null;
  const box = $('#ring-preview-box');
  if (want && !state.ringMedia) {
    const media = openLocalMedia();
    state.ringMedia = media;
    media.then((local) => {
      if (state.ringMedia !== media) return;
      $('#ring-preview').srcObject = local.stream;
      box.hidden = !local.hasVideo;
    });
  } else if (!want && state.ringMedia) {
    const media = state.ringMedia;
    state.ringMedia = null;
    media.then((local) => stopStream(local.stream));
  }
  if (!state.ringMedia) {
    box.hidden = true;
    $('#ring-preview').srcObject = null;
  }
}

function ringable() {
  const p = state.presence;
  return !!p && p.status === 'available' && !p.engaged && !callSession.call;
}

/**
 * While an outcome is owed the switchboard rings nobody here (the outcome
 * comes first), but the queue still arrives: what waits is shown on the
 * outcome form, and immediate or escalated requests sound (if Available).
 */
function owedQueue() {
  return state.owed && !callSession.call ? state.queue : null;
}

function owedSounding(queue) {
  const p = state.presence;
  if (!queue || !p || p.status !== 'available') return [];
  return queue.filter((r) => !r.test && (r.urgency === 'immediate' || r.escalation));
}

function updateRinging() {
  // Queue order, with the freshest copy of each entry; a ring may arrive
  // just before the queue that lists it.
  const ringing = !ringable() ? [] : [
    ...state.queue.filter((r) => state.rung.has(r.request_id)),
    ...[...state.rung.values()].filter((r) => !state.queue.some((q) => q.request_id === r.request_id)),
  ];
  const owed = owedQueue();
  const sounding = owedSounding(owed);
  alerts.setOwedQueue(owed);
  alerts.setRinging(ringing.length ? ringing : sounding);
  tellOwed(owed, sounding);
  ringCamera(ringing.length > 0);
  const banner = $('#ringing-banner');
  banner.hidden = ringing.length === 0;
  if (ringing.length) {
    const top = ringing[0];
    const u = URGENCY[top.urgency] || { label: top.urgency };
    const level = top.escalation === 'escalated' ? 'Escalated, nobody has answered: ' : top.escalation === 'realerted' ? 'Still waiting: ' : 'Ringing: ';
    $('#ringing-text').textContent = ringing.length === 1
      ? `${level}${u.label} request from ${top.station}. Answer it below.`
      : `Ringing: ${ringing.length} requests waiting for an answer.`;
  }
  for (const item of $$('#queue > li')) {
    item.classList.toggle('ringing', ringing.some((r) => String(r.request_id) === item.dataset.id));
  }
}

// ----- Availability ------------------------------------------------------

for (const input of $$('input[name=availability]')) {
  input.addEventListener('change', () => {
    if (!socket.send({ type: 'set_availability', status: input.value })) {
      notice('Not connected: your status was not changed. Try again when connected.');
      renderPresence();
    }
  });
}

function renderPresence() {
  const p = state.presence;
  if (!p) return;
  for (const input of $$('input[name=availability]')) input.checked = input.value === p.status;
  let hint = AVAILABILITY_HINT[p.status] || '';
  if (p.engaged && p.engaged.state === 'in_call') hint = 'You are in a call, so you are not alerted.';
  if (p.engaged && p.engaged.state === 'outcome_pending') hint = 'Record the outcome of your last call to be alerted again.';
  $('#availability-hint').textContent = hint;
  $('#availability').dataset.status = p.status;
}

// ----- The queue ---------------------------------------------------------

function waitedNow(entry) {
  return entry.waited_ms + (performance.now() - state.queueAt);
}

function queueItem(entry) {
  const u = URGENCY[entry.urgency] || { label: entry.urgency, icon: 'info' };
  const answer = el('button', { type: 'button', class: 'btn btn-go answer', 'data-action': 'answer' },
    icon('phone'), el('span', { class: 'label', text: 'Answer' }));
  answer.addEventListener('click', () => acceptRequest(entry.request_id));
  return el('li', { class: 'request', 'data-id': entry.request_id },
    el('div', { class: 'request-urgency' }, el('span', { class: `badge urgency-${entry.urgency}` }, icon(u.icon), u.label),
      el('span', { class: 'esc-tag', hidden: true })),
    el('div', { class: 'request-main' },
      el('p', { class: 'request-station' }),
      el('p', { class: 'request-reason' }),
      el('p', { class: 'request-meta' })),
    el('div', { class: 'request-wait' },
      el('span', { class: 'wait-value' }),
      el('span', { class: 'wait-label', text: 'waiting' }),
      el('span', { class: 'long-tag', hidden: true }, icon('alert'), 'Long wait')),
    answer);
}

function fillItem(item, entry) {
  const u = URGENCY[entry.urgency] || { label: entry.urgency };
  item.className = `request urgency-${entry.urgency}${entry.escalation ? ` ${entry.escalation}` : ''}`;
  const esc = $('.esc-tag', item);
  esc.hidden = !entry.escalation;
  if (entry.escalation === 'escalated') fill(esc, icon('alert'), 'Escalated');
  else if (entry.escalation === 'realerted') fill(esc, icon('bell'), 'Re-alerted');
  esc.dataset.level = entry.escalation || '';
  $('.request-station', item).textContent = entry.station;
  $('.request-reason', item).textContent = entry.reason;
  fill($('.request-meta', item),
    entry.site ? el('span', { text: entry.site }) : null,
    entry.patient_ref ? el('span', { text: `Ref ${entry.patient_ref}` }) : null,
    el('span', { text: `Requested ${clockTime(entry.requested_at)}` }),
    entry.station_connected ? null : el('span', { class: 'tag tag-warn' }, icon('signal'), 'Station offline: reconnecting'),
    entry.test ? el('span', { class: 'tag' }, icon('info'), 'Test call') : null);
  const answer = $('[data-action=answer]', item);
  const level = entry.escalation === 'escalated' ? ', escalated: nobody has answered' : entry.escalation === 'realerted' ? ', re-alerted' : '';
  answer.setAttribute('aria-label', `Answer: ${u.label}${level}, ${entry.station}, ${entry.reason}`);
  answer.disabled = state.answering !== null || !!callSession.call || !!state.owed;
  $('.label', answer).textContent = state.answering === entry.request_id ? 'Answering\u2026' : 'Answer';
}

function renderQueue() {
  const list = $('#queue');
  const existing = new Map($$('#queue > li').map((li) => [li.dataset.id, li]));
  const items = state.queue.map((entry) => {
    const item = existing.get(String(entry.request_id)) || queueItem(entry);
    existing.delete(String(entry.request_id));
    fillItem(item, entry);
    return item;
  });
  for (const gone of existing.values()) gone.remove();
  // Reorder in place, moving only what is out of place (keeps focus).
  items.forEach((item, i) => {
    if (list.children[i] !== item) list.insertBefore(item, list.children[i] || null);
  });
  $('#queue-empty').hidden = state.queue.length > 0;
  $('#queue-count').textContent = String(state.queue.length);
  tickQueue();
  updateRinging();
  callView.setOthersWaiting(state.queue.length);
  renderOwed();
  if (state.escalations.size) updateDuty();
}

function tickQueue() {
  for (const item of $$('#queue > li')) {
    const entry = state.queue.find((r) => String(r.request_id) === item.dataset.id);
    if (!entry) continue;
    const ms = waitedNow(entry);
    const value = $('.wait-value', item);
    value.textContent = formatDuration(ms);
    value.setAttribute('aria-label', `waited ${spokenDuration(ms)}`);
    const long = ms >= (hook.longWaitMs[entry.urgency] ?? LONG_WAIT_MS.routine);
    item.classList.toggle('long-wait', long);
    $('.long-tag', item).hidden = !long;
  }
}
window.setInterval(() => {
  tickQueue();
  tickDuty();
  tickOwed();
}, 500);

function acceptRequest(requestId) {
  if (state.answering !== null || callSession.call) return;
  for (const key of Object.keys(hook.marks)) delete hook.marks[key];
  hook.marks.acceptClick = performance.timeOrigin + performance.now();
  if (!socket.send({ type: 'accept', request_id: requestId })) {
    notice('Not connected: the request was not answered. Try again when connected.');
    return;
  }
  state.answering = requestId;
  // The camera (if not already open while ringing) and the peer connection
  // start while the server confirms: the call sets up sooner.
  state.answerMedia = state.ringMedia || openLocalMedia();
  state.ringMedia = null;
  callSession.prepare(state.answerMedia);
  notice(null);
  renderQueue();
  // The call screen at once: it is drawn while the server confirms.
  const entry = state.queue.find((r) => r.request_id === requestId);
  if (entry) {
    callView.answering(entry, state.answerMedia);
    go('call');
  }
}

function dropAnswerMedia() {
  callSession.dropPrepared();
  const media = state.answerMedia;
  state.answerMedia = null;
  if (media) media.then((local) => stopStream(local.stream));
}

// ----- The call and the outcome --------------------------------------------

/** After a `call_start`: the answer is now a call (its camera is the call's). */
function afterCallStart(start, { same }) {
  state.answering = null;
  state.answerMedia = null;
  if (!same) updateRinging();
  updateDuty();
}

/** After the call is torn down: the outcome form if one is owed, else the queue. */
function afterCallEnd(end, { start, text }) {
  if (end.outcome_required) {
    showOutcomeForm(end.call_id, start, text);
  } else {
    go('queue');
    notice(text);
  }
  announce(text, { assertive: true });
  updateRinging();
  updateDuty();
}

function buildOutcomeOptions() {
  const box = $('#outcome-options');
  box.replaceChildren(...Object.entries(OUTCOMES).map(([value, o]) =>
    el('label', { class: `option outcome-${value}` },
      el('input', { type: 'radio', name: 'outcome', value }),
      el('span', { class: 'option-body' },
        el('span', { class: 'option-title', text: o.label }),
        el('span', { class: 'option-hint', text: o.hint })))));
}

function showOutcomeForm(callId, start, endText) {
  state.owed = { callId, start };
  const rows = [];
  if (endText) rows.push(['Call', endText]);
  if (start) {
    rows.push(['Station', [start.peer.display_name, start.peer.site].filter(Boolean).join(', ')]);
    const u = URGENCY[start.consult.urgency] || { label: start.consult.urgency };
    rows.push(['Request', `${u.label}: ${start.consult.reason}`]);
    if (start.consult.patient_ref) rows.push(['Reference', start.consult.patient_ref]);
    // A test call (a monitoring probe checking this screen) has no patient:
    // it is left out of the figures, but the log still wants an outcome.
    if (start.consult.test) rows.push(['Test call', 'No patient. Choose \u201cManaged locally\u201d if the picture and sound worked, \u201cTechnical failure\u201d if not. Not counted in the figures.']);
  }
  $('#outcome-summary').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  // The call's chat, read-only, while the outcome is written (this page only).
  callSession.showTranscript($('#outcome-chat'), { headingId: 'outcome-chat-title', callId, until: 'until you save the outcome' });
  if (state.view !== 'outcome') {
    $('#outcome-form').reset();
    updateNoteCounter();
    showOutcomeErrors([]);
    const button = $('#outcome-button');
    button.disabled = false;
    $('.label', button).textContent = 'Save outcome';
  }
  go('outcome');
  renderOwed();
  const first = $('input[name=outcome]');
  if (first) first.focus();
}

// ----- What waits while the outcome is owed ----------------------------------

/** Request id -> what was last said of it while an outcome was owed. */
const owedTold = new Map();

/** A notification and a spoken line for each new (or newly escalated) request. */
function tellOwed(queue, sounding) {
  if (!queue) {
    owedTold.clear();
    return;
  }
  for (const id of [...owedTold.keys()]) {
    if (!queue.some((r) => r.request_id === id)) owedTold.delete(id);
  }
  for (const r of queue) {
    const said = r.escalation || 'new';
    if (owedTold.get(r.request_id) === said) continue;
    const first = !owedTold.has(r.request_id);
    owedTold.set(r.request_id, said);
    const loud = sounding.includes(r);
    const u = URGENCY[r.urgency] || { label: r.urgency };
    if (loud) alerts.notify(r, u.label);
    if (first || loud) {
      const how = r.escalation === 'escalated' ? 'Escalated' : r.escalation === 'realerted' ? 'Still waiting' : 'New';
      announce(`${how}: ${u.label} request from ${r.station} waiting. Save the outcome to answer it.`, { assertive: loud });
    }
  }
}

/** The outcome form's panel: how many wait, the most urgent, and what to do. */
function renderOwed() {
  const queue = owedQueue() || [];
  const box = $('#owed-queue');
  const top = queue[0];
  const n = queue.length;
  box.dataset.level = !top ? 'none' : top.escalation === 'escalated' ? 'escalated' : top.urgency;
  $('#owed-queue-title').textContent = n
    ? `Save the outcome to answer: ${n} request${n === 1 ? '' : 's'} waiting`
    : 'No one is waiting for A&E';
  $('#owed-hint').textContent = n
    ? 'You are not alerted for requests until the outcome is saved. Saving takes you to the queue, where they ring.'
    : 'New requests show here. You are alerted for them once the outcome is saved.';
  const line = $('#owed-top');
  line.hidden = !top;
  if (!top) {
    line.replaceChildren();
    return;
  }
  const u = URGENCY[top.urgency] || { label: top.urgency, icon: 'info' };
  const level = top.escalation === 'escalated' ? el('span', { class: 'esc-tag', 'data-level': 'escalated' }, icon('alert'), 'Escalated')
    : top.escalation === 'realerted' ? el('span', { class: 'esc-tag', 'data-level': 'realerted' }, icon('bell'), 'Re-alerted') : null;
  const drawn = JSON.stringify([top.request_id, top.urgency, top.escalation, top.station, top.site, top.reason, n > 1]);
  if (line.dataset.drawn !== drawn) {
    line.dataset.drawn = drawn;
    fill(line,
      el('span', { class: 'visually-hidden', text: n > 1 ? 'Most urgent: ' : 'Waiting: ' }),
      el('span', { class: `badge urgency-${top.urgency}` }, icon(u.icon), u.label),
      level,
      el('strong', { class: 'owed-station', text: top.station }),
      top.site ? el('span', { class: 'owed-site', text: top.site }) : null,
      el('span', { class: 'owed-reason', text: top.reason }),
      el('span', { class: 'owed-wait' }, 'waiting ', el('span', { class: 'owed-wait-value' })));
  }
  tickOwed();
}

function tickOwed() {
  const queue = owedQueue();
  const value = $('#owed-top .owed-wait-value');
  if (!queue || !queue[0] || !value) return;
  value.textContent = formatDuration(waitedNow(queue[0]));
}

function showOutcomeErrors(errors) {
  const box = $('#outcome-errors');
  $('ul', box).replaceChildren(...errors.map((e) => el('li', {}, el('a', { href: '#outcome-field', text: e }))));
  box.hidden = errors.length === 0;
  $('#outcome-field').classList.toggle('has-error', errors.length > 0);
  if (errors.length) box.focus();
}

function updateNoteCounter() {
  const note = $('#outcome-note');
  const left = note.maxLength - note.value.length;
  $('#note-count').textContent = `${left} character${left === 1 ? '' : 's'} left`;
}
$('#outcome-note').addEventListener('input', updateNoteCounter);

/** The server's limit on the note (`welcome.limits`, see formLimits). */
function applyLimits(limits) {
  $('#outcome-note').maxLength = formLimits(limits).noteMaxChars;
  updateNoteCounter();
}

$('#outcome-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!state.owed) return;
  const chosen = $('input[name=outcome]:checked');
  if (!chosen) {
    showOutcomeErrors(['Choose what happened to the patient.']);
    return;
  }
  const note = $('#outcome-note').value.trim();
  const message = { type: 'record_outcome', call_id: state.owed.callId, outcome: chosen.value };
  if (note) message.note = note;
  if (!socket.send(message)) {
    showOutcomeErrors(['Not connected, so nothing was saved. Wait for \u201cConnected\u201d at the top, then save again.']);
    return;
  }
  showOutcomeErrors([]);
  const button = $('#outcome-button');
  button.disabled = true;
  $('.label', button).textContent = 'Saving\u2026';
});

// ----- Messages from the server ------------------------------------------

socket.on('welcome', async (welcome) => {
  state.told = false;
  applyLimits(welcome.limits);
  const synced = await socket.barrier();
  if (!synced) return;
  if (!state.told && callSession.call) {
    callSession.teardown();
    go('queue');
    notice('The call ended while this screen was offline.');
  } else if (!state.told && state.answering !== null) {
    // The answer was lost with the connection: nothing was answered.
    state.answering = null;
    dropAnswerMedia();
    callView.end();
    go('queue');
    notice('Your answer did not reach the server (the connection dropped). Answer again if the request is still waiting.');
    renderQueue();
  }
  if (state.view === 'loading') go('queue');
});

socket.on('presence', (p) => {
  state.presence = p;
  renderPresence();
  const engaged = p.engaged;
  if (engaged && engaged.state === 'outcome_pending') {
    state.told = true;
    if (!state.owed || state.owed.callId !== engaged.call_id) {
      const start = callSession.start;
      showOutcomeForm(engaged.call_id, start && start.call_id === engaged.call_id ? start : null, null);
    }
  } else if (engaged && engaged.state === 'in_call') {
    state.told = true;
  } else if (!engaged && state.owed) {
    state.owed = null;
    if (state.view === 'outcome') go('queue');
  }
  if (!ringable()) state.rung.clear();
  if (state.view === 'loading' && !engaged) go('queue');
  renderQueue();
});

socket.on('queue', (q) => {
  state.queue = q.requests;
  state.queueAt = performance.now();
  // A request that left the queue (answered, cancelled) stops ringing.
  for (const id of [...state.rung.keys()]) {
    if (!q.requests.some((r) => r.request_id === id)) state.rung.delete(id);
  }
  const n = q.clinicians_available;
  $('#clinicians-available').textContent = `${n}${n === 0 ? ' (nobody is being alerted)' : ''}`;
  syncEscalations();
  renderQueue();
});

socket.on('ring', ({ request }) => {
  if (callSession.call) return;
  const before = state.rung.get(request.request_id);
  state.rung.set(request.request_id, request);
  const u = URGENCY[request.urgency] || { label: request.urgency };
  if (!before) {
    alerts.notify(request, u.label);
    announce(`New ${u.label} request from ${request.station}: ${request.reason}.`, { assertive: true });
  } else if ((before.escalation || null) !== (request.escalation || null)) {
    // Nobody has answered: alerted again, with a fresh notification.
    alerts.notify(request, u.label);
    const how = request.escalation === 'escalated' ? 'Escalated' : 'Still waiting';
    announce(`${how}: ${u.label} request from ${request.station} has not been answered.`, { assertive: true });
  }
  updateRinging();
});

socket.on('escalation', ({ request }) => addEscalation(request));
socket.on('outcome_recorded', (m) => {
  const o = OUTCOMES[m.outcome] || { label: m.outcome };
  if (state.owed && state.owed.callId === m.call_id) state.owed = null;
  if (state.view === 'outcome') go('queue');
  notice(`Outcome saved: ${o.label}. You are alerted for new requests again.`);
  announce(`Outcome saved: ${o.label}.`);
  renderQueue();
});
socket.on('error', (err) => {
  switch (err.in_reply_to) {
    case 'accept': {
      state.answering = null;
      dropAnswerMedia();
      callView.end();
      if (state.view === 'call' && !callSession.call) go('queue');
      const text = err.code === 'already_taken'
        ? 'Another clinician answered that request first.'
        : err.code === 'unknown_request' ? 'That request is no longer waiting (it was cancelled or answered).' : err.message;
      notice(text);
      announce(text, { assertive: true });
      renderQueue();
      break;
    }
    case 'record_outcome': {
      const button = $('#outcome-button');
      button.disabled = false;
      $('.label', button).textContent = 'Save outcome';
      showOutcomeErrors([err.message]);
      break;
    }
    case 'set_availability':
      notice(err.code === 'outcome_required' ? 'Record the outcome of your last call first.' : err.message);
      renderPresence();
      break;
    default:
      if (err.code !== 'replaced') console.warn('server refused a message', err);
  }
});

// ----- Escalation duty -------------------------------------------------------
// Accounts with an escalation duty are alerted about requests nobody has
// answered, whatever their availability and even in a call: an alarm that
// repeats until silenced (a single one in a call), a notification that
// stays, the title, and a banner that stays while the request waits.

function addEscalation(entry) {
  const known = state.escalations.get(entry.request_id);
  const arrived = performance.now();
  state.escalations.set(entry.request_id, { entry, acknowledged: known ? known.acknowledged : false, arrived, waitedAt: entry.waited_ms });
  if (!known) {
    const u = URGENCY[entry.urgency] || { label: entry.urgency };
    alerts.notifyEscalation(entry, u.label, formatDuration(entry.waited_ms));
    if (callSession.call) alerts.alarm('once');
    announce(`Escalated: ${u.label} request from ${entry.station} has waited ${spokenDuration(entry.waited_ms)} and nobody has answered.`, { assertive: true });
  }
  updateDuty();
}

/** The queue is the truth: escalated requests leave the banner when they leave the queue. */
function syncEscalations() {
  for (const [id, e] of [...state.escalations]) {
    const now = state.queue.find((r) => r.request_id === id);
    if (!now) {
      state.escalations.delete(id);
      alerts.closeEscalation(id);
      announce(`The escalated request from ${e.entry.station} is no longer waiting.`);
    } else {
      e.entry = now;
      e.arrived = state.queueAt;
      e.waitedAt = now.waited_ms;
    }
  }
  // After a reload a duty holder finds what is already escalated.
  if (account.escalation_duty) {
    for (const r of state.queue) {
      if (r.escalation === 'escalated' && !state.escalations.has(r.request_id)) addEscalation(r);
    }
  }
  updateDuty();
}

function dutyWaited(entry) {
  const e = state.escalations.get(entry.request_id);
  return e ? e.waitedAt + (performance.now() - e.arrived) : entry.waited_ms;
}

let dutyDrawn = '';

function renderDuty() {
  const box = $('#duty-alerts');
  const list = [...state.escalations.values()];
  box.hidden = list.length === 0;
  callView.setDutyAlerts(list.map((e) => e.entry), dutyWaited);
  alerts.setEscalated(list.length);
  const blocked = callSession.call ? 'You are in a call.' : state.owed ? 'Record the outcome of your last call first.' : null;
  // Redrawn only when something shown changes, so that focus stays put.
  const drawn = JSON.stringify([blocked, state.answering, list.map((e) => [e.entry.request_id, e.acknowledged, e.entry.reason])]);
  if (drawn === dutyDrawn) return;
  dutyDrawn = drawn;
  fill(box, list.map(({ entry, acknowledged }) => {
    const u = URGENCY[entry.urgency] || { label: entry.urgency, icon: 'info' };
    const answer = el('button', { type: 'button', class: 'btn btn-go', 'data-action': 'answer-escalated' },
      icon('phone'), el('span', { text: 'Answer' }));
    answer.disabled = !!blocked || state.answering !== null;
    answer.addEventListener('click', () => acceptRequest(entry.request_id));
    const silence = el('button', { type: 'button', class: 'btn btn-secondary', 'data-action': 'silence' },
      icon('speaker'), el('span', { text: acknowledged ? 'Alarm silenced' : 'Silence alarm' }));
    silence.disabled = acknowledged;
    silence.addEventListener('click', () => {
      const e = state.escalations.get(entry.request_id);
      if (e) e.acknowledged = true;
      updateDuty();
    });
    return el('section', { class: `duty-alert${acknowledged ? ' acknowledged' : ''}`, 'data-id': entry.request_id, 'aria-label': 'Escalated request' },
      el('span', { class: 'duty-icon' }, icon('alert', 'big')),
      el('div', { class: 'duty-body' },
        el('p', { class: 'duty-title' }, 'Escalated: nobody has answered for ',
          el('span', { class: 'duty-wait', 'data-wait-id': entry.request_id, text: formatDuration(dutyWaited(entry)) })),
        el('p', { class: 'duty-detail' },
          el('span', { class: `badge urgency-${entry.urgency}` }, icon(u.icon), u.label),
          el('strong', { text: entry.station }),
          entry.site ? el('span', { text: entry.site }) : null,
          el('span', { text: entry.reason })),
        el('p', { class: 'duty-hint', text: blocked
          ? `${blocked} Ask a free colleague to answer it, or phone the MIU.`
          : 'You are on escalation duty. Answer it now, or make sure a colleague does.' })),
      el('div', { class: 'duty-actions' }, answer, silence));
  }));
}

function tickDuty() {
  for (const span of $$('#duty-alerts .duty-wait')) {
    const e = state.escalations.get(Number(span.dataset.waitId));
    if (e) span.textContent = formatDuration(dutyWaited(e.entry));
  }
  callView.tickDuty(dutyWaited, [...state.escalations.values()].map((e) => e.entry));
}

/** The alarm repeats while an escalation is unsilenced and its holder is free to act. */
function updateDuty() {
  const unsilenced = [...state.escalations.values()].some((e) => !e.acknowledged);
  if (unsilenced && !callSession.call && state.answering === null) alerts.alarm('repeat');
  else alerts.stopAlarm();
  renderDuty();
}

if (account.escalation_duty) {
  $('#duty-fact').hidden = false;
  $('#duty-fact-value').hidden = false;
}

buildOutcomeOptions();
applyLimits(null);
renderAlertState();
socket.start();
