// The HTTP API: login, logout, password change, who am I. The session
// lives in an HttpOnly cookie, so scripts never see the token.

export const HOME = {
  station: '/station',
  clinician: '/clinician',
  manager: '/reports',
  admin: '/admin',
};

/** Where an account that still owes a password change is sent. */
export const CHANGE_PASSWORD_PAGE = '/?change_password=1';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    /** Seconds the server asked us to wait (`Retry-After`), or null. */
    this.retryAfter = retryAfter;
  }
}

/** `Retry-After` in seconds (a number or an HTTP date), or null. */
export function retryAfterSeconds(response) {
  const value = response.headers.get('retry-after');
  if (!value) return null;
  if (/^\s*\d+\s*$/.test(value)) return Math.max(0, Number.parseInt(value, 10));
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** True on the login page, which shows the password form itself. */
function onLoginPage() {
  return window.location.pathname === '/' || window.location.pathname === '/index.html';
}

/**
 * The account must choose a new password before anything else: every page
 * but the login page (which shows the form) goes there at once.
 */
export function toPasswordChange() {
  window.location.replace(CHANGE_PASSWORD_PAGE);
}

/** One request to the server's API; refusals become an `ApiError` with the server's words. */
export async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'The MIU Link server cannot be reached. Check the network cable or Wi-Fi, then try again.');
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.message ? data.message : `The server answered ${response.status}.`;
    const code = data && data.error ? data.error : 'http';
    if (response.status === 403 && code === 'password_change_required' && !onLoginPage()) {
      toPasswordChange();
      // The page is going away: nothing after this should run.
      return new Promise(() => {});
    }
    throw new ApiError(response.status, code, message, retryAfterSeconds(response));
  }
  return data;
}

export const login = (username, password) => call('POST', '/api/login', { username, password });
export const logout = () => call('POST', '/api/logout');
export const me = () => call('GET', '/api/me');
export const changePassword = (currentPassword, newPassword) =>
  call('POST', '/api/password', { current_password: currentPassword, new_password: newPassword });

/** The longest username the server accepts, and the characters it may use. */
export const MAX_USERNAME_CHARS = 64;
const USERNAME_CHARS = /^[A-Za-z0-9\-_.@]+$/;

/** Why the server would refuse this username (as `auth::check_username`), or null. */
export function usernameProblem(username) {
  if (username.length > MAX_USERNAME_CHARS) {
    return `A username is at most ${MAX_USERNAME_CHARS} characters. Check what you typed.`;
  }
  if (!USERNAME_CHARS.test(username)) {
    return 'A username uses only letters, digits and - _ . @ (e.g. millom-room1). Check what you typed.';
  }
  return null;
}

/**
 * The signed-in account, or a redirect: to the login page when signed out,
 * to the right screen when this page is for another role.
 */
export async function requireRole(role) {
  let account;
  try {
    account = await me();
  } catch (e) {
    if (e.status === 401) {
      window.location.replace(`/?next=${encodeURIComponent(window.location.pathname)}`);
      return new Promise(() => {});
    }
    throw e;
  }
  if (account.role !== role) {
    window.location.replace(HOME[account.role] || '/');
    return new Promise(() => {});
  }
  return account;
}

/**
 * Signs out; after a sign-in through the identity provider, on to the
 * provider to end that session too (it sends the browser back here).
 */
export async function signOut() {
  let next = '/';
  try {
    const answer = await logout();
    if (answer && typeof answer.redirect === 'string' && /^https?:\/\//.test(answer.redirect)) {
      next = answer.redirect;
    }
  } finally {
    window.location.assign(next);
  }
}

export const authOptions = () => call('GET', '/api/auth/options');
