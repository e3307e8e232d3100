// Downstream tokens (SPEC 6) from the real development provider: the session's own access
// token refreshed after it expires (the provider rotates refresh tokens: a refresh race
// would revoke the grant), RFC 8693 token exchange, client_credentials, and the service's
// own JWTs. These need POST /token (issue 4): every test here is skipped while the built
// binary answers 404 to it.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { after, test } from 'node:test';

import { Browser, decodeJwt, login } from './client.mjs';
import { USERS, sleep, startStack, testWithLogs } from './harness.mjs';

const TTL = 5; // seconds: the provider's access-token lifetime here, so refresh really happens

const stack = await startStack({
  opEnv: { OP_ACCESS_TOKEN_TTL: String(TTL) },
  tail: (op) => `
[[targets]]
url = "https://api.example.com/own/"
strategy = "access_token"

[[targets]]
url = "https://api.example.com/maps/"
strategy = "exchange"
audience = "maps"
scope = "read"
roles = ["gis"]

[[targets]]
url = "https://api.example.com/denied/"
strategy = "exchange"
audience = "denied"

[[targets]]
url = "https://api.example.com/reports/"
strategy = "client_credentials"
token_url = "${op.url('/token')}"
client_id = "service-a"
client_secret = "service-a-secret"
auth_method = "client_secret_post"
audience = "reports"
scope = "read"
transport = ["BEARER", "TOKEN_PARAMETER"]

[[targets]]
url = "https://api.example.com/internal/"
strategy = "jwt"
lifetime = "2m"
audience = "internal-api"
`,
});
after(async () => { await stack.stop(); });

// Skipped unless the binary has POST /token (404 = the route does not exist yet).
const probe = await fetch(stack.service.url('/token'), { method: 'POST' });
await probe.arrayBuffer();
const needsToken = probe.status === 404 ? 'needs /token (issue 4)' : false;

const it = testWithLogs(() => stack);

const returnURL = () => `${stack.demoOrigin}/`;

async function loggedIn(user) {
  const browser = new Browser();
  await login(browser, stack.service, { ...user, returnURL: returnURL() });
  return browser;
}

/** POST /token as a same-site frontend would (X-Requested-With). */
async function token(browser, target, headers = { 'x-requested-with': 'XMLHttpRequest' }) {
  const res = await browser.request(stack.service.url('/token'), {
    method: 'POST', json: true, form: { target }, headers,
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, headers: res.headers, body };
}

async function providerUserinfo(accessToken) {
  const res = await fetch(stack.op.url('/me'), { headers: { authorization: `Bearer ${accessToken}` } });
  await res.arrayBuffer();
  return res.status;
}

const refreshCount = () => stack.op.child.grep(/POST \/token 200 .*grant_type=refresh_token/).length;

it('a session outlives its provider access token (the idle timeout rules, not the token exp)', async () => {
  const browser = await loggedIn(USERS.alice);
  await sleep((TTL + 1) * 1000);
  const { body } = await browser.getJson(stack.service.url('/userinfo'));
  assert.equal(body.authenticated, true);
  assert.equal(body.name, 'alice');
});

test('POST /token exists in this binary', { skip: needsToken }, () => {
  assert.notEqual(probe.status, 404);
});

it('refreshes the session\'s access token once after it expires, also for a burst of requests', { skip: needsToken }, async () => {
  const browser = await loggedIn(USERS.alice);
  const first = await token(browser, 'https://api.example.com/own/x');
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.acceptedBy, [{ transportAs: ['BEARER'] }]);
  const t1 = first.body.token.value;
  const exp1 = decodeJwt(t1).payload.exp;
  assert.equal(Date.parse(first.body.token.expires) / 1000, exp1);
  assert.equal(await providerUserinfo(t1), 200);

  await sleep(Math.max(0, exp1 * 1000 - Date.now()) + 500);
  assert.ok(Date.now() > exp1 * 1000, 'the first token has expired');
  const before = refreshCount();
  const burst = await Promise.all(Array.from({ length: 6 }, () => token(browser, 'https://api.example.com/own/')));
  for (const r of burst) assert.equal(r.status, 200, JSON.stringify(r.body));
  const values = new Set(burst.map((r) => r.body.token.value));
  assert.equal(values.size, 1, 'one refreshed token for the whole burst');
  const [t2] = values;
  assert.notEqual(t2, t1);
  assert.ok(decodeJwt(t2).payload.exp * 1000 > Date.now());
  assert.equal(await providerUserinfo(t2), 200);
  assert.equal(refreshCount() - before, 1, 'one refresh_token grant at the provider');

  // The rotated refresh token was kept: the next expiry refreshes again.
  await sleep(Math.max(0, decodeJwt(t2).payload.exp * 1000 - Date.now()) + 500);
  const third = await token(browser, 'https://api.example.com/own/');
  assert.equal(third.status, 200, JSON.stringify(third.body));
  assert.notEqual(third.body.token.value, t2);
  assert.equal(await providerUserinfo(third.body.token.value), 200);
  assert.equal((await browser.getJson(stack.service.url('/userinfo'))).body.name, 'alice');
});

it('exchanges the user\'s token at the provider (RFC 8693) for a target audience', { skip: needsToken }, async () => {
  const browser = await loggedIn(USERS.alice);
  const res = await token(browser, 'https://api.example.com/maps/layers/1');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const { payload } = decodeJwt(res.body.token.value);
  assert.equal(payload.aud, 'maps');
  assert.equal(payload.sub, USERS.alice.sub);
  assert.equal(payload.scope, 'read');
  assert.equal(payload.iss, stack.op.issuer);
  assert.equal(Date.parse(res.body.token.expires) / 1000, payload.exp);
});

