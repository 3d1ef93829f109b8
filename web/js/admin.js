// The admin console (/admin), for a trust's IT administrator: accounts
// (add, disable and enable, reset a password, escalation duty, monitoring,
// site), who is connected now (and ending a session), and the audit trail.
// Everything goes through /api/admin/... and /api/audit; the server checks
// every rule and its words are shown as they come.

import { $, $$, el, icon, announce, clockTime } from './ui.js';
import { call, requireRole, signOut, usernameProblem } from './api.js';
import { SIGNED_OUT_KEY } from './socket.js';

/** As the server's limits (`accounts::MAX_DISPLAY_NAME`, `MAX_SITE`). */
const MAX_DISPLAY_NAME = 100;
const MAX_SITE = 64;
const ONLINE_REFRESH_MS = 10_000;
const AUDIT_PAGE = 100;
const SEARCH_DELAY_MS = 300;

const ROLES = {
  station: { one: 'Station', many: 'stations' },
  clinician: { one: 'Clinician', many: 'clinicians' },
  manager: { one: 'Manager', many: 'managers' },
  admin: { one: 'Admin', many: 'admins' },
};

const AVAILABILITY = { available: 'Available', busy: 'Busy', away: 'Away' };

/** What an open screen is doing, in words (the switchboard's `activity`). */
function activityWords(activity, role) {
  switch (activity) {
    case 'idle': return role === 'station' ? 'Ready: no request' : 'Idle';
    case 'waiting': return 'Waiting for A&E to answer';
    case 'in_call': return 'In a call';
    case 'outcome_owed': return 'Recording a call\u2019s outcome';
    case 'signed_in': return 'Signed in, no call screen open (the dashboard or this console)';
    default: return null;
  }
}

/** The audit trail's actions, in words, grouped as the filter lists them. */
const ACTION_GROUPS = [
  ['Signing in and out', {
    login_succeeded: 'Signed in',
    login_failed: 'Sign-in refused',
    logout: 'Signed out',
    session_expired: 'Session expired',
    session_ended: 'Session ended by an admin',
  }],
  ['Accounts', {
    account_created: 'Account added',
    account_disabled: 'Account disabled',
    account_enabled: 'Account enabled',
    password_reset: 'Password reset',
    password_changed: 'Own password chosen',
    escalation_duty_changed: 'Escalation duty changed',
    monitoring_changed: 'Monitoring changed',
    site_changed: 'Site changed',
  }],
  ['Identity provider', {
    sso_account_created: 'Account added at first sign-in',
    sso_account_updated: 'Account updated from the identity provider',
    sso_account_linked: 'Account linked to the identity provider',
    sso_refused: 'Identity provider sign-in refused',
  }],
  ['Session log', {
    log_read: 'Session log read',
    log_exported: 'Session log exported (CSV)',
    log_events_read: 'A consult\u2019s events read',
  }],
  ['Server', {
    server_started: 'Server started',
    server_stopped: 'Server stopped',
  }],
];
const ACTIONS = Object.assign({}, ...ACTION_GROUPS.map(([, actions]) => actions));

// ----- Talking to the server ---------------------------------------------

/** The session ended under this page: the login page says so. */
function toSignedOut(message) {
  try {
    if (message) window.sessionStorage.setItem(SIGNED_OUT_KEY, String(message).slice(0, 300));
  } catch {
    // Storage is off: the login page still says the main thing.
  }
  window.location.replace(`/?signed_out=1&next=${encodeURIComponent(window.location.pathname)}`);
}

/**
 * One request through api.js's `call` (the server's words in an ApiError
 * on a 4xx or 5xx); a page whose session has ended goes to the login page.
 */
async function request(method, path, body) {
  try {
    return await call(method, path, body);
  } catch (e) {
    if (e.status === 401) {
      toSignedOut(e.message);
      return new Promise(() => {});
    }
    throw e;
  }
}

const api = {
  accounts: (q, role) => request('GET', `/api/admin/accounts?${new URLSearchParams({ q, role })}`),
  add: (account) => request('POST', '/api/admin/accounts', account),
  disable: (username) => request('POST', `/api/admin/accounts/${encodeURIComponent(username)}/disable`),
  enable: (username) => request('POST', `/api/admin/accounts/${encodeURIComponent(username)}/enable`),
  resetPassword: (username) => request('POST', `/api/admin/accounts/${encodeURIComponent(username)}/password`),
  edit: (username, change) => request('PATCH', `/api/admin/accounts/${encodeURIComponent(username)}`, change),
  online: () => request('GET', '/api/admin/online'),
  endSession: (id) => request('POST', `/api/admin/sessions/${encodeURIComponent(id)}/end`),
  audit: (query) => request('GET', `/api/audit?${query}`),
};

// ----- Small helpers -------------------------------------------------------

/** The server's words as a sentence: "no account ..." -> "No account ....". */
function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function plural(n, one, many = `${one}s`) {
  return `${n.toLocaleString('en-GB')} ${n === 1 ? one : many}`;
}

