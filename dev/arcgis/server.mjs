// A development stand-in for an ArcGIS portal (ArcGIS Online / ArcGIS Enterprise
// `sharing/rest`) and a federated ArcGIS Server site, for ./dev/start and the interop tests.
// No public portal may be reached from here; every endpoint follows the public ArcGIS REST
// API reference page named beside it:
//
//   GET  /sharing/rest/oauth2/authorize  login form; authorization code with PKCE (S256) and state
//        https://developers.arcgis.com/rest/users-groups-and-items/authorize/
//   POST /sharing/rest/oauth2/token      grant_type=authorization_code (code, redirect_uri,
//        code_verifier, client_id[, client_secret]) and grant_type=refresh_token; answers
//        access_token, expires_in, username, refresh_token, refresh_token_expires_in
//        https://developers.arcgis.com/rest/users-groups-and-items/token/
//   POST /sharing/rest/community/self    f=json&token=… or X-Esri-Authorization: Bearer …;
//        answers the user (username, fullName, email, orgId, role, privileges, groups[])
//        https://developers.arcgis.com/rest/users-groups-and-items/self/
//   POST /sharing/rest/generateToken     request=getToken&serverUrl=…&token=…&f=json →
//        token, expires (epoch ms), ssl
//        https://developers.arcgis.com/rest/users-groups-and-items/generate-token/
//   POST /sharing/rest/oauth2/revokeToken  auth_token, client_id, token_type_hint → success
//        https://developers.arcgis.com/rest/users-groups-and-items/revoke-token/
//   GET  /sharing/rest/oauth2/signout    client_id, redirect_uri → 302 back (no reference page
//        for it was found; ArcGIS REST JS and the platform's sign-out use these two parameters)
//   GET  /sharing/rest/info?f=json       answers authInfo (as ArcGIS Server's rest/info,
//        https://developers.arcgis.com/rest/services-reference/enterprise/server-info/)
//   GET  /server/rest/services[/…]?token=…  the ArcGIS Server stand-in: answers when the token
//        is a server token generateToken issued for it (else 200 with error 499/498)
//
// Errors come back as ArcGIS sends them: HTTP 200 with {"error": {"code": 498, "message":
// "Invalid token.", "details": []}}. Tokens expire (ARCGIS_TOKEN_TTL seconds, default 1800).
//
// Environment: ARCGIS_PORT (9500), ARCGIS_URL (http://127.0.0.1:9500), ARCGIS_TOKEN_TTL.
// Apps: "identity-dev" (no secret, PKCE alone) and "identity-dev-confidential" (secret
// "identity-dev-secret"); redirect URIs are not restricted (development only).
// Users: jdoe / jdoe (org_publisher), admin / admin (org_admin).

import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';

const port = Number(process.env.ARCGIS_PORT ?? 9500);
const base = (process.env.ARCGIS_URL ?? `http://127.0.0.1:${port}`).replace(/\/$/, '');
const tokenTtl = Number(process.env.ARCGIS_TOKEN_TTL ?? 1800);

const clients = new Map([
  ['identity-dev', null],
  ['identity-dev-confidential', 'identity-dev-secret'],
]);
const users = new Map([
  ['jdoe', { password: 'jdoe', fullName: 'Jane Doe', email: 'jane@example.com', role: 'org_publisher',
    privileges: ['portal:user:createItem', 'portal:publisher:publishFeatures'], groups: ['Field crew', 'Editors'] }],
  ['admin', { password: 'admin', fullName: 'Portal Admin', email: 'admin@example.com', role: 'org_admin',
    privileges: ['portal:admin:viewUsers', 'portal:user:createItem'], groups: ['Administrators'] }],
]);
const orgId = 'DEVORG0123456789';

const codes = new Map(); // code → {clientId, redirectUri, challenge, username, expires}
const accessTokens = new Map(); // token → {username, expires (ms)}
const refreshTokens = new Map(); // token → {username, clientId}
const serverTokens = new Map(); // token → {serverUrl, expires (ms)}

