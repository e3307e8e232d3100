// private_key_jwt against the real development provider (issue 9 point 19): the code
// exchange must carry client_id once, since oidc-provider refuses repeated parameters
// (RFC 6749 section 3.2) and the login then fails.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

import { Browser, describeTrail, login } from './client.mjs';
import { REPO, Stack, USERS, freePort, serviceConfig, startOp, startService, testWithLogs } from './harness.mjs';

let stack;
const it = testWithLogs(() => stack);

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-'));
  const keyFile = path.join(REPO, 'tests', 'fixtures', 'client-rsa.pem');
  const jwk = crypto.createPublicKey(fs.readFileSync(keyFile)).export({ format: 'jwk' });
  const jwksFile = path.join(dir, 'client-jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid: 'client-rsa', alg: 'RS256', use: 'sig' }] }));
  const [servicePort, appPort] = [await freePort(), await freePort()];
  const op = await startOp({
    serviceUrl: `http://127.0.0.1:${servicePort}`,
    dir,
    env: { OP_IDENTITY_AUTH_METHOD: 'private_key_jwt', OP_IDENTITY_JWKS_FILE: jwksFile },
  });
  const origin = `http://127.0.0.1:${appPort}`;
  const keyPrefix = `interop:${crypto.randomBytes(6).toString('hex')}:`;
  const configFile = path.join(dir, 'service.toml');
  const config = serviceConfig({ port: servicePort, providers: [{ op }], origins: [origin], keyPrefix })
    .replace('client_secret = "identity-dev-secret"',
      `auth_method = "private_key_jwt"\nprivate_key_file = ${JSON.stringify(keyFile)}`);
  fs.writeFileSync(configFile, config);
  let service;
  try {
    service = await startService({ port: servicePort, dir, configFile });
  } catch (error) {
    await op.stop();
    throw error;
  }
  stack = new Stack(dir, { op, service, demoOrigin: origin });
});
after(async () => { await stack?.stop(); });

it('logs alice in with private_key_jwt client authentication', async () => {
  const browser = new Browser();
  const returnURL = `${stack.demoOrigin}/app`;
  const { finalUrl, trail } = await login(browser, stack.service, { ...USERS.alice, returnURL });
  assert.equal(finalUrl, returnURL, describeTrail(trail));
  const info = await browser.getJson(stack.service.url('/userinfo'));
  assert.equal(info.body.authenticated, true, JSON.stringify(info.body));
  assert.equal(info.body.name, 'alice');
});

it('logout revokes the refresh token with a private_key_jwt client assertion (RFC 7009)', async () => {
  const browser = new Browser();
  const returnURL = `${stack.demoOrigin}/app`;
  await login(browser, stack.service, { ...USERS.alice, returnURL });
  const logout = await browser.request(stack.service.url('/logout'), { json: true });
  assert.equal(logout.status, 200);
  const opLog = fs.readFileSync(path.join(stack.dir, 'op.log'), 'utf8');
  assert.match(opLog, /op POST \/token\/revocation 200 .*client=identity/, 'the provider accepted the assertion');
  const issued = await (await fetch(stack.op.url(`/dev/refresh-tokens?username=${USERS.alice.username}`))).json();
  assert.ok(issued.refresh_tokens.length > 0);
});