/** "Dr Asha Patel (dr-patel)". */
function who(account) {
  return `${account.display_name} (${account.username})`;
}

/** "23 Nov 2026, 14:05:09" in local (UK) time. */
function dateTime(ms) {
  return new Date(ms).toLocaleString('en-GB', {
    day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** "just now", "4 min ago", "2 h 5 min ago", "3 days ago". */
function ago(ms, now = Date.now()) {
  const minutes = Math.floor(Math.max(0, now - ms) / 60000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min ago` : `${hours} h ago`;
  const days = Math.floor(hours / 24);
  return `${plural(days, 'day')} ago`;
}

/** Text a screen reader reads instead of a dash. */
function none(words) {
  return [el('span', { 'aria-hidden': 'true', text: '\u2013' }), el('span', { class: 'visually-hidden', text: words })];
}

/** A panel's error box (role=alert): the server's words, or nothing. */
function showPanelError(id, message) {
  const box = $(`#${id}`);
  $('p', box).textContent = message ? sentence(message) : '';
  box.hidden = !message;
}

/** Sets a status line's text only when it changes (it is a live region). */
function setStatus(id, text) {
  const node = $(`#${id}`);
  if (node.textContent === text) return false;
  node.textContent = text;
  return true;
}

/** The element with this `data-key`, to give the focus back after a redraw. */
function byKey(key) {
  return key ? $(`[data-key="${CSS.escape(key)}"]`) : null;
}

function focusedKey() {
  const a = document.activeElement;
  return a && a.dataset ? a.dataset.key || null : null;
}

/** A button with words shown and, for screen readers, whom it acts on. */
function actionButton(label, hidden, attrs) {
  return el('button', { type: 'button', ...attrs },
    el('span', { class: 'label', text: label }),
    hidden ? el('span', { class: 'visually-hidden', text: ` ${hidden}` }) : null);
}

// ----- Dialogs -------------------------------------------------------------

const confirmDialog = $('#confirm-dialog');
let confirmAnswer = null;

/**
 * Asks before acting: resolves true when confirmed. `text` is a list of
 * paragraphs (strings or nodes); `danger` makes the confirm button red and
 * puts the focus on "Cancel" first.
 */
function confirmAction({ title, text, ok, danger = false }) {
  $('#confirm-title').textContent = title;
  $('#confirm-text').replaceChildren(...text.map((t) => el('p', {}, t)));
  const okButton = $('#confirm-ok');
  $('.label', okButton).textContent = ok;
  okButton.className = danger ? 'btn btn-danger' : 'btn';
  const opener = document.activeElement;
  confirmDialog.showModal();
  (danger ? $('#confirm-cancel') : okButton).focus();
  return new Promise((resolve) => {
    confirmAnswer = (yes) => {
      confirmAnswer = null;
      if (confirmDialog.open) confirmDialog.close();
      if (!yes && opener && opener.isConnected) opener.focus();
      resolve(yes);
    };
  });
}
$('#confirm-ok').addEventListener('click', () => confirmAnswer && confirmAnswer(true));
$('#confirm-cancel').addEventListener('click', () => confirmAnswer && confirmAnswer(false));
confirmDialog.addEventListener('close', () => confirmAnswer && confirmAnswer(false));

const otpDialog = $('#otp-dialog');
let otpReturn = null;

/**
 * The one-time password, shown once: `account` as the server now has it,
 * `how` 'added' or 'reset'. Focus goes back to `returnTo` afterwards.
 */
function showPassword(account, password, how, { sessionsClosed = 0, returnTo = null } = {}) {
  $('#otp-title').textContent = how === 'added' ? 'Account added' : 'Password reset';
  const intro = how === 'added'
    ? `${who(account)} can now sign in with this password.`
    : `${who(account)} has a new password.${sessionsClosed ? ` Their open ${sessionsClosed === 1 ? 'screen was' : 'screens were'} signed out.` : ''}`;
  $('#otp-intro').textContent = intro;
  $('#otp-label').textContent = `One-time password for ${account.username}`;
  $('#otp-value').textContent = password;
  let next;
  if (account.role === 'station') {
    next = 'This is the station\u2019s own password: enter it on the device in the treatment room. It stays until it is reset.';
  } else if (account.monitoring) {
    next = 'This is the monitoring probe\u2019s password: put it in the probe\u2019s settings. It stays until it is reset.';
  } else if (account.must_change_password) {
    next = 'They sign in with it once; the sign-in page then asks them to choose their own password, which nobody else (IT included) should know.';
  } else {
    next = 'They sign in with it.';
  }
  $('#otp-next').textContent = next;
  $('#otp-copied').textContent = '';
  otpReturn = returnTo;
  otpDialog.showModal();
  $('#otp-copy').focus();
}

$('#otp-copy').addEventListener('click', async () => {
  const value = $('#otp-value').textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(value);
    copied = true;
  } catch {
    // Not a secure page, or no permission: select it, then the old way.
    const range = document.createRange();
    range.selectNodeContents($('#otp-value'));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      copied = document.execCommand('copy');
    } catch {
      copied = false;
    }
  }
  $('#otp-copied').textContent = copied
    ? 'Copied. Paste it only where it is needed, then clear it.'
    : 'It could not be copied here: the password is selected, press Ctrl+C to copy it, or write it down.';
});

$('#otp-done').addEventListener('click', () => otpDialog.close());
otpDialog.addEventListener('close', () => {
  // Not left in the page once it has been seen.
  $('#otp-value').textContent = '';
  $('#otp-copied').textContent = '';
  const target = typeof otpReturn === 'function' ? otpReturn() : otpReturn;
  otpReturn = null;
  if (target && target.isConnected) target.focus();
});

// ----- Accounts ------------------------------------------------------------

let me = null;
let accounts = [];
const accountsTable = $('#accounts-table tbody');

function stateTags(a) {
  const tags = [];
  const tag = (text, name, cls = '') => tags.push(el('li', { class: `tag ${cls}`.trim() }, icon(name), text));
  if (a.disabled) tag('Disabled', 'x', 'tag-off');
  else tag('Active', 'check', 'tag-ok');
  if (a.must_change_password) tag('Must change password', 'alert', 'tag-warn');
  if (a.sso) tag('Signs in with the identity provider', 'user');
  if (a.monitoring) tag('Monitoring probe', 'monitor');
  if (a.break_glass) tag('Break-glass', 'alert');
  if (a.demo) tag('Demo account', 'info');
  return el('ul', { class: 'tags' }, tags);
}

function accountRow(a) {
  const self = me && a.username === me.username;
  const person = who(a);
  const name = el('td', { class: 'name' }, el('strong', { text: a.display_name }),
    self ? el('span', { class: 'you', text: ' (you)' }) : null);
  const duty = el('td', { class: 'duty' });
  if (a.role === 'clinician') {
    duty.append(el('span', { class: 'duty-state', text: a.escalation_duty ? 'Yes' : 'No' }),
      actionButton(a.escalation_duty ? 'Turn off' : 'Turn on', `escalation duty for ${person}`, {
        class: 'btn btn-small btn-secondary', 'data-action': 'duty', 'data-key': `duty:${a.username}`,
      }));
  } else {
    duty.append(...none('Not applicable'));
  }
  const online = el('td', { class: 'online' }, a.online
    ? el('span', { class: 'online-yes' }, icon('signal'), 'Yes')
    : el('span', { class: 'online-no', text: 'No' }));
  const buttons = el('div', { class: 'row-buttons' });
  const actions = el('td', { class: 'row-actions' }, buttons);
  if (self) {
    buttons.append(el('span', { class: 'hint', text: 'Your own account' }));
  } else {
    buttons.append(a.disabled
      ? actionButton('Enable', person, { class: 'btn btn-small btn-secondary', 'data-action': 'enable', 'data-key': `state:${a.username}` })
      : actionButton('Disable', person, { class: 'btn btn-small btn-danger-outline', 'data-action': 'disable', 'data-key': `state:${a.username}` }));
    if (!a.sso || a.role === 'station') {
      buttons.append(actionButton('Reset password', `of ${person}`, {
        class: 'btn btn-small btn-secondary', 'data-action': 'reset', 'data-key': `reset:${a.username}`,
      }));
    }
  }
  buttons.append(actionButton('Edit', `site${['station', 'clinician'].includes(a.role) ? ' or monitoring' : ''} of ${person}`, {
    class: 'btn btn-small btn-secondary', 'data-action': 'edit', 'data-key': `edit:${a.username}`,
  }));
  return el('tr', { 'data-username': a.username, class: a.disabled ? 'is-disabled' : '' },
    name,
    el('td', {}, el('code', { text: a.username })),
    el('td', { text: ROLES[a.role] ? ROLES[a.role].one : a.role }),
    el('td', {}, a.site ? a.site : none('No site')),
    el('td', {}, stateTags(a)),
    duty,
    online,
    actions);
}

function renderAccounts() {
  const key = focusedKey();
  if (accounts.length === 0) {
    accountsTable.replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'none-found', text: 'No account matches.' })));
  } else {
    accountsTable.replaceChildren(...accounts.map(accountRow));
  }
  const back = byKey(key);
  if (back) back.focus();
}

