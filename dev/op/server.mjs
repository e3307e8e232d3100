// Development OpenID provider for identity-service: the demo and the interop tests.
//
// One node process, two listeners:
//   - the OpenID provider (oidc-provider 9.x) on OP_PORT (default 9400): a few users with
//     passwords, a real login form, automatic consent, refresh tokens, RP-initiated and
//     back-channel logout, client_credentials, introspection and an RFC 8693 token exchange;
//   - the demo app page (../demo/index.html) on DEMO_PORT (default 3000, "off" disables it).
//
// Not for production: everything lives in memory and is gone on restart.
// See ../README.md for users, clients and environment variables.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import * as querystring from 'node:querystring';
import { fileURLToPath } from 'node:url';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const HERE = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Settings (environment)
// ---------------------------------------------------------------------------------------------

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number.parseInt(raw, 10);
  if (!Number.isInteger(value) || value <= 0 || String(value) !== raw.trim()) {
    console.error(`invalid ${name}: expected a positive integer`);
    process.exit(2);
  }
  return value;
}

function envBool(name, fallback) {
  const raw = (process.env[name] ?? '').trim().toLowerCase();
  if (raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  console.error(`invalid ${name}: expected true or false`);
  process.exit(2);
}

function envList(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  return raw.split(',').map((s) => s.trim()).filter(Boolean);
}

const stripSlash = (u) => u.replace(/\/+$/, '');

const ISSUER = stripSlash(process.env.OP_ISSUER || 'http://127.0.0.1:9400');
const OP_HOST = process.env.OP_HOST || '127.0.0.1';
const OP_PORT = envInt('OP_PORT', 9400);
const SERVICE_URL = stripSlash(process.env.SERVICE_URL || 'http://127.0.0.1:8080');
const ACCESS_TOKEN_TTL = envInt('OP_ACCESS_TOKEN_TTL', 60);
const ID_TOKEN_TTL = envInt('OP_ID_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = envInt('OP_REFRESH_TOKEN_TTL', 24 * 60 * 60);
const SESSION_TTL = envInt('OP_SESSION_TTL', 24 * 60 * 60);
const ROTATE_REFRESH_TOKENS = envBool('OP_ROTATE_REFRESH_TOKENS', true);
const ACCESS_TOKEN_FORMAT = (process.env.OP_ACCESS_TOKEN_FORMAT || 'jwt').toLowerCase();
if (!['jwt', 'opaque'].includes(ACCESS_TOKEN_FORMAT)) {
  console.error('invalid OP_ACCESS_TOKEN_FORMAT: expected jwt or opaque');
  process.exit(2);
}
const IDENTITY_AUTH_METHOD = process.env.OP_IDENTITY_AUTH_METHOD || 'client_secret_basic';
const IDENTITY_RESOURCE = process.env.OP_IDENTITY_RESOURCE || 'urn:identity-service';
const IDENTITY_AUDIENCE = process.env.OP_IDENTITY_AUDIENCE || 'identity';
const EXCHANGE_DENY = new Set(envList('OP_EXCHANGE_DENY_AUDIENCES', ['denied']));
const FETCH_ALLOW_HOSTS = new Set(envList('OP_FETCH_ALLOW_HOSTS', []).map((h) => h.toLowerCase()));
const DEV_ENDPOINTS = envBool('OP_DEV_ENDPOINTS', true);
const DEMO_PORT_RAW = (process.env.DEMO_PORT || '3000').trim().toLowerCase();
const DEMO_ENABLED = !['0', 'off', 'false', 'no'].includes(DEMO_PORT_RAW);
const DEMO_PORT = DEMO_ENABLED ? envInt('DEMO_PORT', 3000) : 0;
const DEMO_HOST = process.env.DEMO_HOST || '127.0.0.1';
const DEMO_PUBLIC_URL = stripSlash(process.env.DEMO_PUBLIC_URL || `http://127.0.0.1:${DEMO_PORT}`);

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TT_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const TT_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const AUDIENCE_URN = 'urn:oidc-dev:audience:';

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

const DEFAULT_USERS = [
  {
    sub: '5f0c6f4e-6d1a-4c52-9a3e-a11ce0000001',
    username: 'alice',
    password: 'alice-password',
    name: 'Alice Example',
    given_name: 'Alice',
    family_name: 'Example',
    email: 'alice@example.com',
    email_verified: true,
    groups: ['staff'],
    roles: ['admin', 'gis'],
  },
  {
    sub: '9b2d7c1a-3e4f-4a6b-8c9d-b0b000000002',
    username: 'bob',
    password: 'bob-password',
    name: 'Bob Example',
    given_name: 'Bob',
    family_name: 'Example',
    email: 'bob@example.com',
    email_verified: false,
    groups: ['users'],
    roles: ['user'],
  },
];

function loadUsers() {
  const file = process.env.OP_USERS_FILE;
  if (!file) return DEFAULT_USERS;
  try {
    const list = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!Array.isArray(list) || list.some((u) => !u?.sub || !u?.username || !u?.password)) {
      throw new Error('expected an array of users with sub, username and password');
    }
    return list;
  } catch (err) {
    console.error(`cannot read OP_USERS_FILE: ${err.message}`);
    process.exit(2);
  }
}

const USERS = loadUsers();
const USERS_BY_SUB = new Map(USERS.map((u) => [u.sub, u]));
const USERS_BY_NAME = new Map(USERS.map((u) => [u.username.toLowerCase(), u]));

// Every claim a user has; the provider filters them by the granted scopes (see CLAIMS).
function userClaims(user) {
  const roles = user.roles ?? [];
  return {
    sub: user.sub,
    preferred_username: user.username,
    name: user.name,
    given_name: user.given_name,
    family_name: user.family_name,
    email: user.email,
    email_verified: user.email_verified,
    groups: user.groups ?? [],
    roles,
    realm_access: { roles },
  };
}

// Constant-time for equal lengths; the length leak is irrelevant for a development provider.
function passwordMatches(user, password) {
  const a = Buffer.from(String(user.password));
  const b = Buffer.from(String(password ?? ''));
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// Claims by scope. roles, groups and realm_access come with "openid" so that every
// ID token, userinfo answer and access token of a user carries them.
const CLAIMS = {
  acr: null,
  sid: null,
  auth_time: null,
  iss: null,
  openid: ['sub', 'roles', 'groups', 'realm_access'],
  profile: ['name', 'preferred_username', 'given_name', 'family_name'],
  email: ['email', 'email_verified'],
};

function claimsForScope(scope) {
  const names = new Set(['sub']);
  for (const s of String(scope ?? '').split(' ')) {
    if (Array.isArray(CLAIMS[s])) CLAIMS[s].forEach((c) => names.add(c));
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------------------------

async function newSigningJwk() {
  // The key comes out as PEM and is exported to JWK from a KeyObject of its own: Node 20
  // can deadlock when a garbage collection during `export` of a freshly generated KeyObject
  // destroys its key-generation job, which takes the lock `export` holds (seen in CI: the
  // provider never started listening; gdb showed ~KeyGenJob waiting in ExportJWKRsaKey).
  const { privateKey: pem } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const jwk = crypto.createPrivateKey(pem).export({ format: 'jwk' });
  const kid = await jose.calculateJwkThumbprint({ kty: jwk.kty, n: jwk.n, e: jwk.e });
  return { ...jwk, kid, use: 'sig', alg: 'RS256' };
}

// OP_JWKS_FILE keeps the key across restarts; without it every start is a key rotation.
async function loadJwks() {
  const file = process.env.OP_JWKS_FILE;
  if (file && fs.existsSync(file)) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  const jwks = { keys: [await newSigningJwk()] };
  if (file) fs.writeFileSync(file, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

const JWKS = await loadJwks();
// OP_FAPI_CLIENT_JWKS_FILE (the public JWKS of a FAPI 2.0 client's key) registers the client
// "fapi" under oidc-provider's FAPI 2.0 profile (SPEC 12): PAR required, PKCE, DPoP-bound
// tokens with a DPoP-Nonce demanded, private_key_jwt (PS256), ID tokens PS256 (so a PS256
// key joins the signing keys).
const FAPI_CLIENT_JWKS_FILE = process.env.OP_FAPI_CLIENT_JWKS_FILE || '';
if (FAPI_CLIENT_JWKS_FILE && !JWKS.keys.some((key) => key.alg === 'PS256')) {
  JWKS.keys.push({ ...(await newSigningJwk()), alg: 'PS256' });
}
const PUBLIC_JWKS = {
  keys: JWKS.keys.map(({ kty, n, e, crv, x, y, kid, use, alg }) => ({
    kty, n, e, crv, x, y, kid, use, alg,
  })),
};
const localJwks = jose.createLocalJWKSet(PUBLIC_JWKS);

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

function identityClient() {
  const client = {
    client_id: 'identity',
    client_name: 'identity-service',
    redirect_uris: [`${SERVICE_URL}/callback`],
    post_logout_redirect_uris: [`${SERVICE_URL}/logout/callback`],
    backchannel_logout_uri: `${SERVICE_URL}/backchannel-logout`,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE],
    response_types: ['code'],
    token_endpoint_auth_method: IDENTITY_AUTH_METHOD,
  };
  if (IDENTITY_AUTH_METHOD === 'private_key_jwt') {
    const file = process.env.OP_IDENTITY_JWKS_FILE;
    if (!file) {
      console.error('OP_IDENTITY_AUTH_METHOD=private_key_jwt needs OP_IDENTITY_JWKS_FILE (public JWKS)');
      process.exit(2);
    }
    client.jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  } else {
    client.client_secret = process.env.OP_IDENTITY_CLIENT_SECRET || 'identity-dev-secret';
  }
  return client;
}

function fapiClient() {
  return {
    client_id: 'fapi',
    client_name: 'identity-service (FAPI 2.0)',
    redirect_uris: [`${SERVICE_URL}/callback`],
    post_logout_redirect_uris: [`${SERVICE_URL}/logout/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'PS256',
    id_token_signed_response_alg: 'PS256',
    require_pushed_authorization_requests: true,
    dpop_bound_access_tokens: true,
    jwks: JSON.parse(fs.readFileSync(FAPI_CLIENT_JWKS_FILE, 'utf8')),
  };
}

const CLIENTS = [
  identityClient(),
  ...(FAPI_CLIENT_JWKS_FILE ? [fapiClient()] : []),
  {
    client_id: 'service-a',
    client_secret: 'service-a-secret',
    client_name: 'service A (client_credentials, client_secret_post)',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    client_id: 'service-b',
    client_secret: 'service-b-secret',
    client_name: 'service B (client_credentials, client_secret_basic)',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  },
];

// ---------------------------------------------------------------------------------------------
// Resource servers (access-token audiences)
// ---------------------------------------------------------------------------------------------

function requestedScopes(ctx) {
  const scope = ctx?.oidc?.params?.scope;
  return typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
}

// Every absolute URI is accepted as a resource (a development provider is permissive):
// - IDENTITY_RESOURCE -> audience IDENTITY_AUDIENCE ("identity");
// - urn:oidc-dev:audience:<name> (what an `audience` parameter maps to) -> audience <name>;
// - anything else -> audience = the resource indicator itself.
function resourceServerInfo(ctx, indicator) {
  let audience = indicator;
  if (indicator === IDENTITY_RESOURCE) audience = IDENTITY_AUDIENCE;
  else if (indicator.startsWith(AUDIENCE_URN)) audience = indicator.slice(AUDIENCE_URN.length);
  if (!audience) throw new errors.InvalidTarget('empty audience');
  const scope = new Set(['openid', 'profile', 'email', ...requestedScopes(ctx)]);
  scope.delete('offline_access');
  return {
    audience,
    scope: [...scope].join(' '),
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: ACCESS_TOKEN_FORMAT,
    ...(ACCESS_TOKEN_FORMAT === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  };
}

// The identity client's user tokens are bound to IDENTITY_RESOURCE (aud "identity") when
// access tokens are JWTs; opaque user tokens stay audience-less so the provider's own
// userinfo endpoint accepts them.
async function defaultResource(ctx, client, oneOf) {
  if (oneOf) return oneOf;
  const audience = ctx?.oidc?.body?.audience;
  if (ctx?.oidc?.route === 'token' && typeof audience === 'string' && audience) {
    // client_credentials with an `audience` parameter (Auth0 style)
    return `${AUDIENCE_URN}${audience}`;
  }
  if (client?.clientId === 'identity' && ACCESS_TOKEN_FORMAT === 'jwt' && ctx?.oidc?.route !== 'token') {
    return IDENTITY_RESOURCE;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function htmlEscape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

async function readForm(req, limit = 16 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new errors.InvalidRequest('request body too large');
    chunks.push(chunk);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

function firstValue(v) {
  return Array.isArray(v) ? v[0] : v;
}

function isLoopbackHost(hostname) {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${htmlEscape(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:40px 16px}
main{max-width:360px;margin:0 auto;background:#fff;padding:24px 28px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.4em;margin-top:0}label{display:block;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px;font-size:1em}
button{margin-top:16px;width:100%;padding:10px;font-size:1em;background:#2d6cdf;color:#fff;border:0;border-radius:4px;cursor:pointer}
.error{color:#b00020;background:#fdecee;padding:8px;border-radius:4px}.muted{color:#666;font-size:.9em}
pre{white-space:pre-wrap;word-break:break-all}
</style>
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function loginPage({ uid, clientName, login, error }) {
  return page('Sign in', `<h1>Sign in</h1>
<p class="muted">to <strong>${htmlEscape(clientName)}</strong> (development provider)</p>
${error ? `<p id="error" class="error" role="alert">${htmlEscape(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${htmlEscape(uid)}/login" autocomplete="off">
  <label for="login">Username</label>
  <input id="login" name="login" type="text" value="${htmlEscape(login)}" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <button id="submit" type="submit">Sign in</button>
</form>
<p class="muted"><a id="cancel" href="/interaction/${htmlEscape(uid)}/abort">Cancel</a> (answers access_denied)</p>
<p class="muted">Users: ${USERS.map((u) => `${htmlEscape(u.username)} / ${htmlEscape(u.password)}`).join(', ')}</p>`);
}

// ---------------------------------------------------------------------------------------------
// Provider configuration
// ---------------------------------------------------------------------------------------------

const configuration = {
  clients: CLIENTS,
  jwks: JWKS,
  cookies: {
    keys: envList('OP_COOKIE_KEYS', [crypto.randomBytes(32).toString('base64url')]),
  },
  claims: CLAIMS,
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  responseTypes: ['code'],
  conformIdTokenClaims: false,

  async findAccount(ctx, sub) {
    const user = USERS_BY_SUB.get(sub);
    if (!user) return undefined;
    return {
      accountId: user.sub,
      async claims() {
        return userClaims(user);
      },
    };
  },

  // Claims that travel inside access tokens (JWT payload, or the introspection answer).
  async extraTokenClaims(ctx, token) {
    const user = token.accountId ? USERS_BY_SUB.get(token.accountId) : undefined;
    if (!user) return undefined;
    const c = userClaims(user);
    return {
      preferred_username: c.preferred_username,
      name: c.name,
      email: c.email,
      roles: c.roles,
      groups: c.groups,
      realm_access: c.realm_access,
    };
  },

  formats: {
    customizers: {
      // `sid` in JWT access tokens, as Keycloak does.
      async jwt(ctx, token, jwt) {
        if (token.sid) jwt.payload.sid = token.sid;
      },
    },
  },

  // Refresh tokens for every client allowed the refresh_token grant, with or without
  // offline_access (which oidc-provider drops unless prompt=consent).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  rotateRefreshToken: () => ROTATE_REFRESH_TOKENS,

  ttl: {
    AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL || ACCESS_TOKEN_TTL,
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: ID_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Interaction: 60 * 60,
    Session: SESSION_TTL,
    Grant: Math.max(SESSION_TTL, REFRESH_TOKEN_TTL),
    DeviceCode: 600,
    BackchannelAuthenticationRequest: 600,
    PreAuthorizedCode: 600,
  },

  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // any authenticated confidential client may introspect
      async allowedPolicy(ctx, client) {
        return client.clientAuthMethod !== 'none';
      },
    },
    revocation: {
      enabled: true,
      async allowedPolicy(ctx, client, token) {
        return token.clientId === client.clientId;
      },
    },
    backchannelLogout: { enabled: true },
    ...(FAPI_CLIENT_JWKS_FILE ? {
      fapi: { enabled: true, profile: (ctx, client) => (client?.clientId === 'fapi' ? '2.0' : undefined) },
      dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
      pushedAuthorizationRequests: { enabled: true },
    } : {}),
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        // With a valid id_token_hint (the RP knows who is logging out) the logout is
        // confirmed automatically, as Keycloak does; without one the user is asked.
        const auto = !!ctx.oidc.entities.IdTokenHint;
        const formWithYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        ctx.type = 'html';
        ctx.body = page('Sign out', auto
          ? `<h1>Signing out…</h1>${formWithYes}
<noscript><button id="logout-yes" type="submit" form="op.logoutForm">Continue</button></noscript>
<script>document.forms[0].submit()</script>`
          : `<h1>Sign out of ${htmlEscape(ctx.host)}?</h1>${form}
<button id="logout-yes" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<h1 id="signed-out">You are signed out.</h1>');
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource,
      // Use the resource bound at authorization (IDENTITY_RESOURCE) at the token endpoint
      // too, even when openid was requested; only JWT mode binds one.
      async useGrantedResource() {
        return ACCESS_TOKEN_FORMAT === 'jwt';
      },
      async getResourceServerInfo(ctx, indicator) {
        return resourceServerInfo(ctx, indicator);
      },
    },
  },

  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Something went wrong</h1>
<p id="error-code"><strong>${htmlEscape(out.error)}</strong></p>
<p id="error-description">${htmlEscape(out.error_description)}</p>`);
  },

  // The back-channel logout POST is sent by oidc-provider through this fetch. Its SSRF guard
  // (a dispatcher refusing special-use addresses) would refuse http://127.0.0.1:8080/…;
  // drop it for loopback targets (and OP_FETCH_ALLOW_HOSTS) only.
  fetch(url, options) {
    const { hostname } = new URL(url);
    if (isLoopbackHost(hostname) || FETCH_ALLOW_HOSTS.has(hostname.toLowerCase())) {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    }
    return globalThis.fetch(url, options);
  },
};

const provider = new Provider(ISSUER, configuration);
// Koa: believe X-Forwarded-* only when explicitly asked (reverse proxy in front).
provider.proxy = envBool('OP_TRUST_PROXY', false);

// ---------------------------------------------------------------------------------------------
// RFC 8693 token exchange
// ---------------------------------------------------------------------------------------------

// Resolves a subject_token this provider issued: an opaque access token from the adapter, or
// a JWT access token (typ at+jwt) verified against our own keys.
async function findSubjectToken(value) {
  if (value.split('.').length === 3) {
    let payload;
    try {
      ({ payload } = await jose.jwtVerify(value, localJwks, {
        issuer: ISSUER,
        typ: 'at+jwt',
        algorithms: ['RS256'],
        clockTolerance: 5,
      }));
    } catch {
      return undefined;
    }
    return {
      accountId: payload.sub,
      clientId: payload.client_id,
      scope: payload.scope,
      aud: [].concat(payload.aud ?? []),
      sid: payload.sid,
    };
  }
  const at = await provider.AccessToken.find(value);
  if (!at || at.isExpired) return undefined;
  if (at.grantId) {
    const grant = await provider.Grant.find(at.grantId);
    if (!grant) return undefined;
  }
  return {
    accountId: at.accountId,
    clientId: at.clientId,
    scope: at.scope,
    aud: [].concat(at.aud ?? []),
    sid: at.sid,
    grantId: at.grantId,
    sessionUid: at.sessionUid,
    expiresWithSession: at.expiresWithSession,
  };
}

const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]+( [\x21\x23-\x5B\x5D-\x7E]+)*$/;

async function tokenExchangeHandler(ctx) {
  const { params, client } = ctx.oidc;

  if (!params.subject_token) throw new errors.InvalidRequest("missing required parameter 'subject_token'");
  if (!params.subject_token_type) throw new errors.InvalidRequest("missing required parameter 'subject_token_type'");
  if (![TT_ACCESS_TOKEN, TT_JWT].includes(params.subject_token_type)) {
    throw new errors.InvalidRequest('unsupported subject_token_type (access_token or jwt only)');
  }
  if (params.requested_token_type && ![TT_ACCESS_TOKEN, TT_JWT].includes(params.requested_token_type)) {
    throw new errors.InvalidRequest('unsupported requested_token_type (access_token only)');
  }
  if (params.actor_token || params.actor_token_type) {
    throw new errors.InvalidRequest('actor_token is not supported (impersonation only)');
  }

  const subject = await findSubjectToken(params.subject_token);
  if (!subject) throw new errors.InvalidGrant('subject_token is invalid, expired or revoked');
  const user = subject.accountId ? USERS_BY_SUB.get(subject.accountId) : undefined;
  if (!user) throw new errors.InvalidGrant('subject_token does not represent an end-user');

  // Only tokens issued to this client, or issued for it (aud), may be exchanged by it.
  const forThisClient = subject.clientId === client.clientId
    || subject.aud.includes(client.clientId)
    || (client.clientId === 'identity' && subject.aud.includes(IDENTITY_AUDIENCE));
  if (!forThisClient) throw new errors.InvalidGrant('subject_token was not issued to or for this client');

  const audiences = [].concat(params.audience ?? []);
  const resources = [].concat(params.resource ?? []);
  if (audiences.length > 1 || resources.length > 1) {
    throw new errors.InvalidTarget('only a single audience and a single resource are supported');
  }
  const [audience] = audiences;
  const [resource] = resources;
  if (resource !== undefined) {
    const href = URL.parse(resource)?.href;
    if (!href || href.includes('#')) throw new errors.InvalidTarget('resource must be an absolute URI without a fragment');
  }
  const target = audience || resource || client.clientId;
  if (EXCHANGE_DENY.has(target) || (resource && EXCHANGE_DENY.has(resource))) {
    throw new errors.InvalidTarget('token exchange for this audience is not allowed');
  }

  const scope = params.scope !== undefined ? params.scope : (subject.scope || '');
  if (scope && !SCOPE_RE.test(scope)) throw new errors.InvalidScope('scope contains invalid characters');

  const sameGrant = subject.clientId === client.clientId;
  const at = new provider.AccessToken({
    accountId: user.sub,
    client,
    gty: TOKEN_EXCHANGE,
    scope: scope || undefined,
    sid: subject.sid,
    ...(sameGrant && subject.grantId ? {
      grantId: subject.grantId,
      sessionUid: subject.sessionUid,
      expiresWithSession: subject.expiresWithSession,
    } : {}),
  });
  const identifier = resource || `${AUDIENCE_URN}${target}`;
  at.resourceServer = new provider.ResourceServer(identifier, {
    audience: target,
    scope,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: ACCESS_TOKEN_FORMAT,
    ...(ACCESS_TOKEN_FORMAT === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  });
  at.scope = scope || undefined;
  ctx.oidc.entity('AccessToken', at);
  const value = await at.save();

  ctx.body = {
    access_token: value,
    issued_token_type: TT_ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: at.expiration,
    ...(at.scope ? { scope: at.scope } : {}),
  };
}

provider.registerGrantType(
  TOKEN_EXCHANGE,
  tokenExchangeHandler,
  ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource',
    'scope', 'actor_token', 'actor_token_type'],
  ['audience', 'resource'],
);

// ---------------------------------------------------------------------------------------------
// Sessions known per user (for POST /dev/logout, an OP-side "log out everywhere")
// ---------------------------------------------------------------------------------------------

const knownSessions = new Map(); // accountId -> Map(`${clientId} ${sid}` -> {clientId, sid, sessionUid})

provider.on('grant.success', (ctx) => {
  const code = ctx.oidc.entities.AuthorizationCode;
  if (!code?.accountId || !code.sid) return;
  let perUser = knownSessions.get(code.accountId);
  if (!perUser) knownSessions.set(code.accountId, (perUser = new Map()));
  perUser.set(`${code.clientId} ${code.sid}`, {
    clientId: code.clientId, sid: code.sid, sessionUid: code.sessionUid,
  });
});

// Refresh tokens issued per user (for GET /dev/refresh-tokens: the interop tests check that
// a logout at the service revoked its refresh token here, RFC 7009). Development only.
const issuedRefreshTokens = new Map(); // accountId -> [refresh_token]

provider.on('grant.success', (ctx) => {
  const token = ctx.body?.refresh_token;
  const { AuthorizationCode: code, RefreshToken: used } = ctx.oidc.entities;
  const accountId = code?.accountId ?? used?.accountId;
  if (!token || !accountId) return;
  const issued = issuedRefreshTokens.get(accountId) ?? [];
  issued.push(token);
  issuedRefreshTokens.set(accountId, issued.slice(-20));
});

// ---------------------------------------------------------------------------------------------
// Logging: one line per request; path without query string (codes, tokens, id_token_hint).
// ---------------------------------------------------------------------------------------------

function logLine(fields) {
  const parts = [new Date().toISOString()];
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined && v !== null && v !== '') parts.push(k === 'msg' ? v : `${k}=${v}`);
  }
  process.stdout.write(`${parts.join(' ')}\n`);
}

function safePath(p) {
  return p.replace(/^\/(interaction|auth)\/[^/]+/, '/$1/:uid');
}

provider.use(async (ctx, next) => {
  const started = process.hrtime.bigint();
  try {
    await next();
  } finally {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const body = ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body) ? ctx.body : undefined;
    logLine({
      msg: `op ${ctx.method} ${safePath(ctx.path)} ${ctx.respond === false ? ctx.res.statusCode : ctx.status}`,
      ms: ms.toFixed(1),
      client: ctx.oidc?.client?.clientId,
      grant_type: ctx.oidc?.params?.grant_type,
      error: body?.error,
    });
  }
});

provider.on('backchannel.success', (ctx, client, accountId, sid) => {
  logLine({ msg: 'op backchannel-logout sent', client: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid });
});
provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
  logLine({ msg: 'op backchannel-logout FAILED', client: client.clientId, uri: client.backchannelLogoutUri, sub: accountId, sid, reason: JSON.stringify(err.cause?.message ?? err.message) });
});
provider.on('server_error', (ctx, err) => {
  logLine({ msg: 'op server_error', reason: JSON.stringify(err.message) });
});

