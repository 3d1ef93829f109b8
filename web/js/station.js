// The MIU station (a nurse in a treatment room): request a consult, wait
// with a live clock, hold the call, then see the recorded outcome.

import { $, $$, el, icon, announce, showView, confirmButton, formatDuration, spokenDuration, patientRefRule, formLimits, URGENCY, OUTCOMES } from './ui.js';
import { requireRole } from './api.js';
import { startShell } from './shell.js';
import { openLocalMedia, stopStream } from './media.js';
import { CallSession } from './callsession.js';

const account = await requireRole('station');
const socket = startShell(account, { signOutWarning: () => signOutWarning() });
const hook = window.miulink;
const settings = account.settings || {};
const fallbackPhone = settings.fallback_phone;

function savedRequest() {
  try {
    return JSON.parse(window.sessionStorage.getItem('miulink.request') || 'null');
  } catch {
    return null;
  }
}

/** What this screen believes; the server's messages correct it. */
const state = {
  view: 'loading',
  request: null, // the latest request_update
  // What we asked for, for the summary (kept over a reload of the page).
  submitted: savedRequest(),
  media: null, // Promise of openLocalMedia()
  endedAt: null,
  told: false, // the server told us about our request since the last welcome
  waitBase: null, // {waitedMs, at}
  escalation: null, // null | 'realerted' | 'escalated' (of the waiting request)
  escalationSaid: null, // what the nurse was last told of it ('level/reach')
};

// The station offers: its Call is prepared while it waits (see onWaiting).
const callSession = new CallSession({
  socket,
  role: 'station',
  settings,
  marks: hook.marks,
  show: go,
  media: ensureMedia,
  // Found again after a reload (not after a reconnect: that is the same call).
  isReturn: () => state.view === 'loading',
  told: () => { state.told = true; },
  onEnd: showAfterCall,
  newMarks: true,
});

// The live call, else the offer prepared while waiting.
Object.defineProperty(hook, 'pc', { get: () => (callSession.current ? callSession.current.pc : null) });
Object.defineProperty(hook, 'call', { get: () => callSession.current });
hook.state = state;
hook.callSession = callSession;

function go(view) {
  state.view = view;
  showView(view);
}

/** What signing out now would lose (null: nothing, sign out at once). */
function signOutWarning() {
  if (callSession.call) return 'the call will end.';
  const r = state.request;
  if (r && r.state === 'accepted') return 'a clinician is answering, and the call will end.';
  if (r && r.state === 'waiting' && state.view === 'waiting') {
    return state.submitted && state.submitted.test
      ? 'your test call will be cancelled.'
      : 'your request will be cancelled and A&E will no longer be alerted.';
  }
  return null;
}

// ----- The request form --------------------------------------------------

const form = $('#request-form');
const details = $('#details');
const ref = $('#patient-ref');
/** The trust's pattern for local references: the server refuses others. */
let refRule = null;
/** The server's limit on the reason it takes (`reason_max_chars`). */
let reasonMaxChars = 0;
/** The longest the details box is made, however much the server would take. */
const DETAILS_MAX_CHARS = details.maxLength;
/** What a chosen reason puts before the details ("Head injury: "). */
const CHIP_PREFIX_CHARS = Math.max(...$$('input[name=reason]', form).map((i) => `${i.value}: `.length));
const REF_HINT_TEXT = $('#ref-hint').textContent;

/**
 * The server's limits (`welcome.limits`, see formLimits): the reason's
 * length (the details never run past it), and the local reference's
 * length, pattern and hint (else those of `/api/me`).
 */
function applyLimits(limits) {
  const l = formLimits(limits);
  reasonMaxChars = l.reasonMaxChars;
  details.maxLength = Math.max(1, Math.min(DETAILS_MAX_CHARS, reasonMaxChars - CHIP_PREFIX_CHARS));
  ref.maxLength = l.patientRefMaxChars;
  refRule = patientRefRule(l.patientRefPattern || settings.patient_ref_pattern,
    l.patientRefHint || settings.patient_ref_hint, l.patientRefMaxChars);
  if (refRule.htmlPattern) ref.setAttribute('pattern', refRule.htmlPattern);
  else ref.removeAttribute('pattern');
  // The field's description (aria-describedby): what a reference looks like.
  $('#ref-hint').textContent = refRule.hint ? `The MIU attendance number: ${refRule.hint}.` : REF_HINT_TEXT;
  updateCounter();
}