let accountsLoad = 0;

/** Reloads the table; `said` (what just changed) leads the status line. */
async function loadAccounts(said = null) {
  const q = $('#accounts-q').value.trim();
  const role = $('#accounts-role').value;
  const mine = ++accountsLoad;
  try {
    const answer = await api.accounts(q, role);
    if (mine !== accountsLoad) return; // a later search is on its way
    accounts = answer.accounts;
    renderAccounts();
    showPanelError('accounts-error', null);
    const what = role ? ROLES[role].many : 'accounts';
    const count = answer.count === 1 && role ? `1 ${ROLES[role].one.toLowerCase()}` : `${answer.count.toLocaleString('en-GB')} ${answer.count === 1 ? 'account' : what}`;
    const shown = q ? `${count} matching \u201c${q}\u201d.` : `${count}.`;
    setStatus('accounts-status', typeof said === 'string' ? `${said} ${shown}` : shown);
  } catch (e) {
    if (mine !== accountsLoad) return;
    showPanelError('accounts-error', `The accounts could not be loaded: ${e.message}`);
  }
}

let searchTimer = null;
$('#accounts-q').addEventListener('input', () => {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => loadAccounts(), SEARCH_DELAY_MS);
});
$('#accounts-role').addEventListener('change', () => loadAccounts());
$('#accounts-filter').addEventListener('submit', (e) => {
  e.preventDefault();
  window.clearTimeout(searchTimer);
  loadAccounts();
});