// ---------------------------------------------------------------------------------------------
// Interactions (login form, automatic consent), userinfo for JWT access tokens, dev endpoints
// ---------------------------------------------------------------------------------------------

async function autoConsent(ctx, details) {
  const { prompt: { details: missing }, params, session } = details;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interactionRoutes(ctx) {
  const m = /^\/interaction\/([^/]+)(\/login|\/abort)?$/.exec(ctx.path);
  if (!m) return false;
  const [, uid, action] = m;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName || details.params.client_id;

  if (!action && ctx.method === 'GET') {
    if (details.prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = loginPage({ uid, clientName, login: details.params.login_hint ?? '' });
      return true;
    }
    if (details.prompt.name === 'consent') {
      await autoConsent(ctx, details);
      return true;
    }
    throw new errors.InvalidRequest(`unsupported prompt ${details.prompt.name}`);
  }

  if (action === '/login' && ctx.method === 'POST') {
    if (details.prompt.name !== 'login') throw new errors.InvalidRequest('login is not expected now');
    const form = await readForm(ctx.req);
    const login = String(firstValue(form.login) ?? '').trim();
    const user = USERS_BY_NAME.get(login.toLowerCase());
    if (!user || !passwordMatches(user, firstValue(form.password))) {
      ctx.type = 'html';
      ctx.status = 200;
      ctx.body = loginPage({ uid, clientName, login, error: 'Invalid username or password.' });
      logLine({ msg: 'op login failed', user: JSON.stringify(login.slice(0, 64)) });
      return true;
    }
    logLine({ msg: 'op login ok', user: user.username });
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: user.sub, amr: ['pwd'], remember: true },
    }, { mergeWithLastSubmission: false });
    return true;
  }

  if (action === '/abort' && ctx.method === 'GET') {
    ctx.respond = false;
    await provider.interactionFinished(ctx.req, ctx.res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return true;
  }
  return false;
}

