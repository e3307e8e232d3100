// Login through the real development provider (oidc-provider 9) and what /userinfo says
// afterwards: the authorization request, the login form, the callback, the cookie, claims.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before } from 'node:test';

import { Browser, describeTrail, login, parseForm } from './client.mjs';
import { USERS, startStack, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

const returnURL = () => `${stack.demoOrigin}/app?tab=1`;

it('sends the browser to the provider with code flow, PKCE S256, state and nonce', async () => {
  const browser = new Browser();
  const res = await browser.request(stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL())}`));
  assert.equal(res.status, 302);
  const location = new URL(res.headers.get('location'));
  assert.equal(`${location.origin}${location.pathname}`, stack.op.url('/auth'));
  const q = location.searchParams;
  assert.equal(q.get('response_type'), 'code');
  assert.equal(q.get('client_id'), 'identity');
  assert.equal(q.get('redirect_uri'), stack.service.url('/callback'));
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.ok(q.get('state')?.length >= 22, 'state is long enough');
  assert.ok(q.get('nonce')?.length >= 22, 'nonce is long enough');
  assert.deepEqual(q.get('scope').split(' ').sort(), ['email', 'offline_access', 'openid', 'profile']);
});

it('logs alice in through the real login form and /userinfo names her', async () => {
  const browser = new Browser();
  const { finalUrl, trail, loginPages } = await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  assert.equal(finalUrl, returnURL(), describeTrail(trail));
  assert.equal(loginPages.length, 1, 'one login form');
  // The provider's authorization response carries iss (RFC 9207) and reaches /callback.
  const callback = trail.find((s) => s.url.startsWith(stack.service.url('/callback')));
  assert.ok(callback, describeTrail(trail));
  const cq = new URL(callback.url).searchParams;
  assert.equal(cq.get('iss'), stack.op.issuer);
  assert.ok(cq.get('code'));
  assert.equal(callback.status, 302);

  const cookie = browser.jar.get('ctIDENTITY');
  assert.ok(cookie, 'session cookie set');
  assert.equal(cookie.httpOnly, true, cookie.raw);
  assert.equal(cookie.sameSite?.toLowerCase(), 'lax', cookie.raw);
  assert.equal(cookie.path, '/', cookie.raw);
  assert.equal(cookie.secure, false, 'http public_url: not Secure');
  assert.equal(cookie.expires, undefined, 'a browser-session cookie');

  const info = await browser.getJson(stack.service.url('/userinfo'));
  assert.equal(info.status, 200);
  assert.match(info.headers.get('cache-control'), /no-store/);
  assert.match(info.headers.get('content-type'), /^application\/json/);
  const body = info.body;
  assert.equal(body.authenticated, true);
  assert.equal(body.name, 'alice');
  assert.equal(body.subject, USERS.alice.sub);
  assert.equal(body.provider, 'local');
  assert.deepEqual([...body.roles].sort(), USERS.alice.roles);
  assert.deepEqual(body.groups, USERS.alice.groups);
  assert.deepEqual(body.attributes, { email: USERS.alice.email });
  const expiresAt = Date.parse(body.expiresAt);
  assert.match(body.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const idle = expiresAt - Date.now();
  assert.ok(idle > 29 * 60 * 1000 && idle <= 30 * 60 * 1000 + 2000, `expiresAt ~ now + 30m, got ${body.expiresAt}`);
});

it('gives bob his own roles, groups and email', async () => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.bob, returnURL: returnURL() });
  const { body } = await browser.getJson(stack.service.url('/userinfo'));
  assert.equal(body.authenticated, true);
  assert.equal(body.name, 'bob');
  assert.equal(body.subject, USERS.bob.sub);
  assert.deepEqual(body.roles, USERS.bob.roles);
  assert.deepEqual(body.groups, USERS.bob.groups);
  assert.deepEqual(body.attributes, { email: USERS.bob.email });
});

it('keeps sessions in Redis under the configured key prefix, never under the cookie value', async (t) => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  let keys;
  try {
    const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
    keys = execFileSync('redis-cli', ['-h', url.hostname, '-p', url.port || '6379', '--scan', '--pattern', `${stack.service.keyPrefix}*`], { encoding: 'utf8' })
      .split('\n').filter(Boolean);
  } catch {
    t.skip('redis-cli is not available');
    return;
  }
  assert.ok(keys.some((k) => k.startsWith(`${stack.service.keyPrefix}session:`)), keys.join('\n'));
  const ticket = browser.jar.get('ctIDENTITY').value;
  for (const part of [ticket, ...ticket.split('.')]) {
    assert.ok(!keys.some((k) => k.includes(part)), 'no key contains the cookie or a part of it');
  }
});

it('a wrong password shows the form again with an error and logs nobody in', async () => {
  const browser = new Browser();
  const start = await browser.follow(stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL())}`));
  const form = parseForm(start.html, start.url, 'login-form');
  assert.ok(form, 'login form');
  const again = await browser.follow({ url: form.action, method: 'POST', form: { login: 'alice', password: 'nope' } });
  assert.equal(again.res.status, 200);
  assert.match(again.html, /id="error"[^>]*>Invalid username or password\./);
  const { body } = await browser.getJson(stack.service.url('/userinfo'));
  assert.deepEqual(body, { authenticated: false });
});