/** Runs one change to an account; the table is reloaded after it. */
async function change(key, work, done) {
  let said = null;
  try {
    const answer = await work();
    said = done(answer);
    showPanelError('accounts-error', null);
  } catch (e) {
    showPanelError('accounts-error', e.message);
  }
  // The status line (a live region) says what changed, then the count.
  await loadAccounts(said);
  const back = byKey(key);
  if (back && !confirmDialog.open && !otpDialog.open && !$('#edit-dialog').open) back.focus();
}

accountsTable.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const username = button.closest('tr').dataset.username;
  const a = accounts.find((x) => x.username === username);
  if (!a) return;
  const key = button.dataset.key;
  const person = who(a);
  switch (button.dataset.action) {
    case 'disable': {
      const yes = await confirmAction({
        title: `Disable ${a.display_name}?`,
        text: [
          `${person} will be signed out at once on every screen where they are signed in${a.online ? ' (they are on line now)' : ''}, and cannot sign in again until an admin enables the account.`,
          a.role === 'station' ? 'A request or call in progress on that station is interrupted.' : 'A call in progress on their screen is interrupted.',
        ],
        ok: 'Disable and sign out',
        danger: true,
      });
      if (!yes) return;
      await change(key, () => api.disable(username), (r) => `${who(r.account)} is disabled${r.sessions_closed ? ` and was signed out on ${plural(r.sessions_closed, 'screen')}` : ''}.`);
      break;
    }
    case 'enable':
      await change(key, () => api.enable(username), (r) => `${who(r.account)} is enabled: they can sign in again.`);
      break;
    case 'reset': {
      const yes = await confirmAction({
        title: `Reset the password of ${a.display_name}?`,
        text: [
          `MIU Link makes a new one-time password for ${person} and shows it to you once. The current password stops working, and they are signed out at once on every screen.`,
          a.role === 'station' || a.monitoring
            ? 'The new password must then be entered on the device.'
            : 'They sign in with the new one once, then choose their own.',
        ],
        ok: 'Reset password',
        danger: true,
      });
      if (!yes) return;
      await change(key, () => api.resetPassword(username), (r) => {
        showPassword(r.account, r.password, 'reset', { sessionsClosed: r.sessions_closed, returnTo: () => byKey(key) });
        return `The password of ${who(r.account)} was reset.`;
      });
      break;
    }
    case 'duty':
      await change(key, () => api.edit(username, { escalation_duty: !a.escalation_duty }),
        (r) => (r.account.escalation_duty
          ? `${who(r.account)} now holds the escalation duty.`
          : `${who(r.account)} no longer holds the escalation duty.`));
      break;
    case 'edit':
      openEdit(a, key);
      break;
    default:
  }
});

// ----- Editing an account (site, monitoring) --------------------------------

const editDialog = $('#edit-dialog');
let editing = null; // { account, key }

function setEditError(message) {
  const box = $('#edit-site-error');
  box.textContent = message || '';
  box.hidden = !message;
  $('#edit-site-field').classList.toggle('has-error', !!message);
  $('#edit-site').setAttribute('aria-invalid', message ? 'true' : 'false');
}

function editSiteProblem() {
  const site = $('#edit-site').value.trim();
  if (editing && editing.account.role === 'station' && !site) return 'A station needs a site, e.g. Millom.';
  if (site.length > MAX_SITE) return `A site is at most ${MAX_SITE} characters.`;
  return null;
}

function openEdit(a, key) {
  editing = { account: a, key };
  $('#edit-title').textContent = `Edit ${a.display_name}`;
  $('#edit-site').value = a.site || '';
  $('#edit-site-optional').hidden = a.role === 'station';
  $('#edit-site-hint').textContent = a.role === 'station'
    ? 'The MIU the station is in, e.g. Millom. A station needs one.'
    : 'Where they work, e.g. Furness General. Leave it empty for none.';
  const canMonitor = ['station', 'clinician'].includes(a.role);
  $('#edit-monitoring-option').hidden = !canMonitor;
  $('#edit-monitoring').checked = !!a.monitoring;
  setEditError(null);
  $('#edit-errors').hidden = true;
  editDialog.showModal();
  $('#edit-site').focus();
}

