// Bearer callers: the development provider's own access tokens presented to /userinfo as
// `Authorization: Bearer …` — a JWT (typ at+jwt, aud "identity") verified against the
// provider's JWKS when the provider has accept_bearer, and an opaque token checked by
// RFC 7662 introspection when it has introspection = true.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { Browser, decodeJwt, login, providerTokens } from './client.mjs';
import { USERS, freePort, startOp, startService, startStack, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);

before(async () => {
  stack = await startStack({ provider: 'accept_bearer = true\nbearer_audience = "identity"', demo: false });
  // The same provider behind a service that does not accept bearer tokens.
  stack.add('plain', await startService({
    dir: stack.dir,
    name: 'plain',
    providers: [{ op: stack.op, extra: 'accept_bearer = false' }],
    origins: [stack.demoOrigin],
  }));
  // A provider issuing opaque access tokens, and a service introspecting them.
  const introspectingPort = await freePort();
  const opaque = stack.add('opaqueOp', await startOp({
    name: 'opaque-op',
    dir: stack.dir,
    serviceUrl: `http://127.0.0.1:${introspectingPort}`,
    env: { OP_ACCESS_TOKEN_FORMAT: 'opaque' },
  }));
  stack.add('introspecting', await startService({
    dir: stack.dir,
    name: 'introspecting',
    port: introspectingPort,
    providers: [{ op: opaque, extra: 'accept_bearer = true\nintrospection = true\nbearer_audience = "identity"' }],
    origins: [stack.demoOrigin],
  }));
});
after(async () => { await stack?.stop(); });

async function bearer(service, token, extraHeaders = {}) {
  const res = await fetch(service.url('/userinfo'), {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...extraHeaders },
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

let jwtTokens;
async function aliceTokens() {
  jwtTokens ??= await providerTokens(new Browser(), stack.op, {
    ...USERS.alice, redirectUri: stack.service.url('/callback'),
  });
  return jwtTokens;
}

it('accepts the provider\'s JWT access token on /userinfo', async () => {
  const tokens = await aliceTokens();
  const { header, payload } = decodeJwt(tokens.access_token);
  assert.equal(header.typ, 'at+jwt');
  assert.equal(payload.aud, 'identity');

  const res = await bearer(stack.service, tokens.access_token);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.match(res.headers.get('cache-control'), /no-store/);
  assert.equal(res.body.authenticated, true);
  assert.equal(res.body.name, 'alice');
  assert.equal(res.body.subject, USERS.alice.sub);
  assert.equal(res.body.provider, 'local');
  assert.deepEqual([...res.body.roles].sort(), USERS.alice.roles);
  assert.deepEqual(res.body.groups, USERS.alice.groups);
  assert.deepEqual(res.body.attributes, { email: USERS.alice.email });
  assert.equal(Date.parse(res.body.expiresAt) / 1000, payload.exp, 'expiresAt is the token\'s exp');
});

it('refuses a tampered, an unsigned and a foreign token with 401 UNAUTHORIZED', async () => {
  const { access_token: token } = await aliceTokens();
  const [h, p, s] = token.split('.');
  const flipped = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
  const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
  for (const bad of [flipped, unsigned, 'not-a-token', `${h}.${p}`]) {
    const res = await bearer(stack.service, bad);
    assert.equal(res.status, 401, bad.slice(0, 20));
    assert.equal(res.body.error, 'UNAUTHORIZED');
  }
});

it('a bad bearer token is 401 even beside a valid session cookie', async () => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.bob, returnURL: `${stack.demoOrigin}/` });
  const cookie = browser.jar.header(stack.service.url('/userinfo'));
  const res = await bearer(stack.service, 'garbage', { cookie });
  assert.equal(res.status, 401);
  assert.equal(res.body.error, 'UNAUTHORIZED');
  // The cookie alone still works.
  assert.equal((await browser.getJson(stack.service.url('/userinfo'))).body.name, 'bob');
});

it('a service whose provider has accept_bearer = false answers 401 to any Bearer header', async () => {
  const { access_token: token } = await aliceTokens();
  const res = await bearer(stack.plain, token);
  assert.equal(res.status, 401);
  assert.equal(res.body.error, 'UNAUTHORIZED');
});

it('other Authorization schemes are ignored', async () => {
  const res = await fetch(stack.service.url('/userinfo'), {
    headers: { authorization: 'Basic aWRlbnRpdHk6eA==', accept: 'application/json' },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { authenticated: false });
});

it('an ID token is not an access token: refused as Bearer', async () => {
  const { id_token: idToken } = await aliceTokens();
  assert.equal(decodeJwt(idToken).payload.aud, 'identity');
  const res = await bearer(stack.service, idToken);
  assert.equal(res.status, 401, `ID token accepted as bearer: ${JSON.stringify(res.body)}`);
});

it('introspects an opaque access token (introspection = true)', async () => {
  const tokens = await providerTokens(new Browser(), stack.opaqueOp, {
    ...USERS.alice, redirectUri: stack.introspecting.url('/callback'),
  });
  assert.equal(tokens.access_token.split('.').length, 1, 'opaque');
  const res = await bearer(stack.introspecting, tokens.access_token);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.name, 'alice');
  assert.equal(res.body.subject, USERS.alice.sub);
  assert.deepEqual([...res.body.roles].sort(), USERS.alice.roles);
  const revoked = await fetch(stack.opaqueOp.url('/token/revocation'), {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('identity:identity-dev-secret').toString('base64')}`,
    },
    body: new URLSearchParams({ token: 'not-issued-here' }),
  });
  assert.equal(revoked.status, 200);
  const unknown = await bearer(stack.introspecting, 'not-issued-here');
  assert.equal(unknown.status, 401);
  assert.equal(unknown.body.error, 'UNAUTHORIZED');
});