// oidc-provider's userinfo endpoint refuses access tokens that have an audience, which every
// JWT access token has. For JWT access tokens we answer /me ourselves with the same claims
// (by scope) after verifying the token with our keys.
async function jwtUserinfo(ctx) {
  if (ctx.path !== '/me' || !['GET', 'POST'].includes(ctx.method)) return false;
  const m = /^Bearer\s+([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+)$/i.exec(ctx.get('authorization'));
  if (!m) return false;
  ctx.set('cache-control', 'no-store');
  const deny = (description) => {
    ctx.status = 401;
    ctx.set('www-authenticate', `Bearer realm="${ISSUER}", error="invalid_token", error_description="${description}"`);
    ctx.body = { error: 'invalid_token', error_description: description };
    return true;
  };
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(m[1], localJwks, {
      issuer: ISSUER, typ: 'at+jwt', algorithms: ['RS256'], clockTolerance: 5,
    }));
  } catch {
    return deny('invalid or expired access token');
  }
  const scope = String(payload.scope ?? '');
  if (!scope.split(' ').includes('openid')) return deny('access token missing openid scope');
  const user = USERS_BY_SUB.get(payload.sub);
  if (!user) return deny('associated account not found');
  const allowed = claimsForScope(scope);
  const all = userClaims(user);
  ctx.body = Object.fromEntries(Object.entries(all).filter(([k, v]) => allowed.has(k) && v !== undefined));
  return true;
}