function updateCounter() {
  const left = details.maxLength - details.value.length;
  $('#details-count').textContent = `${left} character${left === 1 ? '' : 's'} left`;
}
details.addEventListener('input', updateCounter);

/**
 * What is wrong with each field now: null, or [the summary's link target,
 * the summary's words, the words by the field].
 */
const CHECKS = {
  urgency() {
    if ($('input[name=urgency]:checked', form)) return null;
    const text = 'Choose how urgent the consult is.';
    return ['urgency-field', text, text];
  },
  reason() {
    const chip = ($('input[name=reason]:checked', form) || {}).value;
    let text = null;
    if (!chip) text = 'Choose a reason.';
    else if (chip === 'Other' && !details.value.trim()) text = 'For \u201cOther\u201d, say in a few words what it is about.';
    return text ? [chip ? 'details' : 'reason-field', text, text] : null;
  },
  ref() {
    const problem = refRule.problem(ref.value);
    return problem ? ['patient-ref', `Local reference: ${problem}`, problem] : null;
  },
};

/**
 * A field shown in error is checked again as soon as the nurse changes it:
 * its message (by the field and in the summary) goes once it is right.
 */
function recheck(name) {
  if (!$(`#${name}-field`).classList.contains('has-error')) return;
  const problem = CHECKS[name]();
  showFieldError(name, problem ? problem[2] : null);
  const summary = $('#request-errors');
  const item = $(`li[data-field="${name}"]`, summary);
  if (!item) return;
  if (problem) {
    const link = $('a', item);
    link.href = `#${problem[0]}`;
    link.textContent = problem[1];
  } else {
    item.remove();
  }
  summary.hidden = $$('li', summary).length === 0;
}
for (const input of $$('input[name=urgency]', form)) input.addEventListener('change', () => recheck('urgency'));
for (const input of $$('input[name=reason]', form)) input.addEventListener('change', () => recheck('reason'));
details.addEventListener('input', () => recheck('reason'));
ref.addEventListener('input', () => recheck('ref'));

function showFieldError(name, message) {
  const box = $(`#${name}-error`);
  const field = $(`#${name}-field`);
  box.hidden = !message;
  box.textContent = message || '';
  field.classList.toggle('has-error', !!message);
  if (name === 'ref') ref.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** The error summary: [link target, words, and the field it is about, if any]. */
function showErrors(errors) {
  const summary = $('#request-errors');
  const list = $('ul', summary);
  list.replaceChildren(...errors.map(([target, message, field]) =>
    el('li', { 'data-field': field }, el('a', { href: `#${target}`, text: message }))));
  summary.hidden = errors.length === 0;
  if (errors.length) summary.focus();
}

function readForm() {
  const urgency = ($('input[name=urgency]:checked', form) || {}).value;
  const chip = ($('input[name=reason]:checked', form) || {}).value;
  const extra = details.value.trim();
  const errors = [];
  for (const [name, check] of Object.entries(CHECKS)) {
    const problem = check();
    showFieldError(name, problem ? problem[2] : null);
    if (problem) errors.push([problem[0], problem[1], name]);
  }
  showErrors(errors);
  if (errors.length) return null;
  let reason = chip === 'Other' ? extra : chip;
  if (chip !== 'Other' && extra) reason = `${chip}: ${extra}`;
  const message = { type: 'request_consult', urgency, reason: reason.slice(0, reasonMaxChars) };
  if (ref.value.trim()) message.patient_ref = ref.value.trim();
  return message;
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const message = readForm();
  if (!message) return;
  sendRequest(message, 'request-button');
});

// A test call goes to the automatic test line (a monitoring probe that
// answers and shows a test card), when the trust has set one up.
const testLine = settings.test_call_clinician;
$('#test-call-card').hidden = !testLine;
$('#test-call-button').addEventListener('click', () => {
  sendRequest({
    type: 'request_consult',
    urgency: 'routine',
    reason: 'Test call from the station',
    test: true,
    direct_to: testLine,
  }, 'test-call-button');
});

/** Which button sent the last request (errors point back at it). */
let sentFrom = 'request-button';

