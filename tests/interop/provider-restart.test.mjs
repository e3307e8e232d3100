// The development provider goes down and comes back with a new signing key (it makes a new
// one on every start): existing sessions keep working meanwhile, and logins and
// back-channel logouts signed with the new key are accepted (JWKS refetch on unknown kid).

import assert from 'node:assert/strict';
import { after, before } from 'node:test';

import { Browser, login } from './client.mjs';
import { USERS, startOp, startStack, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });

const returnURL = () => `${stack.demoOrigin}/`;
let alice;

it('sessions keep working while the provider is down', async () => {
  alice = new Browser();
  await login(alice, stack.service, { ...USERS.alice, returnURL: returnURL() });
  const oldKid = (await (await fetch(stack.op.url('/jwks'))).json()).keys[0].kid;
  await stack.op.stop();
  const info = await alice.getJson(stack.service.url('/userinfo'));
  assert.equal(info.status, 200);
  assert.equal(info.body.name, 'alice');

  const restarted = await startOp({
    name: 'op-restarted', port: stack.op.port, serviceUrl: stack.service.origin, dir: stack.dir,
    demoPort: Number(new URL(stack.demoOrigin).port),
  });
  stack.add('op', restarted);
  const newKid = (await (await fetch(stack.op.url('/jwks'))).json()).keys[0].kid;
  assert.notEqual(newKid, oldKid, 'the restarted provider signs with a new key');
});

it('after the restart, a login signed with the new key works and old sessions stay', async () => {
  const bob = new Browser();
  await login(bob, stack.service, { ...USERS.bob, returnURL: returnURL() });
  assert.equal((await bob.getJson(stack.service.url('/userinfo'))).body.name, 'bob');
  assert.equal((await alice.getJson(stack.service.url('/userinfo'))).body.name, 'alice');

  // A back-channel logout token signed with the new key ends bob's session.
  const res = await fetch(stack.op.url('/dev/logout'), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'username=bob',
  });
  const answer = await res.json();
  assert.ok(answer.logout_tokens.length >= 1 && answer.logout_tokens.every((t) => t.sent), JSON.stringify(answer));
  assert.deepEqual((await bob.getJson(stack.service.url('/userinfo'))).body, { authenticated: false });
});

it('login while the provider is down answers PROVIDER_UNAVAILABLE (SPEC 7)', async () => {
  await stack.op.stop();
  // Discovery younger than 1 s is trusted for a login (a burst shares one probe).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const res = await new Browser().getJson(stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL())}`));
  assert.equal(res.status, 502, `status ${res.status}, Location ${res.headers.get('location')}`);
  assert.equal(res.body.error, 'PROVIDER_UNAVAILABLE');
});
