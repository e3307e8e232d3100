// Logout against the real development provider: RP-initiated (/logout?returnURL → the
// provider's end_session_endpoint → /logout/callback → returnURL) and provider-initiated
// logouts that reach the service by back-channel (POST /backchannel-logout); and the
// session's refresh token revoked at the provider by the logout (RFC 7009, SPEC 11).

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { Browser, describeTrail, followLogout, login, parseForm } from './client.mjs';
import { USERS, sleep, startStack, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);
const ID_TOKEN_TTL = 3; // seconds: RP-initiated logout must work with an expired id_token_hint too
before(async () => { stack = await startStack({ opEnv: { OP_ID_TOKEN_TTL: String(ID_TOKEN_TTL) } }); });
after(async () => { await stack?.stop(); });

const returnURL = () => `${stack.demoOrigin}/`;

async function loggedIn(user) {
  const browser = new Browser();
  await login(browser, stack.service, { ...user, returnURL: returnURL() });
  const ticket = browser.jar.get('ctIDENTITY')?.value;
  assert.ok(ticket, 'logged in');
  return { browser, ticket };
}

async function userinfoWith(ticket) {
  const res = await fetch(stack.service.url('/userinfo'), {
    headers: { cookie: `ctIDENTITY=${ticket}`, accept: 'application/json' },
  });
  return res.json();
}

/** Polls until `ticket`'s session is gone (back-channel logout is asynchronous at the OP). */
async function sessionEnds(ticket, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const body = await userinfoWith(ticket);
    if (body.authenticated === false) return body;
    if (Date.now() > deadline) return body;
    await sleep(50);
  }
}

it('RP-initiated logout goes through the provider and comes back to returnURL', async () => {
  const { browser, ticket } = await loggedIn(USERS.alice);
  assert.equal((await userinfoWith(ticket)).name, 'alice');

  const first = await browser.request(stack.service.url(`/logout?returnURL=${encodeURIComponent(returnURL())}`));
  assert.equal(first.status, 302);
  const location = new URL(first.headers.get('location'));
  assert.equal(`${location.origin}${location.pathname}`, stack.op.url('/session/end'));
  const q = location.searchParams;
  assert.ok(q.get('id_token_hint'), 'id_token_hint');
  assert.equal(q.get('client_id'), 'identity');
  assert.equal(q.get('post_logout_redirect_uri'), stack.service.url('/logout/callback'));
  assert.ok(q.get('state'), 'state');
  assert.equal(browser.jar.get('ctIDENTITY'), undefined, 'the cookie is cleared at once');
  assert.deepEqual(await userinfoWith(ticket), { authenticated: false }, 'the session is gone at once');

  const end = await followLogout(browser, location.href, {
    stop: (url) => new URL(url).origin === stack.demoOrigin,
  });
  assert.ok(end.stopped, `back at the demo:\n${describeTrail(end.trail)}\n${end.html?.slice(0, 500)}`);
  assert.equal(end.url, returnURL());
  const viaCallback = end.trail.find((s) => s.url.startsWith(stack.service.url('/logout/callback')));
  assert.ok(viaCallback, describeTrail(end.trail));
  assert.equal(viaCallback.status, 302);

  // The provider session is over too: a new login asks for the password again.
  const again = await login(browser, stack.service, { ...USERS.alice, returnURL: returnURL() });
  assert.equal(again.loginPages.length, 1, 'the provider asks again');
  // The provider also announced the logout by back-channel, for a session already gone: 200.
  assert.deepEqual(stack.op.child.grep(/backchannel-logout FAILED/), []);
});

it('RP-initiated logout works after the ID token (the id_token_hint) has expired', async () => {
  const { browser, ticket } = await loggedIn(USERS.bob);
  await sleep((ID_TOKEN_TTL + 1) * 1000);
  const end = await followLogout(browser, stack.service.url(`/logout?returnURL=${encodeURIComponent(returnURL())}`), {
    stop: (url) => new URL(url).origin === stack.demoOrigin,
  });
  assert.ok(end.stopped, `back at the demo:\n${describeTrail(end.trail)}\n${end.html?.slice(0, 500)}`);
  assert.equal(end.url, returnURL());
  assert.deepEqual(await userinfoWith(ticket), { authenticated: false });
});

it('logout without returnURL answers JSON with the endSessionURL', async () => {
  const { browser, ticket } = await loggedIn(USERS.alice);
  const res = await browser.getJson(stack.service.url('/logout'));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('cache-control'), /no-store/);
  assert.equal(res.body.success, true);
  assert.ok(res.body.endSessionURL.startsWith(stack.op.url('/session/end?')), res.body.endSessionURL);
  assert.deepEqual(await userinfoWith(ticket), { authenticated: false });
  // A second logout, without a session, is not an error.
  const again = await browser.getJson(stack.service.url('/logout'));
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { success: true });
});