function sendRequest(message, from) {
  if (!socket.send(message)) {
    showErrors([[from, 'Not connected to the server, so nothing was sent. Wait for \u201cConnected\u201d at the top, then try again.']]);
    return;
  }
  sentFrom = from;
  state.submitted = message;
  window.sessionStorage.setItem('miulink.request', JSON.stringify(message));
  const button = $(`#${from}`);
  $('#request-button').disabled = true;
  $('#test-call-button').disabled = true;
  $('.label', button).textContent = message.test ? 'Calling the test line\u2026' : 'Sending request\u2026';
  // Start the camera now: it is ready (and previewed) by the time a
  // clinician answers, which saves set-up time in the call.
  ensureMedia();
}

function resetForm() {
  const button = $('#request-button');
  button.disabled = false;
  $('.label', button).textContent = 'Request A&E consult';
  const test = $('#test-call-button');
  test.disabled = false;
  $('.label', test).textContent = 'Make a test call';
}

function clearForm() {
  form.reset();
  updateCounter();
  for (const name of ['urgency', 'reason', 'ref']) showFieldError(name, null);
  showErrors([]);
  resetForm();
}

function toRequestForm(notice) {
  window.sessionStorage.removeItem('miulink.request');
  state.submitted = null;
  dropPreparedCall();
  releaseMedia();
  resetForm();
  const box = $('#request-notice');
  box.hidden = !notice;
  box.textContent = notice || '';
  go('request');
}

// ----- Media -------------------------------------------------------------

function ensureMedia() {
  if (!state.media) {
    $('#preview-off').hidden = false;
    $('#preview-off-text').textContent = 'Starting the camera\u2026';
    state.media = openLocalMedia().then((local) => {
      $('#preview').srcObject = local.stream;
      $('#preview-off').hidden = local.hasVideo;
      $('#preview-off-text').textContent = 'No camera: audio only';
      const warning = $('#media-warning');
      warning.hidden = !local.warning;
      warning.textContent = local.warning || '';
      return local;
    });
  }
  return state.media;
}

function releaseMedia() {
  const media = state.media;
  state.media = null;
  $('#preview').srcObject = null;
  if (media) media.then((local) => stopStream(local.stream));
}

// ----- Waiting -----------------------------------------------------------

function summaryRows(target, { urgency, reason, patient_ref: patientRef }) {
  const u = URGENCY[urgency] || { label: urgency, icon: 'info' };
  const rows = [
    ['Urgency', el('span', { class: `badge urgency-${urgency}` }, icon(u.icon), u.label)],
    ['Reason', reason],
  ];
  if (patientRef) rows.push(['Reference', patientRef]);
  target.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));
}

function showPhone() {
  const links = [$('#fallback-phone'), $('#fallback-phone-2')];
  for (const a of links) {
    a.textContent = fallbackPhone || '';
    a.href = `tel:${(fallbackPhone || '').replace(/[^0-9+]/g, '')}`;
  }
  const text = $('#fallback-text');
  if (fallbackPhone) text.replaceChildren('If the patient cannot wait, phone A&E on ', links[0], '.');
  else text.textContent = 'If the patient cannot wait, phone A&E directly.';
  $('#fallback-line').hidden = !fallbackPhone;
}

function onWaiting(update) {
  const first = state.view !== 'waiting';
  state.waitBase = { waitedMs: update.waited_ms, at: performance.now() };
  $('#wait-position').textContent = String(update.position ?? '\u2013');
  $('#wait-clinicians').textContent = String(update.clinicians_available);
  const testing = !!(state.submitted && state.submitted.test);
  // (The test line is not a person, so it is never counted as available.)
  const nobody = update.clinicians_available === 0 && !testing;
  $('#nobody').hidden = !nobody;
  $('#nobody').setAttribute('role', nobody ? 'alert' : 'none');
  $('#fallback-line').hidden = nobody || !fallbackPhone || testing;
  $('#waiting-sub').textContent = testing
    ? 'Calling the automatic test line. It answers within a few seconds if it is running.'
    : nobody
      ? 'Nobody can be alerted at the moment.'
      : `${update.clinicians_available} clinician${update.clinicians_available === 1 ? ' is' : 's are'} being alerted.`;
  showEscalation(update.escalation || null, update, nobody);
  if (testing) $('#waiting-title').textContent = 'Test call: waiting for the test line';
  if (state.submitted) summaryRows($('#waiting-summary'), state.submitted);
  else $('#waiting-summary').replaceChildren();
  const cancel = $('#cancel-button');
  cancel.disabled = false;
  if (first) disarmCancel();
  if (!cancel.classList.contains('armed')) $('.label', cancel).textContent = testing ? 'Cancel test call' : 'Cancel request';
  if (first) {
    ensureMedia();
    prepareCall();
    go('waiting');
    clearForm();
    announce(`Request sent. Position ${update.position} in the queue. ${nobody ? 'No clinician is available.' : ''}`, { assertive: nobody });
  } else if (nobody) {
    announce('No A&E clinician is available right now.', { assertive: true });
  }
  tickWait();
}

