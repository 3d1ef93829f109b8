// What every signed-in screen shares: the header (account, connection,
// sign out), the "open on another screen" dialog, and the test hook.

import { $, announce } from './ui.js';
import { signOut } from './api.js';
import { Signalling, bindConnectionPill } from './socket.js';

/**
 * Starts the signalling connection for a signed-in page and wires the
 * header. Returns the socket (not yet started: register handlers first).
 */
export function startShell(account) {
  $('#account-name').textContent = account.site && !account.display_name.includes(account.site)
    ? `${account.display_name}, ${account.site}`
    : account.display_name;
  const socket = new Signalling();
  $('#sign-out').addEventListener('click', () => {
    // Our own sign-out: not "signed out elsewhere" when the socket closes.
    socket.stop();
    signOut();
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