it('refuses targets the caller may not use, and reports a refusing provider as TOKEN_UNAVAILABLE', { skip: needsToken }, async () => {
  const bob = await loggedIn(USERS.bob);
  const maps = await token(bob, 'https://api.example.com/maps/');
  assert.equal(maps.status, 403, 'bob lacks the gis role');
  assert.equal(maps.body.error, 'TARGET_NOT_ALLOWED');
  for (const target of ['https://api.example.com/mapsx', 'https://api.example.com.evil.test/maps/', 'https://other.example.com/']) {
    const res = await token(bob, target);
    assert.equal(res.status, 403, target);
    assert.equal(res.body.error, 'TARGET_NOT_ALLOWED');
  }
  const alice = await loggedIn(USERS.alice);
  const denied = await token(alice, 'https://api.example.com/denied/');
  assert.equal(denied.status, 502, JSON.stringify(denied.body));
  assert.equal(denied.body.error, 'TOKEN_UNAVAILABLE');
});

it('gets one shared client_credentials token, cached for every caller', { skip: needsToken }, async () => {
  const alice = await loggedIn(USERS.alice);
  const bob = await loggedIn(USERS.bob);
  const a = await token(alice, 'https://api.example.com/reports/monthly');
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.deepEqual(a.body.acceptedBy, [{ transportAs: ['BEARER', 'TOKEN_PARAMETER'] }]);
  const { payload } = decodeJwt(a.body.token.value);
  assert.equal(payload.aud, 'reports');
  assert.equal(payload.client_id, 'service-a');
  assert.equal(payload.sub, 'service-a');
  const b = await token(bob, 'https://api.example.com/reports/');
  assert.equal(b.body.token.value, a.body.token.value, 'shared and cached');
});

it('signs its own JWTs (strategy jwt), verifiable with /.well-known/jwks.json', { skip: needsToken }, async () => {
  const browser = await loggedIn(USERS.alice);
  const res = await token(browser, 'https://api.example.com/internal/');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const jwks = await (await fetch(stack.service.url('/.well-known/jwks.json'))).json();
  const { header, payload } = decodeJwt(res.body.token.value);
  const jwk = jwks.keys.find((k) => k.kid === header.kid) ?? jwks.keys[0];
  assert.ok(jwk, 'a key in the JWKS');
  const [h, p, s] = res.body.token.value.split('.');
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const hash = `sha${header.alg.slice(2)}`;
  const ok = header.alg.startsWith('ES')
    ? crypto.verify(hash, Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))
    : crypto.verify(hash, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  assert.ok(ok, `signature verifies (${header.alg})`);
  assert.equal(payload.iss, stack.service.origin);
  assert.equal(payload.aud, 'internal-api');
  assert.equal(payload.sub, USERS.alice.sub);
  assert.equal(payload.name, 'alice');
  assert.deepEqual([...payload.roles].sort(), USERS.alice.roles);
  assert.ok(payload.exp - Math.floor(Date.now() / 1000) <= 120);
});

it('guards POST /token: login, same-site marker or allowed Origin', { skip: needsToken }, async () => {
  const anonymous = await token(new Browser(), 'https://api.example.com/own/');
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.error, 'UNAUTHORIZED');
  const browser = await loggedIn(USERS.alice);
  const bare = await token(browser, 'https://api.example.com/own/', {});
  assert.equal(bare.status, 403, 'cookie auth without X-Requested-With or Origin');
  assert.equal(bare.body.error, 'FORBIDDEN');
  const evil = await token(browser, 'https://api.example.com/own/', { origin: 'http://127.0.0.1:1' });
  assert.equal(evil.status, 403);
  assert.equal(evil.body.error, 'FORBIDDEN');
  const demo = await token(browser, 'https://api.example.com/own/', { origin: stack.demoOrigin });
  assert.equal(demo.status, 200, JSON.stringify(demo.body));
  assert.equal(demo.headers.get('access-control-allow-origin'), stack.demoOrigin);
  const missing = await browser.request(stack.service.url('/token'), {
    method: 'POST', json: true, form: {}, headers: { 'x-requested-with': 'x' },
  });
  assert.equal(missing.status, 400);
  assert.equal((await missing.json()).error, 'MISSING_PARAMETER');
});

it('lists the targets a caller may use on /token-targets', { skip: needsToken }, async () => {
  const anonymous = await new Browser().getJson(stack.service.url('/token-targets'));
  assert.equal(anonymous.status, 401);
  const checked = await new Browser().getJson(stack.service.url('/token-targets?check=true'));
  assert.equal(checked.status, 200);
  assert.equal(checked.body.error, 'UNAUTHORIZED');
  const alice = await (await loggedIn(USERS.alice)).getJson(stack.service.url('/token-targets'));
  assert.ok(alice.body.targets.includes('https://api.example.com/maps/'), JSON.stringify(alice.body));
  const bob = await (await loggedIn(USERS.bob)).getJson(stack.service.url('/token-targets'));
  assert.ok(!bob.body.targets.includes('https://api.example.com/maps/'), JSON.stringify(bob.body));
  assert.ok(bob.body.targets.includes('https://api.example.com/own/'), JSON.stringify(bob.body));
});