/**
 * What the latest escalation step really did, from the switchboard's own
 * counts (`alerted`, `duty_alerted`): the nurse is never told that someone
 * was alerted when nobody was.
 *   'none'    nobody could be alerted (nobody on line): phone first
 *   'others'  clinicians were alerted again, but no senior on duty (escalated)
 *   'senior'  the senior on duty was alerted (escalated)
 *   'all'     the available clinicians were alerted again (re-alerted)
 */
function escalationReach(level, update, nobody) {
  const alerted = typeof update.alerted === 'number' ? update.alerted : (nobody ? 0 : null);
  if (alerted === 0) return 'none';
  if (level !== 'escalated') return 'all';
  if (typeof update.duty_alerted === 'number') return update.duty_alerted > 0 ? 'senior' : 'others';
  return 'senior';
}

function people(n) {
  return `${n} A&E clinician${n === 1 ? '' : 's'}`;
}

/** The phone, large, in the escalation box: first in it when it is the only help. */
function showBigPhone(first) {
  const box = $('#escalated-phone-box');
  const parent = $('#escalated');
  if (first) parent.prepend(box);
  else parent.append(box);
  box.hidden = false;
  if (fallbackPhone) {
    $('#escalated-phone-label').textContent = 'If the patient cannot wait, phone A&E now';
    $('#escalated-phone-number').textContent = fallbackPhone;
    $('#escalated-phone').href = `tel:${fallbackPhone.replace(/[^0-9+]/g, '')}`;
    $('#escalated-phone').hidden = false;
  } else {
    $('#escalated-phone-label').textContent = 'If the patient cannot wait, phone A&E directly.';
    $('#escalated-phone').hidden = true;
  }
}

/**
 * Nobody has answered: the nurse is told what the switchboard really did
 * (alerted again, the senior on duty alerted, or nobody on line to alert),
 * and shown the phone number in large type once it is escalated, or first
 * of all when nobody could be alerted.
 */
function showEscalation(level, update, nobody) {
  const reach = level ? escalationReach(level, update, nobody) : null;
  const said = level ? `${level}/${reach}` : null;
  state.escalation = level;
  const alerted = update.alerted;
  const loud = reach === 'none' || level === 'escalated';
  $('#realerted').hidden = !(level === 'realerted' && reach === 'all');
  $('#escalated').hidden = !loud;
  $('#waiting-card').dataset.escalation = reach === 'none' ? 'nobody' : level || 'none';
  $('#escalated').dataset.reach = reach || '';
  let title = 'Waiting for an A&E clinician';
  let spoken = null;
  if (level === 'realerted' && reach === 'all') {
    title = 'Still waiting: A&E alerted again';
    $('#realerted-text').textContent = `Nobody has answered yet, so ${typeof alerted === 'number' ? `the ${people(alerted)} available ${alerted === 1 ? 'has' : 'have'}` : 'every available A&E clinician has'} been alerted again. Your request keeps its place in the queue.`;
    spoken = 'Nobody has answered yet: A&E has been alerted again.';
  } else if (reach === 'none') {
    title = 'Nobody could be alerted';
    $('#escalated-title').textContent = 'Nobody could be alerted: no A&E clinician is on line';
    $('#escalated-text').textContent = 'Nobody has answered, and nobody at A&E is signed in to alert. Your request stays in the queue and rings as soon as a clinician signs in.';
    spoken = `Nobody could be alerted: no A&E clinician is on line.${fallbackPhone ? ` If the patient cannot wait, phone A&E now on ${fallbackPhone}.` : ' If the patient cannot wait, phone A&E now.'}`;
  } else if (reach === 'senior') {
    title = 'Escalated: still waiting for A&E';
    $('#escalated-title').textContent = 'Escalated: the A&E senior on duty has been alerted';
    $('#escalated-text').textContent = typeof alerted === 'number'
      ? `Nobody has answered yet. ${alerted === 1 ? 'The senior on duty has' : `${people(alerted)}, the senior on duty among them, have`} been alerted. Your request stays in the queue.`
      : 'Nobody has answered yet. Your request stays in the queue and A&E is still being alerted.';
    spoken = `Escalated: the A&E senior on duty has been alerted.${fallbackPhone ? ` If the patient cannot wait, phone A&E on ${fallbackPhone}.` : ''}`;
  } else if (reach === 'others') {
    title = 'Escalated: no senior on duty on line';
    $('#escalated-title').textContent = 'Escalated: no senior on duty is on line';
    $('#escalated-text').textContent = `Nobody has answered. The ${people(alerted)} available ${alerted === 1 ? 'has' : 'have'} been alerted again, but nobody with the escalation duty is signed in. Your request stays in the queue.`;
    spoken = `Escalated, but no senior on duty is on line.${fallbackPhone ? ` If the patient cannot wait, phone A&E now on ${fallbackPhone}.` : ''}`;
  }
  $('#waiting-title').textContent = title;
  if (loud) {
    // The phone is shown here, large; not twice on the screen.
    $('#nobody').hidden = true;
    $('#fallback-line').hidden = true;
    showBigPhone(reach === 'none' || reach === 'others');
    $('#waiting-sub').textContent = reach === 'senior'
      ? 'The A&E senior on duty has been alerted.'
      : reach === 'none' ? 'Nobody at A&E is on line to alert.' : 'No senior on duty is on line.';
  }
  if (said && said !== state.escalationSaid) announce(spoken, { assertive: true });
  state.escalationSaid = said;
}

