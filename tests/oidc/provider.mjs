// A real OpenID Connect provider for the tests (panva's oidc-provider,
// pinned in package-lock.json): an NHS CIS2-shaped identity provider on
// loopback, started by tests/common/oidc.rs.
//
//   PORT=5556 OIDC_CLIENTS='[...]' OIDC_ACCOUNTS='{...}' node tests/oidc/provider.mjs
//
// Environment (JSON where it says so):
//   PORT           the loopback port; 0 or unset: any free port. The issuer
//                  is http://127.0.0.1:PORT (plain HTTP, which oidc-provider
//                  allows as it is: it only insists on https for a few
//                  client URLs, none of which the tests use).
//   OIDC_CLIENTS   JSON array of oidc-provider client metadata, passed
//                  through as it is (jwks or jwks_uri, http allowed).
//   OIDC_ACCOUNTS  JSON object: account id (the login name typed on the
//                  login page, and `sub`) -> its claims.
//   OIDC_SCOPES    optional JSON object: scope -> [claim names], added to
//                  (or replacing) the scopes below.
//   OIDC_LOGOUT_CONFIRM  "auto": the logout page confirms itself (a script
//                  presses "Yes, sign me out"); otherwise it waits for the
//                  user (#logout-confirm).
//   OIDC_DEBUG     "1": one line on stderr for every request.
//
// It prints `ready <issuer>` on stdout once listening, and exits when its
// stdin closes (so a test that dies never leaves it behind), or on SIGTERM
// or SIGINT. Errors the provider reports (a refused client assertion, a
// replayed code...) go to stderr, one line each.
//
// Scopes and the claims they give (conformIdTokenClaims is off, so the ID
// token carries them as well as the userinfo endpoint):
//   openid -> sub; profile -> name and the other standard profile claims;
//   email -> email, email_verified; nhsperson -> nhsid_useruid;
//   nationalrbacaccess -> nhsid_nrbac_roles; selectedrole ->
//   selected_roleid; associatedorgs -> nhsid_user_orgs; miulink ->
//   miulink_role. An account claim that no scope names can still be asked
//   for with the `claims` request parameter.
//
// The sign-in pages are this file's own (not oidc-provider's
// devInteractions), with stable ids for browser tests:
//   login page:  form#login-form (POST, action /interaction/<uid>/login),
//                input#login[name=login], input#password[name=password]
//                (any non-empty password), input#acr[name=acr] (prefilled
//                with the first supported acr_values entry; what is
//                submitted becomes the ID token's acr), button#login-submit;
//                a refused sign-in shows the page again with
//                p#login-error (an unknown login never creates an account);
//                form#abort-form / button#login-cancel -> access_denied.
//   consent:     skipped (loadExistingGrant grants every requested scope);
//                shown only for prompt=consent: form#consent-form,
//                button#consent-allow.
//   logout:      GET end_session shows form#op.logoutForm with
//                button#logout-confirm (name=logout value=yes) and
//                button#logout-stay, whenever the user has a session here,
//                even with id_token_hint + post_logout_redirect_uri;
//                confirming redirects to the post_logout_redirect_uri.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';

// oidc-provider's in-memory store, under another name only so that it does
// not warn at every start that it is for development (it is a test).
class TestAdapter extends MemoryAdapter {}

function jsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`provider.mjs: ${name} is not JSON: ${err.message}`);
    process.exit(2);
  }
}

const clients = jsonEnv('OIDC_CLIENTS', []);
const accounts = jsonEnv('OIDC_ACCOUNTS', {});
const extraScopes = jsonEnv('OIDC_SCOPES', {});
const autoLogout = process.env.OIDC_LOGOUT_CONFIRM === 'auto';
const debug = process.env.OIDC_DEBUG === '1';
const ACR_VALUES = ['AAL2_OR_AAL3_ANY', 'AAL3_ANY'];

if (!Array.isArray(clients)) {
  console.error('provider.mjs: OIDC_CLIENTS must be a JSON array');
  process.exit(2);
}
if (accounts === null || typeof accounts !== 'object' || Array.isArray(accounts)) {
  console.error('provider.mjs: OIDC_ACCOUNTS must be a JSON object');
  process.exit(2);
}