async function devRoutes(ctx) {
  if (!DEV_ENDPOINTS) return false;
  if (ctx.path === '/' && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = page('Development OpenID provider', `<h1>Development OpenID provider</h1>
<p>Issuer: <code>${htmlEscape(ISSUER)}</code></p>
<p><a href="/.well-known/openid-configuration">Discovery document</a> · <a href="/jwks">JWKS</a></p>
<p>Users: ${USERS.map((u) => `${htmlEscape(u.username)} / ${htmlEscape(u.password)}`).join(', ')}</p>
<p><a id="op-logout" href="/session/end">Sign out of the provider</a></p>`);
    return true;
  }
  // The refresh tokens issued to a user (newest last), for the revocation interop test.
  if (ctx.path === '/dev/refresh-tokens' && ctx.method === 'GET') {
    ctx.set('cache-control', 'no-store');
    const who = String(ctx.query.sub ?? ctx.query.username ?? '');
    const user = USERS_BY_SUB.get(who) ?? USERS_BY_NAME.get(who.toLowerCase());
    ctx.body = { refresh_tokens: user ? (issuedRefreshTokens.get(user.sub) ?? []) : [] };
    return true;
  }
  // OP-side logout of a user everywhere: ends their provider sessions and sends a
  // back-channel logout token to each client that has a back-channel logout URI.
  if (ctx.path === '/dev/logout' && ctx.method === 'POST') {
    ctx.set('cache-control', 'no-store');
    const form = await readForm(ctx.req);
    const who = String(firstValue(form.sub) ?? firstValue(form.username) ?? '');
    const user = USERS_BY_SUB.get(who) ?? USERS_BY_NAME.get(who.toLowerCase());
    if (!user) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'unknown sub/username' };
      return true;
    }
    const withSid = firstValue(form.sid_in_token) !== 'false';
    const results = [];
    const entries = [...(knownSessions.get(user.sub)?.values() ?? [])];
    knownSessions.delete(user.sub);
    const sessions = new Set();
    for (const e of entries) {
      const client = await provider.Client.find(e.clientId);
      if (e.sessionUid) sessions.add(e.sessionUid);
      if (!client?.backchannelLogoutUri) continue;
      try {
        if (withSid) {
          await client.backchannelLogout(user.sub, e.sid);
        } else {
          // sub-only logout token (backchannel_logout_session_required is bypassed on purpose)
          const saved = client.backchannelLogoutSessionRequired;
          client.backchannelLogoutSessionRequired = false;
          try { await client.backchannelLogout(user.sub, undefined); } finally { client.backchannelLogoutSessionRequired = saved; }
        }
        results.push({ client_id: e.clientId, sid: withSid ? e.sid : undefined, sent: true });
        logLine({ msg: 'op backchannel-logout sent', client: e.clientId, uri: client.backchannelLogoutUri, sub: user.sub, sid: withSid ? e.sid : undefined });
      } catch (err) {
        results.push({ client_id: e.clientId, sid: e.sid, sent: false, reason: String(err.cause?.message ?? err.message) });
        logLine({ msg: 'op backchannel-logout FAILED', client: e.clientId, sub: user.sub, reason: JSON.stringify(err.cause?.message ?? err.message) });
      }
    }
    for (const uid of sessions) {
      const session = await provider.Session.findByUid(uid);
      if (session) {
        for (const { grantId } of Object.values(session.authorizations ?? {})) {
          if (grantId) {
            const grant = await provider.Grant.find(grantId);
            if (grant) await grant.destroy();
            await Promise.all([
              provider.AccessToken.revokeByGrantId(grantId),
              provider.RefreshToken.revokeByGrantId(grantId),
              provider.AuthorizationCode.revokeByGrantId(grantId),
            ]);
          }
        }
        await session.destroy();
      }
    }
    ctx.body = { sub: user.sub, sessions_ended: sessions.size, logout_tokens: results };
    return true;
  }
  return false;
}