function tickWait() {
  if (state.view !== 'waiting' || !state.waitBase) return;
  const ms = state.waitBase.waitedMs + (performance.now() - state.waitBase.at);
  const clock = $('#wait-clock');
  clock.textContent = formatDuration(ms);
  clock.setAttribute('aria-label', `Waited ${spokenDuration(ms)}`);
}
window.setInterval(tickWait, 500);

function cancelRequest() {
  if (!state.request) return;
  if (!socket.send({ type: 'cancel_request', request_id: state.request.request_id })) {
    announce('Not connected: the request was not cancelled. Try again when connected.', { assertive: true });
    return;
  }
  const cancel = $('#cancel-button');
  cancel.disabled = true;
  $('.label', cancel).textContent = 'Cancelling\u2026';
}

// A gloved mis-tap must not withdraw a patient's request: the first press
// asks for a second within a few seconds (a test call goes at once).
const disarmCancel = confirmButton($('#cancel-button'), {
  armedLabel: 'Press again to cancel the request',
  timeoutMs: 5000,
  needed: () => !(state.submitted && state.submitted.test),
  spoken: () => 'Press Cancel request again to cancel it. A&E will no longer be alerted.',
  action: cancelRequest,
});

// ----- The call ----------------------------------------------------------

/** While waiting: the offer is made in advance, so answering is quick. */
function prepareCall() {
  callSession.prepare(ensureMedia());
}

function dropPreparedCall() {
  callSession.dropPrepared();
}

/** The after-call screen: why it ended, the summary, the chat, the outcome (or the test's verdict). */
function showAfterCall(end, { call, start, text: reasonText }) {
  const sawVideo = !!(call && call.sawVideo);
  releaseMedia();
  state.endedAt = socket.serverNow();
  const peer = start ? start.peer.display_name : 'The clinician';
  $('#after-reason').textContent = reasonText;
  const testCall = !!(start && start.consult.test);
  $('#after-title').textContent = testCall ? 'Test call finished' : 'Consult finished';
  const rows = [];
  if (start) {
    rows.push(['Clinician', start.peer.display_name]);
    rows.push(['Waited', formatDuration(start.consult.accepted_at - start.consult.requested_at)]);
    rows.push(['Call length', formatDuration(state.endedAt - start.consult.accepted_at)]);
  }
  $('#after-summary').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  // The chat stays readable (the spelled-out drug name, the dose) until
  // the next request; it lives in this page only.
  callSession.showTranscript($('#after-chat'), { headingId: 'after-chat-title' });
  if (testCall) {
    // The test line records an outcome only to keep its log complete; what
    // the nurse needs to know is whether the picture got through.
    const box = $('#after-outcome');
    box.dataset.state = 'done';
    const worked = sawVideo;
    box.replaceChildren(icon(worked ? 'check' : 'alert', 'big'),
      el('div', {},
        el('p', { class: 'outcome-label', text: 'Test call' }),
        el('p', { class: 'outcome-value', text: worked ? 'The video link works' : 'No picture arrived' }),
        el('p', { class: 'outcome-hint', text: worked
          ? 'Video reached this station and the test line. This station is ready for a consult.'
          : 'The test line answered but no video arrived. Try the device check, then ask IT to look at the network.' })));
    state.testCallEnded = true;
  } else {
    state.testCallEnded = false;
    showOutcome(null, peer);
  }
  go('after');
  announce(reasonText, { assertive: true });
}

