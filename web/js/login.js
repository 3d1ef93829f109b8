// The login page: signs in, then sends each role to its own screen. An
// account that owes a password change (the first sign-in with a generated
// password) chooses a new one here before anything else.

import { $, el, icon, announce } from './ui.js';
import { login, logout, me, changePassword, usernameProblem, authOptions, HOME } from './api.js';
import { SIGNED_OUT_KEY } from './socket.js';

const params = new URLSearchParams(window.location.search);
const BUSY_WAIT_MAX_S = 30;

/** Only our own screens, so that ?next= cannot send anyone elsewhere. */
function destination(role) {
  const home = HOME[role] || '/';
  const next = params.get('next');
  return next && next === home ? next : home;
}

/** The server's words as a sentence: "too many ..." -> "Too many ....". */
function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return '';
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** "14:05:30": when a wait of `seconds` from now ends. */
function timeIn(seconds) {
  return new Date(Date.now() + seconds * 1000)
    .toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

/**
 * Runs `action`; if the server is busy checking other passwords (503), waits
 * as long as it asks (`Retry-After`) and tries once more. A second refusal
 * is thrown like any other.
 */
async function onceMoreIfBusy(action, onWait) {
  try {
    return await action();
  } catch (err) {
    if (err.code !== 'busy' && err.status !== 503) throw err;
    const seconds = Math.min(BUSY_WAIT_MAX_S, Math.max(1, err.retryAfter ?? 1));
    onWait(seconds);
    await sleep(seconds * 1000);
    return action();
  }
}

/** A callout: an icon, a title in bold and a line of text. */
function showNotice(box, { title, text, iconName = 'info' }) {
  box.replaceChildren(icon(iconName),
    el('div', {}, el('p', { class: 'callout-title', text: title }), text ? el('p', { text }) : null));
  box.hidden = false;
}

function hideNotice(box) {
  box.hidden = true;
  box.replaceChildren();
}

/** Shows (or clears) the message under one field. */
function setFieldError(name, message) {
  const box = $(`#${name}-error`);
  box.textContent = message || '';
  box.hidden = !message;
  $(`#${name}-field`).classList.toggle('has-error', !!message);
  $(`#${name}`).setAttribute('aria-invalid', message ? 'true' : 'false');
}

function setLabel(button, text) {
  $('.label', button).textContent = text;
}

// ----- Signing in ----------------------------------------------------------

function showError(text) {
  const box = $('#login-error');
  $('#login-error-text').textContent = text;
  box.hidden = !text;
  if (text) box.focus();
}

/** What to tell the user when the server refused to sign them in. */
function loginErrorText(err) {
  if (err.code === 'bad_credentials' || err.status === 401) {
    return 'The username or password is wrong. Check them and try again.';
  }
  if (err.code === 'too_many_attempts' || err.status === 429) {
    const when = err.retryAfter !== null && err.retryAfter !== undefined
      ? ` You can try again at ${timeIn(Math.max(1, err.retryAfter))}.`
      : ' Wait a minute, then try again.';
    return `${sentence(err.message)}${when}`;
  }
  if (err.code === 'busy' || err.status === 503) {
    return `${sentence(err.message)} It is still busy after a second try: wait a moment, then sign in again.`;
  }
  return sentence(err.message);
}

/**
 * The session ended (signed out elsewhere, expired, the account disabled or
 * its password changed): say so. The server's own words come through this
 * tab's session storage, never the address, so that a link cannot make
 * this page say something else.
 */
function showSignedOut() {
  let said = null;
  try {
    said = window.sessionStorage.getItem(SIGNED_OUT_KEY);
    window.sessionStorage.removeItem(SIGNED_OUT_KEY);
  } catch {
    said = null;
  }
  // The server's words usually begin "You have been signed out: why".
  const why = said ? sentence(said.replace(/^\s*you have been signed out\s*[.:;,]?\s*/i, '')) : '';
  const text = why || 'Sign in again to carry on.';
  showNotice($('#login-notice'), { title: 'You have been signed out', text, iconName: 'logout' });
  announce(`You have been signed out. ${text}`);
}

if (params.get('signed_out') || params.get('expired')) showSignedOut();

// With the trust's identity provider, staff sign in there; the password
// form stays for station devices (and a break-glass admin).
authOptions().then((options) => {
  if (!options || !options.sso) return;
  $('#sso-button .label').textContent = options.sso.label;
  $('#sso-button').href = options.sso.url;
  if (options.local_login === 'off') {
    $('#sso-or').textContent = 'The username and password form below is for IT\u2019s break-glass account only.';
  }
  $('#sso').hidden = false;
  $('#username-hint').textContent = 'A station\u2019s account, e.g. millom-room1.';
}).catch(() => {});

// Already signed in (e.g. the station's tablet was restarted): go straight
// on, unless the account must first choose a new password.
me().then((account) => window.location.replace(destination(account.role))).catch((err) => {
  if (err.code === 'password_change_required') {
    showPasswordForm({});
    return;
  }
  if (params.get('change_password') && !params.get('signed_out')) {
    showNotice($('#login-notice'), {
      title: 'Sign in to choose a new password',
      text: 'Sign in with your current password first.',
    });
  }
  $('#username').focus();
});

$('#show-password').addEventListener('click', (e) => {
  const input = $('#password');
  const show = input.type === 'password';
  input.type = show ? 'text' : 'password';
  e.currentTarget.textContent = show ? 'Hide' : 'Show';
  e.currentTarget.setAttribute('aria-pressed', String(show));
});

$('#username').addEventListener('input', () => {
  if (!$('#username-error').hidden) setFieldError('username', usernameProblem($('#username').value.trim()));
});

let signingIn = false;

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (signingIn) return;
  const username = $('#username').value.trim();
  const password = $('#password').value;
  setFieldError('username', null);
  if (!username || !password) {
    showError('Enter both your username and your password.');
    return;
  }
  // What the server would refuse is refused here, before it is sent.
  const problem = usernameProblem(username);
  if (problem) {
    setFieldError('username', problem);
    showError(problem);
    return;
  }
  const button = $('#login-button');
  signingIn = true;
  button.disabled = true;
  setLabel(button, 'Signing in\u2026');
  showError('');
  try {
    const account = await onceMoreIfBusy(() => login(username, password), (seconds) => {
      setLabel(button, 'Busy, trying again\u2026');
      announce(`The server is busy. Trying again in ${seconds} second${seconds === 1 ? '' : 's'}.`);
    });
    if (account.must_change_password) {
      signingIn = false;
      button.disabled = false;
      setLabel(button, 'Sign in');
      showPasswordForm({ username: account.username || username, current: password, role: account.role });
      return;
    }
    announce('Signed in.');
    window.location.assign(destination(account.role));
  } catch (err) {
    signingIn = false;
    showError(loginErrorText(err));
    button.disabled = false;
    setLabel(button, 'Sign in');
    if (err.code === 'bad_request') $('#username').select();
    else $('#password').select();
  }
});