it('OP-initiated logout (POST /dev/logout) reaches us by back-channel and ends every session of the user', async () => {
  const alice1 = await loggedIn(USERS.alice);
  const alice2 = await loggedIn(USERS.alice); // a second browser: another provider session
  const bob = await loggedIn(USERS.bob);

  const res = await fetch(stack.op.url('/dev/logout'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'username=alice',
  });
  assert.equal(res.status, 200);
  const answer = await res.json();
  assert.ok(answer.logout_tokens.length >= 2, JSON.stringify(answer));
  for (const sent of answer.logout_tokens) assert.equal(sent.sent, true, JSON.stringify(sent));

  assert.deepEqual(await sessionEnds(alice1.ticket), { authenticated: false });
  assert.deepEqual(await sessionEnds(alice2.ticket), { authenticated: false });
  assert.equal((await userinfoWith(bob.ticket)).name, 'bob', "bob's session stays");
  const accepted = stack.service.child.grep(/\/backchannel-logout.*status=200/);
  assert.ok(accepted.length >= 2, 'the service logged the back-channel requests as 200');
});

it('a sub-only logout token (no sid) ends every session of that subject', async () => {
  const alice = await loggedIn(USERS.alice);
  const bob = await loggedIn(USERS.bob);
  const res = await fetch(stack.op.url('/dev/logout'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'username=alice&sid_in_token=false',
  });
  const answer = await res.json();
  assert.ok(answer.logout_tokens.length >= 1 && answer.logout_tokens.every((s) => s.sent), JSON.stringify(answer));
  assert.deepEqual(await sessionEnds(alice.ticket), { authenticated: false });
  assert.equal((await userinfoWith(bob.ticket)).name, 'bob');
});

it('signing out at the provider itself (its own confirmation page) ends the session by back-channel', async () => {
  const { browser, ticket } = await loggedIn(USERS.alice);
  // The user opens the provider's end-session page directly (no id_token_hint): it asks.
  const page = await browser.follow(stack.op.url('/session/end'));
  assert.equal(page.res.status, 200);
  assert.match(page.html, /id="logout-yes"/);
  const form = parseForm(page.html, page.url, 'op.logoutForm');
  assert.ok(form, 'logout form');
  const done = await browser.follow({ url: form.action, method: form.method, form: { ...form.fields, logout: 'yes' } });
  assert.match(done.html ?? '', /id="signed-out"/, describeTrail(done.trail));
  assert.deepEqual(await sessionEnds(ticket), { authenticated: false });
});

it('a forged logout token is refused with INVALID_LOGOUT_TOKEN and ends nothing', async () => {
  const { ticket } = await loggedIn(USERS.alice);
  const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'logout+jwt' })).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(JSON.stringify({
    iss: stack.op.issuer,
    aud: 'identity',
    iat: now,
    exp: now + 60,
    jti: `forged-${now}`,
    sub: USERS.alice.sub,
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
  })).toString('base64url');
  const res = await fetch(stack.service.url('/backchannel-logout'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `logout_token=${header}.${payload}.`,
  });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'INVALID_LOGOUT_TOKEN');
  assert.equal((await userinfoWith(ticket)).name, 'alice');
});

it('logout revokes the session\'s refresh token at the provider (RFC 7009)', async () => {
  const { browser, ticket } = await loggedIn(USERS.alice);
  const issued = await (await fetch(stack.op.url(`/dev/refresh-tokens?username=${USERS.alice.username}`))).json();
  const refreshToken = issued.refresh_tokens.at(-1);
  assert.ok(refreshToken, 'the provider issued the session a refresh token');
  const client = `Basic ${Buffer.from('identity:identity-dev-secret').toString('base64')}`;
  const atProvider = (path, form) => fetch(stack.op.url(path), {
    method: 'POST',
    headers: { authorization: client, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
  });
  const introspected = await (await atProvider('/token/introspection', { token: refreshToken })).json();
  assert.equal(introspected.active, true, 'valid before the logout');

  // Without returnURL: no trip to the provider's end-session endpoint, so only the
  // service's revocation can end the grant.
  const logout = await browser.request(stack.service.url('/logout'), { json: true });
  assert.equal(logout.status, 200);
  assert.deepEqual(await userinfoWith(ticket), { authenticated: false });

  const after = await (await atProvider('/token/introspection', { token: refreshToken })).json();
  assert.equal(after.active, false, 'revoked at the provider');
  const refresh = await atProvider('/token', { grant_type: 'refresh_token', refresh_token: refreshToken });
  assert.equal(refresh.status, 400);
  assert.equal((await refresh.json()).error, 'invalid_grant', 'the refresh token no longer works');
  assert.match(stack.logTails(), /\/token\/revocation 200/, 'the service called the revocation endpoint');
});