const random = (bytes = 32) => randomBytes(bytes).toString('base64url');
const send = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
};
const arcgisError = (res, code, message) => send(res, 200, { error: { code, message, details: [] } });
const html = (res, status, text) => {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
};
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readForm(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; if (body.length > 65536) req.destroy(); });
    req.on('end', () => resolve(new URLSearchParams(body)));
  });
}

function issue(username, clientId, refreshToken) {
  const access = `${random(48)}..`;
  accessTokens.set(access, { username, expires: Date.now() + tokenTtl * 1000 });
  const answer = { access_token: access, expires_in: tokenTtl, username, ssl: false };
  if (!refreshToken) {
    const refresh = random();
    refreshTokens.set(refresh, { username, clientId });
    Object.assign(answer, { refresh_token: refresh, refresh_token_expires_in: 1209600 });
  }
  return answer;
}

function userOf(token) {
  const entry = token && accessTokens.get(token);
  if (!entry) return null;
  if (entry.expires <= Date.now()) { accessTokens.delete(token); return null; }
  return entry.username;
}

function selfOf(username) {
  const user = users.get(username);
  return {
    username, fullName: user.fullName, email: user.email, orgId, role: user.role,
    privileges: user.privileges, access: 'org',
    groups: user.groups.map((title, i) => ({ id: `group${i}`, title, owner: 'admin', access: 'org' })),
  };
}