// ----- Choosing a new password --------------------------------------------

const MIN_PASSWORD_CHARS = 12;
/** The role to go on to once the password is changed, if known. */
let owedRole = null;

/** What the server's password rule would refuse that can be seen here. */
function newPasswordProblem(password) {
  const chars = Array.from(password);
  if (chars.length < MIN_PASSWORD_CHARS) {
    return `Use at least ${MIN_PASSWORD_CHARS} characters: three or four unrelated words work well.`;
  }
  for (let unit = 1; unit <= 4; unit += 1) {
    if (chars.length % unit !== 0) continue;
    const piece = chars.slice(0, unit).join('');
    if (piece.repeat(chars.length / unit) === password) {
      return 'A password cannot be one character, or a few characters, repeated. Three or four unrelated words work well.';
    }
  }
  return null;
}

function showPasswordErrors(errors) {
  const summary = $('#password-errors');
  $('ul', summary).replaceChildren(...errors.map(([target, message]) =>
    el('li', {}, el('a', { href: `#${target}`, text: message }))));
  summary.hidden = errors.length === 0;
  if (errors.length) summary.focus();
}

function showPasswordForm({ username = '', current = '', role = null }) {
  owedRole = role;
  $('#login-form').hidden = true;
  $('#password-form').hidden = false;
  $('#login-panel').setAttribute('aria-labelledby', 'password-title');
  document.title = 'Choose a new password: MIU Link';
  $('#password-username').value = username;
  $('#current-password').value = current;
  for (const name of ['current-password', 'new-password', 'confirm-password']) setFieldError(name, null);
  showPasswordErrors([]);
  hideNotice($('#password-notice'));
  // What was just typed to sign in is the current password: start at the new one.
  (current ? $('#new-password') : $('#current-password')).focus();
  announce('This account must choose a new password before it carries on.');
}

