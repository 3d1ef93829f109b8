// The HTTP API: login, logout, who am I. The session lives in an HttpOnly
// cookie, so scripts never see the token.

export const HOME = {
  station: '/station',
  clinician: '/clinician',
  manager: '/reports',
  admin: '/reports',
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, body) {
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
    throw new ApiError(response.status, data && data.error ? data.error : 'http', message);
  }
  return data;
}

export const login = (username, password) => call('POST', '/api/login', { username, password });
export const logout = () => call('POST', '/api/logout');
export const me = () => call('GET', '/api/me');

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

export async function signOut() {
  try {
    await logout();
  } finally {
    window.location.assign('/');
  }
}