function loginForm(params, problem) {
  const hidden = [...params].map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`).join('');
  return `<!doctype html><html><head><title>Sign in – ArcGIS (stand-in)</title></head><body>
<h1>Sign in to ArcGIS (stand-in)</h1>${problem ? `<p role="alert">${escape(problem)}</p>` : ''}
<form method="post" action="/sharing/rest/oauth2/authorize">${hidden}
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign In</button></form></body></html>`;
}

async function authorize(req, res, url) {
  const params = req.method === 'POST' ? await readForm(req) : url.searchParams;
  const clientId = params.get('client_id');
  const redirectUri = params.get('redirect_uri');
  if (!clients.has(clientId) || !redirectUri) return html(res, 400, '<p>Invalid client_id or redirect_uri</p>');
  if (params.get('response_type') !== 'code') return html(res, 400, '<p>Only response_type=code is offered</p>');
  if (params.get('code_challenge_method') !== 'S256' || !params.get('code_challenge')) {
    return html(res, 400, '<p>PKCE (code_challenge with S256) is required</p>');
  }
  if (req.method !== 'POST') return html(res, 200, loginForm(url.searchParams));
  const username = params.get('username');
  const user = users.get(username);
  const visible = new URLSearchParams([...params].filter(([k]) => k !== 'username' && k !== 'password'));
  if (!user || user.password !== params.get('password')) return html(res, 200, loginForm(visible, 'Invalid username or password.'));
  const code = random(24);
  codes.set(code, { clientId, redirectUri, challenge: params.get('code_challenge'), username, expires: Date.now() + 60000 });
  const back = new URL(redirectUri);
  back.searchParams.set('code', code);
  if (params.get('state')) back.searchParams.set('state', params.get('state'));
  res.writeHead(302, { location: back.toString() });
  res.end();
}

function token(res, form) {
  const clientId = form.get('client_id');
  if (!clients.has(clientId)) return arcgisError(res, 400, 'Invalid client_id');
  const secret = clients.get(clientId);
  if (secret !== null && form.get('client_secret') !== secret) return arcgisError(res, 400, 'Invalid client_secret');
  if (form.get('grant_type') === 'authorization_code') {
    const grant = codes.get(form.get('code') ?? '');
    codes.delete(form.get('code') ?? '');
    const challenge = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
    if (!grant || grant.expires < Date.now() || grant.clientId !== clientId
      || grant.redirectUri !== form.get('redirect_uri') || grant.challenge !== challenge) {
      return arcgisError(res, 400, 'Invalid authorization code');
    }
    return send(res, 200, issue(grant.username, clientId));
  }
  if (form.get('grant_type') === 'refresh_token') {
    const entry = refreshTokens.get(form.get('refresh_token') ?? '');
    if (!entry || entry.clientId !== clientId) return arcgisError(res, 498, 'Invalid refresh_token');
    return send(res, 200, issue(entry.username, clientId, form.get('refresh_token')));
  }
  return arcgisError(res, 400, 'Unsupported grant_type');
}

function generateToken(res, form) {
  if (form.get('request') !== 'getToken' || !form.get('serverUrl')) return arcgisError(res, 400, 'Unable to generate token.');
  if (!userOf(form.get('token'))) return arcgisError(res, 498, 'Invalid token.');
  const serverToken = random(40);
  const expires = Date.now() + Math.min(tokenTtl, 3600) * 1000;
  serverTokens.set(serverToken, { serverUrl: form.get('serverUrl'), expires });
  return send(res, 200, { token: serverToken, expires, ssl: false });
}

function server(res, url) {
  const tokens = url.searchParams.getAll('token');
  if (tokens.length === 0) return arcgisError(res, 499, 'Token Required');
  if (tokens.length > 1) return arcgisError(res, 400, 'More than one token');
  const entry = serverTokens.get(tokens[0]);
  if (!entry || entry.expires <= Date.now() || !`${base}${url.pathname}`.startsWith(entry.serverUrl.replace(/\/$/, ''))) {
    return arcgisError(res, 498, 'Invalid token.');
  }
  return send(res, 200, { currentVersion: 11.3, folders: [], services: [{ name: 'Parcels', type: 'FeatureServer' }] });
}

const serverHandle = http.createServer(async (req, res) => {
  const url = new URL(req.url, base);
  const path = url.pathname.replace(/\/$/, '');
  try {
    if (path === '/sharing/rest/oauth2/authorize') return await authorize(req, res, url);
    if (path === '/sharing/rest/info' && req.method === 'GET') {
      return send(res, 200, { owningSystemUrl: base, authInfo: { isTokenBasedSecurity: true, tokenServicesUrl: `${base}/sharing/rest/generateToken` } });
    }
    if (path === '/sharing/rest/oauth2/signout' && req.method === 'GET') {
      const back = url.searchParams.get('redirect_uri');
      if (!back) return html(res, 200, '<p>Signed out of ArcGIS (stand-in).</p>');
      res.writeHead(302, { location: back });
      return res.end();
    }
    if (path.startsWith('/server/rest/services') && req.method === 'GET') return server(res, url);
    if (req.method !== 'POST') return arcgisError(res, 400, 'Unable to process request.');
    const form = await readForm(req);
    switch (path) {
      case '/sharing/rest/oauth2/token': return token(res, form);
      case '/sharing/rest/generateToken': return generateToken(res, form);
      case '/sharing/rest/oauth2/revokeToken':
        refreshTokens.delete(form.get('auth_token') ?? '');
        accessTokens.delete(form.get('auth_token') ?? '');
        return send(res, 200, { success: true });
      case '/sharing/rest/community/self': {
        const header = req.headers['x-esri-authorization'];
        const token = form.get('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : null);
        if (!token) return arcgisError(res, 499, 'Token Required');
        const username = userOf(token);
        return username ? send(res, 200, selfOf(username)) : arcgisError(res, 498, 'Invalid token.');
      }
      default: return arcgisError(res, 400, 'Unable to process request.');
    }
  } catch (error) {
    console.error('arcgis stand-in:', error);
    return arcgisError(res, 500, 'Unable to process request.');
  }
});

serverHandle.listen(port, '127.0.0.1', () => {
  console.log(`ArcGIS portal stand-in at ${base}/sharing/rest (server stand-in at ${base}/server/rest/services)`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => serverHandle.close(() => process.exit(0)));