const scopes = {
  openid: ['sub'],
  profile: [
    'name', 'family_name', 'given_name', 'middle_name', 'nickname', 'preferred_username',
    'profile', 'picture', 'website', 'gender', 'birthdate', 'zoneinfo', 'locale', 'updated_at',
  ],
  email: ['email', 'email_verified'],
  nhsperson: ['nhsid_useruid'],
  nationalrbacaccess: ['nhsid_nrbac_roles'],
  selectedrole: ['selected_roleid'],
  associatedorgs: ['nhsid_user_orgs'],
  miulink: ['miulink_role'],
  ...extraScopes,
};
const claims = {
  acr: null, amr: null, auth_time: null, sid: null, iss: null, ...scopes,
};
// Account claims that no scope names: requestable one by one (`claims`).
const scoped = new Set(Object.values(scopes).flat());
for (const account of Object.values(accounts)) {
  for (const name of Object.keys(account || {})) {
    if (!scoped.has(name) && !(name in claims)) claims[name] = null;
  }
}

// The provider's own signing key, new at every start.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const escapeHtml = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}label,input,button{display:block;margin:.4em 0}input{width:100%}#login-error{color:#a00}</style>
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

let server;
let issuer;
let provider;
let callback;

function buildProvider() {
  const configuration = {
    adapter: TestAdapter,
    clients,
    jwks: { keys: [signingKey] },
    acrValues: ACR_VALUES,
    claims,
    conformIdTokenClaims: false,
    async findAccount(ctx, sub) {
      if (!Object.hasOwn(accounts, sub)) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { ...accounts[sub], sub };
        },
      };
    },
    // First-party clients: every requested scope and claim is granted
    // without a consent page.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId
        || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!grant || grant.accountId !== oidc.session.accountId) {
        grant = new oidc.provider.Grant({
          clientId: oidc.client.clientId,
          accountId: oidc.session.accountId,
        });
      }
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    pkce: { methods: ['S256'], required: () => true },
    // CIS2 signs and expects RS512 client assertions (private_key_jwt);
    // oidc-provider's defaults stop at RS256.
    enabledJWA: {
      clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS256', 'PS512', 'ES256', 'EdDSA'],
    },
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          const confirm = autoLogout
            ? '<script>document.getElementById("logout-confirm").click()</script>'
            : '';
          ctx.type = 'html';
          ctx.body = page('Sign out', `<h1>Sign out of the test identity provider?</h1>
${form}
<button id="logout-confirm" type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button id="logout-stay" type="submit" form="op.logoutForm">No, stay signed in</button>
${confirm}`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<h1 id="signed-out">You have signed out</h1>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Sign-in error', `<h1>Sign-in error</h1>
<p id="error">${escapeHtml(out.error)}: ${escapeHtml(out.error_description)}</p>`);
    },
    clientBasedCORS: () => false,
    cookies: {
      // Not oidc-provider's default names: MIU Link runs on the same host
      // (another port) in the tests, and cookies ignore the port.
      names: { session: 'oidc_session', interaction: 'oidc_interaction', resume: 'oidc_resume' },
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
      keys: [randomBytes(32).toString('hex')],
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
      ClientCredentials: 600,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
    },
  };
  const p = new Provider(issuer, configuration);
  for (const event of [
    'server_error', 'authorization.error', 'grant.error', 'userinfo.error',
    'end_session.error', 'jwks.error', 'discovery.error', 'introspection.error',
    'revocation.error', 'backchannel.error', 'pushed_authorization_request.error',
  ]) {
    p.on(event, (ctx, err) => {
      const detail = err?.error_detail ? ` (${err.error_detail})` : '';
      const what = err?.error ? `${err.error}: ${err.error_description}` : String(err?.stack || err);
      console.error(`oidc-provider ${event} ${ctx?.method ?? ''} ${ctx?.path ?? ''}: ${what}${detail}`);
    });
  }
  return p;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 64 * 1024) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

// The first acr_values entry this provider supports, or ''.
function requestedAcr(params) {
  return String(params.acr_values || '').split(' ').find((v) => ACR_VALUES.includes(v)) ?? '';
}

function loginPage(uid, params, { login = '', acr, error } = {}) {
  const acrValue = acr ?? requestedAcr(params);
  return page('Sign in', `<h1>Sign in to the test identity provider</h1>
<p>Signing in to <span id="client-id">${escapeHtml(params.client_id)}</span></p>
${error ? `<p id="login-error" role="alert">${escapeHtml(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="login">Login name</label>
<input id="login" name="login" type="text" value="${escapeHtml(login)}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password">
<label for="acr">Authentication context (acr)</label>
<input id="acr" name="acr" type="text" value="${escapeHtml(acrValue)}">
<button id="login-submit" type="submit">Sign in</button>
</form>
<form id="abort-form" method="post" action="/interaction/${escapeHtml(uid)}/abort">
<button id="login-cancel" type="submit">Cancel</button>
</form>`);
}