$('#edit-site').addEventListener('input', () => {
  if ($('#edit-site-field').classList.contains('has-error')) setEditError(editSiteProblem());
});
$('#edit-cancel').addEventListener('click', () => editDialog.close());
editDialog.addEventListener('close', () => {
  const back = editing ? byKey(editing.key) : null;
  editing = null;
  if (back) back.focus();
});

$('#edit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!editing) return;
  const problem = editSiteProblem();
  setEditError(problem);
  if (problem) {
    $('#edit-site').focus();
    return;
  }
  const { account: a, key } = editing;
  const site = $('#edit-site').value.trim();
  const body = {};
  if (site !== (a.site || '')) body.site = site || null;
  if (['station', 'clinician'].includes(a.role) && $('#edit-monitoring').checked !== !!a.monitoring) {
    body.monitoring = $('#edit-monitoring').checked;
  }
  if (Object.keys(body).length === 0) {
    editDialog.close();
    announce('Nothing was changed.');
    return;
  }
  const save = $('#edit-save');
  save.disabled = true;
  try {
    const answer = await api.edit(a.username, body);
    if (editDialog.open) editDialog.close();
    const said = `${who(answer.account)} saved: site ${answer.account.site || 'none'}${['station', 'clinician'].includes(a.role) ? `, monitoring ${answer.account.monitoring ? 'on' : 'off'}` : ''}.`;
    await loadAccounts(said);
    const back = byKey(key);
    if (back) back.focus();
  } catch (e) {
    const box = $('#edit-errors');
    $('p', box).textContent = sentence(e.message);
    box.hidden = false;
    box.focus();
  } finally {
    save.disabled = false;
  }
});

// ----- Adding an account ---------------------------------------------------

const addForm = $('#add-card');
const fields = {
  username: $('#new-username'),
  display: $('#new-display'),
  site: $('#new-site'),
};

function chosenRole() {
  const input = $('input[name=role]:checked', addForm);
  return input ? input.value : null;
}

/** What is wrong with each field: null, or [link target, words]. */
const CHECKS = {
  role() {
    return chosenRole() ? null : ['role-station', 'Choose the account\u2019s role.'];
  },
  username() {
    const v = fields.username.value.trim();
    if (!v) return ['new-username', 'Enter a username, e.g. millom-room3.'];
    const problem = usernameProblem(v);
    return problem ? ['new-username', problem] : null;
  },
  display() {
    const v = fields.display.value.trim();
    if (!v) return ['new-display', 'Enter a display name: what others see, e.g. \u201cMillom MIU Room 3\u201d.'];
    if (v.length > MAX_DISPLAY_NAME) return ['new-display', `A display name is at most ${MAX_DISPLAY_NAME} characters.`];
    return null;
  },
  site() {
    const v = fields.site.value.trim();
    if (chosenRole() === 'station' && !v) return ['new-site', 'A station needs a site: the MIU it is in, e.g. Millom.'];
    if (v.length > MAX_SITE) return ['new-site', `A site is at most ${MAX_SITE} characters.`];
    return null;
  },
};

function showFieldError(name, message) {
  const box = $(`#${name}-error`);
  box.textContent = message || '';
  box.hidden = !message;
  $(`#${name}-field`).classList.toggle('has-error', !!message);
  const input = fields[name];
  if (input) input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

/** The error summary: [link target, words, field name or null]. */
function showErrors(errors) {
  const summary = $('#add-errors');
  $('ul', summary).replaceChildren(...errors.map(([target, message, field]) =>
    el('li', { 'data-field': field || null }, el('a', { href: `#${target}`, text: message }))));
  summary.hidden = errors.length === 0;
  if (errors.length) summary.focus();
}

/** A field shown in error is checked again as soon as it changes. */
function recheck(name) {
  if (!$(`#${name}-field`).classList.contains('has-error')) return;
  const problem = CHECKS[name]();
  showFieldError(name, problem ? problem[1] : null);
  const summary = $('#add-errors');
  const item = $(`li[data-field="${name}"]`, summary);
  if (item) {
    if (problem) {
      const link = $('a', item);
      link.href = `#${problem[0]}`;
      link.textContent = problem[1];
    } else {
      item.remove();
    }
  }
  summary.hidden = $$('li', summary).length === 0;
}

// A link in the summary moves the focus to its field (not just the view).
$('#add-errors').addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="#"]');
  if (!link) return;
  const target = document.getElementById(link.getAttribute('href').slice(1));
  if (!target) return;
  event.preventDefault();
  target.focus();
  target.scrollIntoView({ block: 'center' });
});

/** The options that fit the chosen role, and whether a site is needed. */
function fitToRole() {
  const role = chosenRole();
  $('#duty-option').hidden = role !== 'clinician';
  $('#monitoring-option').hidden = !['station', 'clinician'].includes(role);
  $('#break-glass-option').hidden = role !== 'admin';
  $('#flags-field').hidden = !role || role === 'manager';
  $('#site-optional').hidden = role === 'station';
  $('#new-site-hint').textContent = role === 'station'
    ? 'The MIU the station is in, e.g. Millom. A station needs one.'
    : 'Where they work, e.g. Furness General. A station needs one.';
}

