// config/default.toml as shipped, against the development provider as dev/start runs it:
// only the addresses are overridden (free ports instead of 8080/9400/3000, by environment
// variables), so a wrong client secret, scope, claim path or origin list shows up here.

import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before } from 'node:test';

import { Browser, login, providerTokens } from './client.mjs';
import { REPO, Stack, USERS, freePort, startArcgis, startOp, startService, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);

before(async () => {
  const [servicePort, demoPort] = [await freePort(), await freePort()];
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  const op = await startOp({ serviceUrl, demoPort });
  const demo = `http://127.0.0.1:${demoPort}`;
  stack = new Stack(path.dirname(op.child.logFile), { op, demoOrigin: demo });
  stack.add('arcgis', await startArcgis({ dir: stack.dir }));
  stack.add('service', await startService({
    dir: stack.dir,
    port: servicePort,
    configFile: path.join(REPO, 'config', 'default.toml'),
    env: {
      IDENTITY__SERVER__BIND: `127.0.0.1:${servicePort}`,
      IDENTITY__SERVER__PUBLIC_URL: serviceUrl,
      IDENTITY__PROVIDERS__LOCAL__ISSUER: op.issuer,
      IDENTITY__PROVIDERS__ARCGIS__PORTAL_URL: stack.arcgis.portalUrl,
      IDENTITY__TARGETS__1__URL: stack.arcgis.serverUrl,
      IDENTITY__REDIRECTS__ALLOWED_ORIGINS: JSON.stringify([demo]),
      IDENTITY__CORS__ALLOWED_ORIGINS: JSON.stringify([demo]),
    },
  }));
});
after(async () => { await stack?.stop(); });

it('logs alice in with the shipped client secret, scopes and claim paths', async () => {
  const browser = new Browser();
  await login(browser, stack.service, { ...USERS.alice, provider: 'local', returnURL: `${stack.demoOrigin}/` });
  const info = await browser.getJson(stack.service.url('/userinfo'), { headers: { origin: stack.demoOrigin } });
  assert.equal(info.headers.get('access-control-allow-origin'), stack.demoOrigin);
  assert.equal(info.body.name, 'alice');
  assert.equal(info.body.provider, 'local');
  assert.deepEqual([...info.body.roles].sort(), USERS.alice.roles);
  assert.deepEqual(info.body.groups, USERS.alice.groups);
  assert.deepEqual(info.body.attributes, { email: USERS.alice.email });
  const meta = await browser.getJson(stack.service.url('/metadata'));
  assert.deepEqual(meta.body.providers, [
    { id: 'local', name: 'Local login', url: stack.op.issuer },
    { id: 'arcgis', name: 'ArcGIS (stand-in)', url: stack.arcgis.portalUrl },
  ]);
});

it('accepts the provider\'s access tokens as Bearer (accept_bearer, bearer_audience "identity")', async () => {
  const tokens = await providerTokens(new Browser(), stack.op, { ...USERS.bob, redirectUri: stack.service.url('/callback') });
  const res = await fetch(stack.service.url('/userinfo'), {
    headers: { authorization: `Bearer ${tokens.access_token}`, accept: 'application/json' },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.name, 'bob');
  assert.deepEqual(body.roles, USERS.bob.roles);
});