function consentPage(uid, params) {
  return page('Allow access', `<h1>Allow ${escapeHtml(params.client_id)} access?</h1>
<p>Scopes: <span id="consent-scopes">${escapeHtml(params.scope)}</span></p>
<form id="consent-form" method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<button id="consent-allow" type="submit">Allow</button>
</form>
<form id="abort-form" method="post" action="/interaction/${escapeHtml(uid)}/abort">
<button id="consent-deny" type="submit">Deny</button>
</form>`);
}

// The sign-in pages: /interaction/<uid>[/login|/confirm|/abort].
async function interaction(req, res, url) {
  const [, , uid, action] = url.pathname.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, page('Sign-in error', `<h1>Sign-in error</h1><p id="error">${escapeHtml(err.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in error', '<h1>Sign-in error</h1><p id="error">interaction mismatch</p>'));
    return;
  }
  const { prompt, params } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') send(res, 200, loginPage(uid, params));
    else if (prompt.name === 'consent') send(res, 200, consentPage(uid, params));
    else send(res, 501, page('Sign-in error', `<p id="error">prompt ${escapeHtml(prompt.name)} not implemented</p>`));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, page('Sign-in error', '<p id="error">method not allowed</p>'));
    return;
  }
  const form = await readForm(req);

  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'login' && prompt.name === 'login') {
    const login = (form.get('login') || '').trim();
    const password = form.get('password') || '';
    // The acr field as submitted (empty: none); a form without it (a
    // headless client) gets the first supported acr_values entry.
    const acr = form.get('acr') ?? requestedAcr(params);
    if (!login || !password || !Object.hasOwn(accounts, login)) {
      const error = !login || !password
        ? 'Enter your login name and password.'
        : 'Unknown login name or wrong password.';
      send(res, 200, loginPage(uid, params, { login, acr, error }));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: {
        accountId: login,
        acr: acr || undefined,
        amr: ['pwd'],
        remember: true,
      },
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const { details: missing } = prompt;
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant) {
      grant = new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    }
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  send(res, 400, page('Sign-in error', `<p id="error">unexpected ${escapeHtml(action)} for prompt ${escapeHtml(prompt.name)}</p>`));
}

function handle(req, res) {
  if (debug) console.error(`oidc-provider request ${req.method} ${req.url}`);
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/interaction/')) {
    interaction(req, res, url).catch((err) => {
      console.error(`oidc-provider interaction error: ${err.stack || err}`);
      if (!res.headersSent) send(res, 500, page('Sign-in error', `<p id="error">${escapeHtml(err.message)}</p>`));
      else res.end();
    });
    return;
  }
  callback(req, res);
}

function shutdown(code = 0) {
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdin.on('end', () => shutdown(0));
process.stdin.on('close', () => shutdown(0));
process.stdin.on('error', () => shutdown(0));
process.stdin.resume();

server = createServer(handle);
server.on('error', (err) => {
  console.error(`provider.mjs: cannot listen: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  (async () => {
    provider = buildProvider();
    callback = provider.callback();
    // Static clients are checked when first used: check them now, so that
    // bad metadata fails the start rather than a sign-in.
    for (const { client_id: id } of clients) {
      if (!await provider.Client.find(String(id))) throw new Error(`client ${id} not found`);
    }
  })().then(() => {
    process.stdout.write(`ready ${issuer}\n`);
  }, (err) => {
    console.error(`provider.mjs: bad configuration: ${err.error_description || ''} ${err.stack || err}`);
    process.exit(2);
  });
});