for (const input of $$('input[name=role]', addForm)) {
  input.addEventListener('change', () => {
    fitToRole();
    recheck('role');
    recheck('site');
  });
}
fields.username.addEventListener('input', () => recheck('username'));
fields.display.addEventListener('input', () => recheck('display'));
fields.site.addEventListener('input', () => recheck('site'));

function resetAddForm() {
  addForm.reset();
  for (const name of Object.keys(CHECKS)) showFieldError(name, null);
  showErrors([]);
  fitToRole();
}

function openAddForm(open) {
  addForm.hidden = !open;
  $('#add-toggle').setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) {
    $('#role-station').closest('fieldset').scrollIntoView({ block: 'nearest' });
    $('#add-title').setAttribute('tabindex', '-1');
    $('#add-title').focus();
  } else {
    resetAddForm();
  }
}

$('#add-toggle').addEventListener('click', () => openAddForm(addForm.hidden));
$('#add-cancel').addEventListener('click', () => {
  openAddForm(false);
  $('#add-toggle').focus();
});

/** Which field the server's refusal is about, from its words. */
function fieldOf(message) {
  const m = message.toLowerCase();
  if (m.includes('display name')) return 'display';
  if (m.includes('username') || m.includes('account named')) return 'username';
  if (m.includes('site')) return 'site';
  if (m.includes('role')) return 'role';
  return null;
}

addForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const errors = [];
  for (const [name, check] of Object.entries(CHECKS)) {
    const problem = check();
    showFieldError(name, problem ? problem[1] : null);
    if (problem) errors.push([problem[0], problem[1], name]);
  }
  showErrors(errors);
  if (errors.length) return;
  const role = chosenRole();
  const account = {
    username: fields.username.value.trim(),
    display_name: fields.display.value.trim(),
    role,
    site: fields.site.value.trim() || null,
    escalation_duty: role === 'clinician' && $('#new-duty').checked,
    monitoring: ['station', 'clinician'].includes(role) && $('#new-monitoring').checked,
    break_glass: role === 'admin' && $('#new-break-glass').checked,
  };
  const button = $('#add-submit');
  button.disabled = true;
  $('.label', button).textContent = 'Adding\u2026';
  try {
    const answer = await api.add(account);
    openAddForm(false);
    // The new account in the list, whatever the search was.
    $('#accounts-q').value = '';
    $('#accounts-role').value = '';
    await loadAccounts(`${who(answer.account)} was added.`);
    if (answer.password) {
      showPassword(answer.account, answer.password, 'added', { returnTo: () => $('#add-toggle') });
    } else {
      $('#add-toggle').focus();
    }
  } catch (e) {
    const field = fieldOf(e.message);
    const target = field ? CHECKS[field] && (field === 'role' ? 'role-station' : fields[field].id) : 'add-submit';
    if (field) showFieldError(field, sentence(e.message));
    showErrors([[target, sentence(e.message), field]]);
  } finally {
    button.disabled = false;
    $('.label', button).textContent = 'Add account';
  }
});

// ----- On line now ---------------------------------------------------------

const onlineTable = $('#online-table tbody');
let online = [];
let onlineTimer = null;

function onlineRow(s, now) {
  const role = ROLES[s.role] ? ROLES[s.role].one : s.role;
  const doing = activityWords(s.activity, s.role);
  const key = `end:${s.session_id}`;
  return el('tr', { 'data-session': s.session_id, 'data-username': s.username },
    el('td', { class: 'name' }, el('strong', { text: s.display_name }), el('br'), el('code', { text: s.username })),
    el('td', { text: role }),
    el('td', {}, s.availability ? el('span', { class: `availability availability-${s.availability}` }, AVAILABILITY[s.availability] || s.availability) : none('Not applicable')),
    el('td', {}, doing || none('Not applicable')),
    el('td', { class: 'since' }, el('time', { datetime: new Date(s.since).toISOString(), text: clockTime(s.since) }),
      el('span', { class: 'ago', text: ` (${ago(s.since, now)})` })),
    el('td', { class: 'row-actions' }, me && s.user_id === me.id
      ? el('span', { class: 'hint', text: 'Your own session' })
      : actionButton('End session', `of ${s.display_name} (${s.username})`, {
        class: 'btn btn-small btn-danger-outline', 'data-action': 'end', 'data-key': key,
      })));
}

function renderOnline() {
  const key = focusedKey();
  const now = Date.now();
  if (online.length === 0) {
    onlineTable.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'none-found', text: 'Nobody is signed in.' })));
  } else {
    onlineTable.replaceChildren(...online.map((s) => onlineRow(s, now)));
  }
  const back = byKey(key);
  if (back) back.focus();
}

/**
 * Reloads who is on line; `lead` (what just happened) leads the status
 * line, and a refresh asked for says the result even when it is the same.
 */
