// What every signed-in screen shares: the header (account, connection,
// sign out), the "open on another screen" dialog, and the test hook.

import { $, el, icon, announce, confirmButton } from './ui.js';
import { signOut } from './api.js';
import { Signalling, bindConnectionPill } from './socket.js';

/** How long a first press of "Sign out" waits for the second. */
const SIGN_OUT_CONFIRM_MS = 5000;

/**
 * Starts the signalling connection for a signed-in page and wires the
 * header. Returns the socket (not yet started: register handlers first).
 * `signOutWarning()` says what signing out now would lose (a waiting
 * request, a live call), or null: then "Sign out" asks to be pressed again.
 */
export function startShell(account, { signOutWarning = null } = {}) {
  $('#account-name').textContent = account.site && !account.display_name.includes(account.site)
    ? `${account.display_name}, ${account.site}`
    : account.display_name;
  const socket = new Signalling();
  const button = $('#sign-out');
  const words = button.querySelector('span');
  if (words) words.classList.add('label');
  // The warning is shown at the top of the page, in words: on a phone the
  // button is only an icon.
  const warningText = el('p', { id: 'sign-out-warning-text' });
  const warning = el('div', { class: 'signout-warning', id: 'sign-out-warning', hidden: true },
    icon('alert'), warningText);
  $('main').prepend(warning);
  let losing = null;
  confirmButton(button, {
    armedLabel: 'Press again to sign out',
    timeoutMs: SIGN_OUT_CONFIRM_MS,
    needed: () => {
      losing = signOutWarning ? signOutWarning() : null;
      return !!losing;
    },
    spoken: () => `Signing out: ${losing} Press Sign out again to sign out.`,
    onArm: () => {
      warningText.replaceChildren(el('strong', { text: `Signing out: ${losing}` }),
        ` Press \u201cSign out\u201d again within ${SIGN_OUT_CONFIRM_MS / 1000} seconds to sign out; otherwise nothing changes.`);
      warning.hidden = false;
      button.setAttribute('aria-describedby', 'sign-out-warning-text');
    },
    onDisarm: () => {
      warning.hidden = true;
      button.removeAttribute('aria-describedby');
    },
    action: () => {
      // Our own sign-out: not "signed out elsewhere" when the socket
      // closes. The server closes it (the socket is open until then, so a
      // waiting request is withdrawn rather than held for a reconnect).
      socket.leave();
      signOut();
    },
  });
  bindConnectionPill(socket, $('#connection'));

  const overlay = $('#replaced');
  socket.on('state', (state) => {
    if (state === 'replaced') {
      overlay.hidden = false;
      $('#take-back').focus();
    } else if (state === 'open') {
      overlay.hidden = true;
    }
    if (state === 'waiting') announce('Lost contact with the MIU Link server. Reconnecting.', { assertive: true });
  });
  socket.on('welcome', () => announce('Connected to MIU Link.'));
  $('#take-back').addEventListener('click', () => {
    overlay.hidden = true;
    socket.reconnectNow();
  });

  // For tests and support: the live call's peer connection and timings.
  window.miulink = { socket, marks: {}, account };
  return socket;
}
