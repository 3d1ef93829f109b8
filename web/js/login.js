// The login page: signs in, then sends each role to its own screen.

import { $, announce } from './ui.js';
import { login, me, HOME } from './api.js';

const params = new URLSearchParams(window.location.search);

/** Only our own screens, so that ?next= cannot send anyone elsewhere. */
function destination(role) {
  const home = HOME[role] || '/';
  const next = params.get('next');
  return next && next === home ? next : home;
}

function showError(text) {
  const box = $('#login-error');
  $('#login-error-text').textContent = text;
  box.hidden = !text;
  if (text) box.focus();
}

if (params.get('expired')) {
  const notice = $('#login-notice');
  notice.textContent = 'Your session ended. Sign in again to carry on.';
  notice.hidden = false;
}

// Already signed in (e.g. the station's tablet was restarted): go straight on.
me().then((account) => window.location.replace(destination(account.role))).catch(() => {
  $('#username').focus();
});

$('#show-password').addEventListener('click', (e) => {
  const input = $('#password');
  const show = input.type === 'password';
  input.type = show ? 'text' : 'password';
  e.currentTarget.textContent = show ? 'Hide' : 'Show';
  e.currentTarget.setAttribute('aria-pressed', String(show));
});

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const username = $('#username').value.trim();
  const password = $('#password').value;
  if (!username || !password) {
    showError('Enter both your username and your password.');
    return;
  }
  const button = $('#login-button');
  button.disabled = true;
  $('.label', button).textContent = 'Signing in\u2026';
  try {
    const account = await login(username, password);
    announce('Signed in.');
    window.location.assign(destination(account.role));
  } catch (err) {
    showError(err.status === 401 ? 'The username or password is wrong. Check them and try again.' : err.message);
    button.disabled = false;
    $('.label', button).textContent = 'Sign in';
    $('#password').select();
  }
});
