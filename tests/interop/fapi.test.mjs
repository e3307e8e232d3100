// SPEC 12 against the real development provider in FAPI 2.0 mode (oidc-provider's profile
// '2.0' for the client "fapi": PAR required, PKCE, DPoP-bound tokens with a DPoP-Nonce
// demanded, private_key_jwt PS256, ID tokens PS256) and a DPoP-checking echo API
// (dev/op/server.mjs), in Chromium: the authorization URL carries only client_id and
// request_uri; /userinfo; the echo API through the proxy verifies the proof (after its own
// nonce dance); a refresh with a proof gives a new bound token; a replayed proof is refused.
//
// Skipped, with a message, when no Chromium is installed (as browser.test.mjs).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';

import { REPO, Stack, USERS, freePort, serviceConfig, sleep, startOp, startService, testWithLogs } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];
const ACCESS_TOKEN_TTL = 4;

let stack;
let context;
let profileDir;
const it = testWithLogs(() => stack);

before(async () => {
  if (noBrowser) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-fapi-'));
  const keyFile = path.join(REPO, 'tests', 'fixtures', 'client-rsa.pem');
  const jwk = crypto.createPublicKey(fs.readFileSync(keyFile)).export({ format: 'jwk' });
  const jwksFile = path.join(dir, 'fapi-client-jwks.json');
  fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...jwk, kid: 'fapi-client', alg: 'PS256', use: 'sig' }] }));
  const [servicePort, demoPort] = [await freePort(), await freePort()];
  const op = await startOp({
    serviceUrl: `http://127.0.0.1:${servicePort}`,
    demoPort,
    dir,
    env: { OP_FAPI_CLIENT_JWKS_FILE: jwksFile, OP_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL) },
  });
  const origin = `http://127.0.0.1:${demoPort}`;
  const config = serviceConfig({
    port: servicePort,
    providers: [{ op, id: 'bank', name: 'Bank' }],
    origins: [origin],
    keyPrefix: `interop:${crypto.randomBytes(6).toString('hex')}:`,
    tail: [
      '[[targets]]',
      `url = ${JSON.stringify(`${op.demoUrl}/dpop-echo/`)}`,
      'strategy = "access_token"',
      'transport = ["DPOP"]',
      'proxy_path = "/api/dpop"',
    ].join('\n'),
  }).replace('client_id = "identity"\nclient_secret = "identity-dev-secret"',
    `client_id = "fapi"\nprofile = "fapi2"\nprivate_key_file = ${JSON.stringify(keyFile)}\nprivate_key_alg = "PS256"`);
  assert.ok(config.includes('profile = "fapi2"'), config);
  const configFile = path.join(dir, 'service.toml');
  fs.writeFileSync(configFile, config);
  let service;
  try {
    service = await startService({ port: servicePort, dir, configFile });
  } catch (error) {
    await op.stop();
    throw error;
  }
  stack = new Stack(dir, { op, service, demoOrigin: origin });
  const { chromium } = await import('playwright-core');
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-fapi-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000,
  });
  context.setDefaultTimeout(15000);
});

after(async () => {
  await context?.close().catch(() => {});
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  await stack?.stop();
});

async function viaProxy(pathAndQuery) {
  const response = await context.request.get(stack.service.url(pathAndQuery), {
    headers: { 'X-Requested-With': 'XMLHttpRequest' },
  });
  return { status: response.status(), body: await response.json().catch(() => null) };
}

it('logs in through PAR with DPoP, calls the DPoP echo API through the proxy, refreshes, and a replay is refused',
  { skip: noBrowser }, async () => {
    const page = await context.newPage();
    const authorizeRequests = [];
    page.on('request', (request) => {
      if (request.url().startsWith(`${stack.op.issuer}/auth`)) authorizeRequests.push(request.url());
    });
    const returnURL = `${stack.demoOrigin}/`;
    await Promise.all([
      page.waitForURL(`${stack.op.issuer}/interaction/**`),
      page.goto(stack.service.url(`/login?returnURL=${encodeURIComponent(returnURL)}`)),
    ]);
    // PAR: the browser carried only client_id and request_uri.
    assert.equal(authorizeRequests.length >= 1, true);
    const names = [...new URL(authorizeRequests[0]).searchParams.keys()];
    assert.deepEqual(names, ['client_id', 'request_uri'], authorizeRequests[0]);
    await page.fill('input[name=login]', USERS.alice.username);
    await page.fill('input[name=password]', USERS.alice.password);
    await Promise.all([page.waitForURL(returnURL), page.click('button[type=submit]')]);

    await page.goto(stack.service.url('/userinfo'));
    const info = JSON.parse(await page.locator('body').textContent());
    assert.equal(info.authenticated, true, JSON.stringify(info));
    assert.equal(info.name, 'alice');
    assert.equal(info.provider, 'bank');

    // The echo API checks the proof, its own nonce, ath and cnf.jkt of the bound token.
    const first = await viaProxy('/api/dpop/hello?x=1');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.dpop, true);
    assert.equal(first.body.sub, USERS.alice.sub);

    // After the access token's lifetime the proxy refreshes (with a proof) first.
    await sleep((ACCESS_TOKEN_TTL + 1) * 1000);
    const second = await viaProxy('/api/dpop/hello');
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.notEqual(second.body.tokenHash, first.body.tokenHash, 'a refreshed token');
    assert.equal(second.body.jkt, first.body.jkt, 'bound to the same session key');
    assert.match(fs.readFileSync(path.join(stack.dir, 'service.log'), 'utf8'), /session tokens refreshed/);

    // The same request replayed (same token, same proof) is refused by the echo API.
    const replay = await fetch(`${stack.op.demoUrl}/dpop-replay`, { method: 'POST' });
    assert.equal(replay.status, 401);
    const refused = await replay.json();
    assert.equal(refused.error, 'invalid_dpop_proof');
    assert.equal(refused.why, 'jti replayed');
    await page.close();
  });