provider.use(async (ctx, next) => {
  if (await devRoutes(ctx)) return;
  if (await jwtUserinfo(ctx)) return;
  if (ctx.path.startsWith('/interaction/')) {
    try {
      if (await interactionRoutes(ctx)) return;
    } catch (err) {
      if (ctx.respond === false) throw err;
      ctx.status = err.statusCode || 500;
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Sign-in failed</h1>
<p id="error-code"><strong>${htmlEscape(err.error || 'server_error')}</strong></p>
<p id="error-description">${htmlEscape(err.error_description || 'unexpected error')}</p>
<p class="muted">Start again from the application.</p>`);
      if (ctx.status >= 500) logLine({ msg: 'op interaction error', reason: JSON.stringify(err.message) });
      return;
    }
    ctx.status = 404;
    ctx.body = page('Not found', '<h1>Not found</h1>');
    return;
  }
  await next();
});

// ---------------------------------------------------------------------------------------------
// Demo app (../demo/index.html)
// ---------------------------------------------------------------------------------------------

function demoHandler(req, res) {
  const started = process.hrtime.bigint();
  const url = new URL(req.url, 'http://demo.invalid');
  const send = (status, type, body) => send.withHeaders(status, { 'content-type': type }, body);
  send.withHeaders = (status, headers, body) => {
    res.writeHead(status, { ...headers, 'cache-control': 'no-store' });
    res.end(body);
    logLine({ msg: `demo ${req.method} ${url.pathname} ${status}`, ms: (Number(process.hrtime.bigint() - started) / 1e6).toFixed(1) });
  };
  if (url.pathname.startsWith('/echo/')) return echo(req, res, url, send);
  if (url.pathname.startsWith('/dpop-echo/')) return dpopEcho(req, url, send);
  if (url.pathname === '/dpop-replay' && req.method === 'POST') return dpopReplay(send);
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
  if (url.pathname === '/' || url.pathname === '/index.html') {
    fs.readFile(path.join(HERE, '..', 'demo', 'index.html'), (err, data) => {
      if (err) send(500, 'text/plain', 'demo/index.html missing\n');
      else send(200, 'text/html; charset=utf-8', data);
    });
    return undefined;
  }
  if (url.pathname === '/config.js') {
    const cfg = { serviceUrl: SERVICE_URL, returnUrl: `${DEMO_PUBLIC_URL}/`, issuer: ISSUER };
    return send(200, 'text/javascript; charset=utf-8', `window.DEMO_CONFIG = ${JSON.stringify(cfg)};\n`);
  }
  return send(404, 'text/plain', 'not found\n');
}

// A tiny echo API for the demo's "Call the API" button: identity-service's API proxy
// (config: a target with url = "<demo>/echo/" and a proxy_path) forwards the browser's call
// here with the user's token attached. It answers what it received, showing of the token
// only some claims (decoded, not verified: a demo), never the token itself.
function echo(req, res, url, send) {
  let length = 0;
  req.on('data', (chunk) => { length += chunk.length; });
  req.on('end', () => {
    const auth = req.headers.authorization || '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : url.searchParams.get('access_token') || url.searchParams.get('token');
    let claims = null;
    try {
      const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
      claims = { sub: payload.sub, aud: payload.aud, iss: payload.iss, scope: payload.scope };
    } catch { claims = null; }
    const query = [...url.searchParams.keys()].filter((k) => k !== 'token' && k !== 'access_token');
    send(200, 'application/json', `${JSON.stringify({
      echo: true,
      method: req.method,
      path: url.pathname,
      query: Object.fromEntries(query.map((k) => [k, url.searchParams.get(k)])),
      bodyBytes: length,
      tokenReceived: Boolean(token),
      tokenClaims: claims,
      cookieReceived: Boolean(req.headers.cookie),
      forwardedFor: req.headers['x-forwarded-for'] || null,
      forwardedHost: req.headers['x-forwarded-host'] || null,
    }, null, 2)}\n`);
  });
  return undefined;
}

// A DPoP-checking echo API (RFC 9449 section 7) for the FAPI 2.0 interop test: the access
// token must come as `Authorization: DPoP`, be ours (at+jwt) and bound (`cnf.jkt`) to the key
// of a fresh proof (typ, signature, htm, htu, iat, ath, an unseen jti, its DPoP-Nonce).
// POST /dpop-replay checks the last accepted request again, as an attacker replaying it
// would send it: the proof's jti is then seen.
const DPOP_RS_NONCE = crypto.randomBytes(16).toString('base64url');
const dpopSeenJti = new Set();
let dpopLast = null;

async function checkDpopRequest({ method, htu, authorization, proof }) {
  if (!authorization?.startsWith('DPoP ') || !proof) return { status: 401, error: 'invalid_token' };
  const token = authorization.slice(5);
  let header;
  let claims;
  try {
    ({ payload: claims, protectedHeader: header } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
      typ: 'dpop+jwt', algorithms: ['ES256', 'PS256', 'EdDSA'],
    }));
  } catch (error) {
    return { status: 401, error: 'invalid_dpop_proof', why: error.message };
  }
  if (claims.htm !== method) return { status: 401, error: 'invalid_dpop_proof', why: 'htm' };
  if (claims.htu !== htu) return { status: 401, error: 'invalid_dpop_proof', why: `htu ${claims.htu} != ${htu}` };
  if (Math.abs(Date.now() / 1000 - claims.iat) > 60) return { status: 401, error: 'invalid_dpop_proof', why: 'iat' };
  if (claims.ath !== crypto.createHash('sha256').update(token).digest('base64url')) {
    return { status: 401, error: 'invalid_dpop_proof', why: 'ath' };
  }
  if (claims.nonce !== DPOP_RS_NONCE) return { status: 401, error: 'use_dpop_nonce' };
  if (dpopSeenJti.has(claims.jti)) return { status: 401, error: 'invalid_dpop_proof', why: 'jti replayed' };
  let access;
  if (token.split('.').length === 3) {
    try {
      ({ payload: access } = await jose.jwtVerify(token, localJwks, { issuer: ISSUER, typ: 'at+jwt' }));
    } catch (error) {
      return { status: 401, error: 'invalid_token', why: error.message };
    }
  } else {
    // An opaque token: the provider's own record says whom and which key it is bound to.
    const at = await provider.AccessToken.find(token);
    if (!at || at.isExpired) return { status: 401, error: 'invalid_token', why: 'unknown or expired token' };
    access = { sub: at.accountId, cnf: { jkt: at.jkt } };
  }
  const jkt = await jose.calculateJwkThumbprint(header.jwk);
  if (access.cnf?.jkt !== jkt) return { status: 401, error: 'invalid_token', why: 'not bound to the proof key' };
  dpopSeenJti.add(claims.jti);
  return { status: 200, sub: access.sub, jkt, jti: claims.jti, tokenHash: claims.ath };
}

function dpopAnswer(send, result) {
  if (result.status === 200) {
    return send(200, 'application/json', `${JSON.stringify({ dpop: true, ...result })}\n`);
  }
  res401(send, result);
  return undefined;
}

function res401(send, result) {
  send.withHeaders(401, {
    'content-type': 'application/json',
    'www-authenticate': `DPoP error="${result.error}"`,
    'dpop-nonce': DPOP_RS_NONCE,
  }, `${JSON.stringify(result)}\n`);
}

function dpopEcho(req, url, send) {
  req.resume();
  req.on('end', async () => {
    const request = {
      method: req.method,
      htu: `${DEMO_PUBLIC_URL}${url.pathname}`,
      authorization: req.headers.authorization,
      proof: req.headers.dpop,
    };
    const result = await checkDpopRequest(request);
    if (result.status === 200) dpopLast = request;
    dpopAnswer(send, result);
  });
  return undefined;
}

async function dpopReplay(send) {
  if (!dpopLast) return send(404, 'application/json', '{"error":"nothing to replay"}\n');
  return dpopAnswer(send, await checkDpopRequest(dpopLast));
}

// ---------------------------------------------------------------------------------------------
// Start / stop
// ---------------------------------------------------------------------------------------------

const opServer = http.createServer(provider.callback());
const servers = [opServer];

opServer.listen(OP_PORT, OP_HOST, () => {
  logLine({
    msg: 'op listening',
    addr: `${OP_HOST}:${OP_PORT}`,
    issuer: ISSUER,
    service: SERVICE_URL,
    access_token_ttl: ACCESS_TOKEN_TTL,
    access_token_format: ACCESS_TOKEN_FORMAT,
    rotate_refresh_tokens: ROTATE_REFRESH_TOKENS,
  });
});

if (DEMO_ENABLED) {
  const demoServer = http.createServer(demoHandler);
  servers.push(demoServer);
  demoServer.listen(DEMO_PORT, DEMO_HOST, () => {
    logLine({ msg: 'demo listening', addr: `${DEMO_HOST}:${DEMO_PORT}`, url: `${DEMO_PUBLIC_URL}/` });
  });
}

for (const s of servers) {
  s.on('error', (err) => {
    console.error(`cannot listen: ${err.message}`);
    process.exit(1);
  });
}

function shutdown(signal) {
  logLine({ msg: `shutting down on ${signal}` });
  let open = servers.length;
  for (const s of servers) {
    s.close(() => { open -= 1; if (open === 0) process.exit(0); });
    s.closeAllConnections?.();
  }
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