/** Back to the sign-in form (the session ended while the password form was up). */
function backToSignIn(notice) {
  $('#password-form').hidden = true;
  $('#login-form').hidden = false;
  $('#login-panel').setAttribute('aria-labelledby', 'sign-in-title');
  document.title = 'Sign in: MIU Link';
  $('#password').value = '';
  showNotice($('#login-notice'), notice);
  announce(`${notice.title}. ${notice.text}`);
  $('#username').focus();
}

$('#show-new-passwords').addEventListener('click', (e) => {
  const inputs = ['#current-password', '#new-password', '#confirm-password'].map((s) => $(s));
  const show = inputs[0].type === 'password';
  for (const input of inputs) input.type = show ? 'text' : 'password';
  e.currentTarget.textContent = show ? 'Hide passwords' : 'Show passwords';
  e.currentTarget.setAttribute('aria-pressed', String(show));
});

let changing = false;

$('#password-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (changing) return;
  const current = $('#current-password').value;
  const next = $('#new-password').value;
  const confirm = $('#confirm-password').value;
  const currentError = current ? null : 'Enter your current password.';
  let nextError = newPasswordProblem(next);
  if (!nextError && next === current) nextError = 'The new password must be different from the current one.';
  const confirmError = !nextError && confirm !== next ? 'The two new passwords are not the same. Type the new password again.' : null;
  setFieldError('current-password', currentError);
  setFieldError('new-password', nextError);
  setFieldError('confirm-password', confirmError);
  const errors = [
    ['current-password', currentError],
    ['new-password', nextError],
    ['confirm-password', confirmError],
  ].filter(([, message]) => message);
  showPasswordErrors(errors);
  if (errors.length) return;

  const button = $('#password-button');
  changing = true;
  button.disabled = true;
  setLabel(button, 'Saving\u2026');
  try {
    await onceMoreIfBusy(() => changePassword(current, next), (seconds) => {
      setLabel(button, 'Busy, trying again\u2026');
      announce(`The server is busy. Trying again in ${seconds} second${seconds === 1 ? '' : 's'}.`);
    });
  } catch (err) {
    changing = false;
    button.disabled = false;
    setLabel(button, 'Save new password');
    if (err.code === 'weak_password') {
      const message = sentence(err.message);
      setFieldError('new-password', message);
      showPasswordErrors([['new-password', `New password: ${message}`]]);
    } else if (err.code === 'bad_credentials') {
      const message = 'The current password is wrong. Check it and try again.';
      setFieldError('current-password', message);
      showPasswordErrors([['current-password', message]]);
    } else if (err.status === 401) {
      backToSignIn({
        title: 'You have been signed out',
        text: 'Sign in again, then choose a new password.',
        iconName: 'logout',
      });
    } else {
      const message = err.code === 'busy' || err.status === 503
        ? `${sentence(err.message)} It is still busy after a second try: wait a moment, then save again.`
        : sentence(err.message);
      showPasswordErrors([['password-button', message]]);
    }
    return;
  }
  setLabel(button, 'Password changed. Opening MIU Link\u2026');
  showNotice($('#password-notice'), { title: 'Password changed', text: 'Opening MIU Link\u2026', iconName: 'check' });
  announce('Password changed.');
  let role = owedRole;
  try {
    role = (await me()).role;
  } catch {
    // Go on with what the sign-in said.
  }
  window.location.assign(role ? destination(role) : '/');
});

$('#password-sign-out').addEventListener('click', async () => {
  try {
    await logout();
  } catch {
    // Signed out or not, start again from the sign-in form.
  }
  window.location.replace('/');
});
