// The API proxy (SPEC 9) in a real browser: the demo page's "Call the API through the
// proxy" button fetches <service>/api/echo/hello cross-origin with the session cookie; the
// service forwards it to the demo's echo API (dev/op/server.mjs) with the user's access
// token attached. The page shows what the echo API received: the token's subject, and no
// cookie; the page itself never holds the token.
//
// Skipped, with a message, when no Chromium is installed (as browser.test.mjs).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before } from 'node:test';

import { USERS, startStack, testWithLogs } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

let stack;
let context;
let profileDir;
const it = testWithLogs(() => stack);

before(async () => {
  if (noBrowser) return;
  stack = await startStack({
    tail: (op) => [
      '[[targets]]',
      `url = ${JSON.stringify(`${op.demoUrl}/echo/`)}`,
      'strategy = "access_token"',
      'proxy_path = "/api/echo"',
    ].join('\n'),
  });
  const { chromium } = await import('playwright-core');
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-proxy-'));
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

async function proxyResult(page) {
  await page.waitForFunction(() => /^HTTP \d+/.test(document.querySelector('#proxy-result')?.textContent || ''));
  const shown = await page.locator('#proxy-result').textContent();
  const [statusLine, ...rest] = shown.split('\n');
  return { status: Number(statusLine.replace('HTTP ', '')), text: rest.join('\n') };
}

it('the demo page calls an API through the proxy, which attaches the token', { skip: noBrowser }, async () => {
  const demo = `${stack.demoOrigin}/`;
  const page = await context.newPage();

  // Logged out: the proxy answers 401 and nothing reaches the API.
  await page.goto(demo);
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'You are not logged in.');
  await page.click('#call-api');
  const refused = await proxyResult(page);
  assert.equal(refused.status, 401, refused.text);
  assert.equal(JSON.parse(refused.text).error, 'UNAUTHORIZED');

  // Log in through the provider's form.
  await Promise.all([page.waitForURL(`${stack.op.issuer}/interaction/**`), page.click('#login')]);
  await page.fill('input[name=login]', USERS.alice.username);
  await page.fill('input[name=password]', USERS.alice.password);
  await Promise.all([page.waitForURL(demo), page.click('button[type=submit]')]);
  await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'You are logged in.');

  // The button: through the proxy to the echo API, with alice's token and without our cookie.
  await page.click('#call-api');
  const answer = await proxyResult(page);
  assert.equal(answer.status, 200, answer.text);
  const echo = JSON.parse(answer.text);
  assert.equal(echo.method, 'GET');
  assert.equal(echo.path, '/echo/hello');
  assert.deepEqual(echo.query, { from: 'demo' });
  assert.equal(echo.tokenReceived, true);
  assert.equal(echo.tokenClaims.sub, USERS.alice.sub);
  assert.equal(echo.tokenClaims.iss, stack.op.issuer);
  assert.equal(echo.cookieReceived, false);
  assert.equal(echo.forwardedHost, new URL(stack.service.origin).host);
  // The page never saw a token: not in its text, not in a script-readable cookie.
  assert.ok(!(await page.content()).includes('eyJ'), 'no JWT on the page');
  assert.equal(await page.evaluate(() => document.cookie), '');
  await page.close();
});