async function loadOnline({ lead = null, asked = false } = {}) {
  try {
    const answer = await api.online();
    online = answer.online.slice().sort((a, b) => a.since - b.since);
    renderOnline();
    showPanelError('online-error', null);
    const text = answer.count === 0 ? 'Nobody is signed in.' : `${plural(answer.count, 'open session')}.`;
    const changed = setStatus('online-status', lead ? `${lead} ${text}` : text);
    $('#online-updated').textContent = `Updated at ${new Date().toLocaleTimeString('en-GB')}; refreshes every ${ONLINE_REFRESH_MS / 1000} seconds.`;
    if (asked && !changed) announce(`Refreshed: ${text}`);
  } catch (e) {
    showPanelError('online-error', `Who is on line could not be loaded: ${e.message}`);
  }
}

function startOnlineRefresh() {
  stopOnlineRefresh();
  onlineTimer = window.setInterval(() => {
    if (document.visibilityState === 'visible' && !confirmDialog.open) loadOnline();
  }, ONLINE_REFRESH_MS);
}

function stopOnlineRefresh() {
  window.clearInterval(onlineTimer);
  onlineTimer = null;
}

$('#online-refresh').addEventListener('click', () => loadOnline({ asked: true }));

onlineTable.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action=end]');
  if (!button) return;
  const id = button.closest('tr').dataset.session;
  const s = online.find((x) => x.session_id === id);
  if (!s) return;
  const doing = activityWords(s.activity, s.role);
  const yes = await confirmAction({
    title: `End the session of ${s.display_name}?`,
    text: [
      `${s.display_name} (${s.username}) is signed out of that session at once: their screen goes to the sign-in page.${doing && s.activity !== 'idle' ? ` They are ${doing.charAt(0).toLowerCase()}${doing.slice(1)} now, which is interrupted.` : ''}`,
      'They can sign in again. To stop that, disable the account on the Accounts tab.',
    ],
    ok: 'End session',
    danger: true,
  });
  if (!yes) return;
  let lead = null;
  try {
    const answer = await api.endSession(id);
    lead = `The session of ${answer.username} was ended.`;
    showPanelError('online-error', null);
  } catch (e) {
    showPanelError('online-error', e.message);
  }
  await loadOnline({ lead });
  const focus = $('#online-refresh');
  if (!byKey(focusedKey())) focus.focus();
});

// ----- Audit trail ---------------------------------------------------------

const auditTable = $('#audit-table tbody');
const audit = { filters: {}, offset: 0, total: 0, count: 0 };

{
  const select = $('#audit-action');
  for (const [group, actions] of ACTION_GROUPS) {
    select.append(el('optgroup', { label: group },
      Object.entries(actions).map(([value, words]) => el('option', { value, text: words }))));
  }
}

/** A local (UK) day as an RFC 3339 time: its start, or the next day's. */
function localDay(date, nextDay = false) {
  const [y, m, d] = date.split('-').map(Number);
  const t = new Date(y, m - 1, d + (nextDay ? 1 : 0));
  const offset = -t.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0');
  const mm = String(Math.abs(offset) % 60).padStart(2, '0');
  const day = `${t.getFullYear()}-${String(t.getMonth() + 1).padStart(2, '0')}-${String(t.getDate()).padStart(2, '0')}`;
  return `${day}T00:00:00${sign}${hh}:${mm}`;
}

function readAuditFilters() {
  const value = (id) => $(`#${id}`).value.trim();
  return {
    from: value('audit-from'),
    to: value('audit-to'),
    actor: value('audit-actor'),
    action: value('audit-action'),
    target: value('audit-target'),
  };
}

/** The query for these filters (without paging). */
function auditQuery(f) {
  const q = new URLSearchParams();
  if (f.from) q.set('from', localDay(f.from));
  if (f.to) q.set('to', localDay(f.to, true));
  for (const name of ['actor', 'action', 'target']) if (f[name]) q.set(name, f[name]);
  return q;
}

/** `{"role": "station", "site": "Millom"}` -> "role: station; site: Millom". */
function detailWords(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object') return String(detail);
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => {
      let words;
      if (v === true) words = 'yes';
      else if (v === false) words = 'no';
      else if (typeof v === 'object') words = JSON.stringify(v);
      else words = String(v);
      return `${k.replace(/_/g, ' ')}: ${words}`;
    })
    .join('; ');
}

function auditRow(entry) {
  const words = ACTIONS[entry.action];
  const detail = detailWords(entry.detail);
  return el('tr', {},
    el('td', { class: 'when' }, el('time', { datetime: new Date(entry.at).toISOString(), text: dateTime(entry.at) })),
    el('td', {}, entry.actor),
    el('td', {}, el('span', { class: 'action-words', text: words || entry.action }),
      words ? el('code', { class: 'action-code', text: entry.action }) : null),
    el('td', {}, entry.target || none('Nothing')),
    el('td', { class: 'detail' }, detail || none('None')),
    el('td', {}, entry.client || none('Not over the network')));
}