function showOutcome(outcome, clinician) {
  const box = $('#after-outcome');
  if (!outcome) {
    box.dataset.state = 'pending';
    box.replaceChildren(el('span', { class: 'spinner', 'aria-hidden': 'true' }),
      el('span', { text: `Waiting for ${clinician} to record the outcome\u2026` }));
    return;
  }
  const o = OUTCOMES[outcome] || { label: outcome, hint: '' };
  box.dataset.state = 'done';
  box.replaceChildren(icon('check', 'big'),
    el('div', {},
      el('p', { class: 'outcome-label', text: 'Outcome recorded by the clinician' }),
      el('p', { class: 'outcome-value', id: 'outcome-value', text: o.label }),
      el('p', { class: 'outcome-hint', text: o.hint })));
  announce(`Outcome recorded: ${o.label}.`);
}

$('#new-request').addEventListener('click', () => {
  callSession.start = null;
  $('#after-chat').replaceChildren();
  toRequestForm(null);
  $('input[name=urgency]', form).focus();
});

// ----- Messages from the server ------------------------------------------

socket.on('welcome', async (welcome) => {
  state.told = false;
  applyLimits(welcome.limits);
  const synced = await socket.barrier();
  if (!synced) return;
  // Everything the server had to resume has arrived by now.
  if (!state.told) {
    if (state.view === 'waiting') {
      toRequestForm('Your last request was closed while this screen was offline. If it is still needed, request again.');
    } else if (state.view === 'call') {
      callSession.end({ reason: 'station_disconnected' });
    } else if (state.view === 'loading') {
      go('request');
    }
  }
});

socket.on('request_update', (update) => {
  state.told = true;
  state.request = update;
  switch (update.state) {
    case 'waiting':
      onWaiting(update);
      break;
    case 'accepted':
      showEscalation(null, false);
      $('#waiting-sub').textContent = `${update.clinician || 'A clinician'} is answering\u2026`;
      announce(`${update.clinician || 'A clinician'} is answering.`, { assertive: true });
      break;
    case 'ended':
      if (state.view !== 'after') callSession.end({ reason: 'hung_up_by_clinician' });
      if (!state.testCallEnded) showOutcome(null, update.clinician || 'the clinician');
      break;
    case 'completed':
      if (state.view !== 'after') callSession.end({ reason: 'hung_up_by_clinician' });
      if (!state.testCallEnded) showOutcome(update.outcome, update.clinician);
      break;
    case 'cancelled':
      state.request = null;
      toRequestForm('Request cancelled. Nobody will be alerted.');
      announce('Request cancelled.');
      break;
    case 'abandoned':
      state.request = null;
      toRequestForm('Your request was closed because this screen was offline for too long. If it is still needed, request again.');
      break;
    default:
      break;
  }
});

socket.on('error', (err) => {
  if (err.in_reply_to === 'request_consult') {
    resetForm();
    releaseMedia();
    if (err.code !== 'request_open') {
      // Nothing was sent: forget it, so that a reload does not show it.
      window.sessionStorage.removeItem('miulink.request');
      state.submitted = null;
    }
    const field = /^(\w+):\s*/.exec(err.message || '');
    if (err.code === 'invalid_field' && field && field[1] === 'patient_ref') {
      // The server refused the local reference: say so by the field.
      const words = (err.message || '').slice(field[0].length);
      const text = words ? `${words.charAt(0).toUpperCase()}${words.slice(1)}` : 'The server refused this local reference.';
      showFieldError('ref', text);
      showErrors([['patient-ref', `Local reference: ${text}`, 'ref']]);
      return;
    }
    const message = err.code === 'request_open'
      ? 'This station already has an open request. Wait for it, or cancel it first.'
      : err.message;
    showErrors([[sentFrom, message]]);
  } else if (err.in_reply_to === 'cancel_request') {
    announce(`Could not cancel: ${err.message}`, { assertive: true });
  } else if (err.code !== 'replaced') {
    console.warn('server refused a message', err);
  }
});

showPhone();
applyLimits(null);
socket.start();