it('Cancel at the provider (access_denied) ends in LOGIN_FAILED and no session', async () => {
  const browser = new Browser();
  const start = await browser.follow(stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL())}`));
  const cancel = /<a id="cancel" href="([^"]+)"/.exec(start.html);
  assert.ok(cancel, 'cancel link');
  const end = await browser.follow(new URL(cancel[1], start.url).href);
  assert.ok(end.url.startsWith(stack.service.url('/callback')), describeTrail(end.trail));
  assert.equal(new URL(end.url).searchParams.get('error'), 'access_denied');
  assert.equal(end.res.status, 400);
  assert.match(end.res.headers.get('content-type'), /^text\/html/);
  assert.match(end.html, /LOGIN_FAILED/);
  // The same failure as JSON for a non-browser caller.
  const json = await browser.getJson(end.url);
  assert.equal(json.body.error, 'LOGIN_FAILED');
  const { body } = await browser.getJson(stack.service.url('/userinfo'));
  assert.deepEqual(body, { authenticated: false });
});

it('a replayed callback (state already used) is refused and keeps the session', async () => {
  const browser = new Browser();
  const { trail } = await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  const callback = trail.find((s) => s.url.startsWith(stack.service.url('/callback')));
  const replay = await browser.getJson(callback.url);
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, 'LOGIN_FAILED');
  const { body } = await browser.getJson(stack.service.url('/userinfo'));
  assert.equal(body.name, 'alice');
});

it('a second login in the same browser reuses the provider session (SSO, no form)', async () => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  const first = browser.jar.get('ctIDENTITY').value;
  const again = await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  assert.equal(again.loginPages.length, 0, 'no login form the second time');
  const second = browser.jar.get('ctIDENTITY').value;
  assert.notEqual(second, first, 'a new session id for every login');
  const old = await browser.getJson(stack.service.url('/userinfo'), { headers: { cookie: `ctIDENTITY=${first}` } });
  assert.deepEqual(old.body, { authenticated: false }, 'the replaced session is gone');
});

it('prompt=login and login_hint reach the provider', async () => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  const step = await browser.follow(
    stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL())}&prompt=login&login_hint=bob`),
  );
  const form = parseForm(step.html ?? '', step.url, 'login-form');
  assert.ok(form, `prompt=login shows the form despite the provider session:\n${describeTrail(step.trail)}`);
  assert.equal(form.fields.login, 'bob');
});

it('/health/ready and /metadata describe the provider', async () => {
  const browser = new Browser();
  const ready = await browser.getJson(stack.service.url('/health/ready'));
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body, { ready: true, checks: { store: 'ok', providers: { local: 'ok' } } });
  const meta = await browser.getJson(stack.service.url('/metadata'));
  assert.equal(meta.status, 200);
  assert.equal(meta.body.name, 'identity-service');
  assert.deepEqual(meta.body.providers, [{ id: 'local', name: 'Local login', url: stack.op.issuer }]);
});

it('answers the demo origin with credentialed CORS, and other origins without', async () => {
  const browser = new Browser();
  const allowed = await browser.request(stack.service.url('/userinfo'), {
    json: true, headers: { origin: stack.demoOrigin },
  });
  assert.equal(allowed.headers.get('access-control-allow-origin'), stack.demoOrigin);
  assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
  const preflight = await browser.request(stack.service.url('/token'), {
    method: 'OPTIONS',
    headers: {
      origin: stack.demoOrigin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'x-requested-with',
    },
  });
  assert.ok(preflight.status < 300, `preflight ${preflight.status}`);
  assert.equal(preflight.headers.get('access-control-allow-origin'), stack.demoOrigin);
  const other = await browser.request(stack.service.url('/userinfo'), {
    json: true, headers: { origin: 'http://127.0.0.1:1' },
  });
  // (No Allow-Origin is what keeps the browser from reading the answer.)
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});