async function loadAudit({ said = false } = {}) {
  const query = auditQuery(audit.filters);
  $('#audit-csv').href = `/api/audit.csv${query.toString() ? `?${query}` : ''}`;
  query.set('limit', String(AUDIT_PAGE));
  query.set('offset', String(audit.offset));
  $('#panel-audit').setAttribute('aria-busy', 'true');
  try {
    const answer = await api.audit(query);
    audit.total = answer.total;
    audit.count = answer.count;
    if (answer.entries.length === 0) {
      auditTable.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'none-found', text: 'No entry matches these filters.' })));
    } else {
      auditTable.replaceChildren(...answer.entries.map(auditRow));
    }
    showPanelError('audit-error', null);
    const first = answer.count ? audit.offset + 1 : 0;
    const last = audit.offset + answer.count;
    const where = answer.total === 0
      ? 'No entries.'
      : `Entries ${first.toLocaleString('en-GB')} to ${last.toLocaleString('en-GB')} of ${answer.total.toLocaleString('en-GB')}, newest first.`;
    $('#audit-page').textContent = where;
    const changed = setStatus('audit-status', answer.total === 0 ? 'No entry matches these filters.' : `${plural(answer.total, 'entry', 'entries')} ${Object.values(audit.filters).some(Boolean) ? `${answer.total === 1 ? 'matches' : 'match'} these filters` : 'in the audit trail'}.`);
    if (said && !changed) announce(where);
  } catch (e) {
    showPanelError('audit-error', e.status === 400 ? `Those filters cannot be used: ${e.message}` : `The audit trail could not be loaded: ${e.message}`);
  } finally {
    $('#panel-audit').setAttribute('aria-busy', 'false');
    $('#audit-prev').disabled = audit.offset === 0;
    $('#audit-next').disabled = audit.offset + audit.count >= audit.total;
  }
}

$('#audit-filter').addEventListener('submit', (event) => {
  event.preventDefault();
  const f = readAuditFilters();
  if (f.from && f.to && f.from > f.to) {
    showPanelError('audit-error', '\u201cFrom\u201d is after \u201cTo\u201d: choose a From date on or before the To date.');
    $('#audit-from').focus();
    return;
  }
  audit.filters = f;
  audit.offset = 0;
  loadAudit({ said: true });
});

$('#audit-clear').addEventListener('click', () => {
  $('#audit-filter').reset();
  audit.filters = {};
  audit.offset = 0;
  loadAudit({ said: true });
});

async function page(delta, button) {
  audit.offset = Math.max(0, audit.offset + delta * AUDIT_PAGE);
  await loadAudit({ said: true });
  // The button pressed may now be off (first or last page).
  if (button.disabled) $('#audit-page').closest('nav').querySelector('button:not(:disabled)')?.focus();
}
$('#audit-prev').addEventListener('click', (e) => page(-1, e.currentTarget));
$('#audit-next').addEventListener('click', (e) => page(1, e.currentTarget));

// ----- Tabs ----------------------------------------------------------------

const TABS = $$('[role=tab]');
const LOADERS = { accounts: loadAccounts, online: loadOnline, audit: loadAudit };

function selectTab(name, { focus = false } = {}) {
  for (const tab of TABS) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', selected ? 'true' : 'false');
    tab.tabIndex = selected ? 0 : -1;
    $(`#${tab.getAttribute('aria-controls')}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  document.body.dataset.tab = name;
  window.history.replaceState(null, '', `#${name}`);
  if (name === 'online') startOnlineRefresh();
  else stopOnlineRefresh();
  return LOADERS[name]();
}

for (const tab of TABS) tab.addEventListener('click', () => selectTab(tab.dataset.tab));
$('.tabs').addEventListener('keydown', (event) => {
  const i = TABS.indexOf(document.activeElement);
  if (i < 0) return;
  let next = null;
  if (event.key === 'ArrowRight') next = (i + 1) % TABS.length;
  else if (event.key === 'ArrowLeft') next = (i - 1 + TABS.length) % TABS.length;
  else if (event.key === 'Home') next = 0;
  else if (event.key === 'End') next = TABS.length - 1;
  if (next === null) return;
  event.preventDefault();
  selectTab(TABS[next].dataset.tab, { focus: true });
});

// ----- Start ---------------------------------------------------------------

function pageError(message) {
  $('#loading').hidden = true;
  $('#page-error-text').textContent = sentence(message);
  $('#page-error').hidden = false;
  $('#page-error').focus();
}

$('#sign-out').addEventListener('click', () => signOut());

async function start() {
  try {
    me = await requireRole('admin');
  } catch (e) {
    pageError(`The admin console could not start: ${e.message} Reload the page to try again.`);
    $('main').setAttribute('aria-busy', 'false');
    return;
  }
  $('#account-name').textContent = me.site && !me.display_name.includes(me.site)
    ? `${me.display_name}, ${me.site}`
    : me.display_name;
  fitToRole();
  const wanted = window.location.hash.slice(1);
  $('#loading').hidden = true;
  $('#console').hidden = false;
  await selectTab(LOADERS[wanted] ? wanted : 'accounts');
  $('main').setAttribute('aria-busy', 'false');
  document.body.dataset.screen = 'console';
}

start();
