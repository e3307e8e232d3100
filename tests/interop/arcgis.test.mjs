// ArcGIS (SPEC 10) in a real browser (headless Chromium, playwright-core) through the demo
// page: "Log in with ArcGIS (stand-in)" leads to the portal stand-in's login form
// (dev/arcgis/server.mjs), the demo page shows /userinfo from community/self, the proxy
// reaches the ArcGIS Server stand-in with a generateToken server token as ?token=, an ESRI
// token is accepted as Bearer, and logout goes through oauth2/signout back to the demo.
//
// Skipped, with a message, when no Chromium is installed (CHROMIUM_BIN, default
// /usr/bin/chromium).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before } from 'node:test';

import { startArcgis, startStack, testWithLogs } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

let stack;
let arcgis;
let context;
let profileDir;
const it = testWithLogs(() => stack);

before(async () => {
  if (noBrowser) return;
  arcgis = await startArcgis();
  stack = await startStack({
    tail: [
      '[[providers]]',
      'id = "arcgis"',
      'kind = "arcgis"',
      'name = "ArcGIS (stand-in)"',
      `portal_url = ${JSON.stringify(arcgis.portalUrl)}`,
      'client_id = "identity-dev"',
      'accept_bearer = true',
      '',
      '[[targets]]',
      `url = ${JSON.stringify(arcgis.serverUrl)}`,
      'strategy = "arcgis_server"',
      'transport = ["TOKEN_PARAMETER"]',
      'proxy_path = "/api/gis"',
    ].join('\n'),
  });
  stack.add('arcgis', arcgis);
  const { chromium } = await import('playwright-core');
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-arcgis-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000,
  });
  context.setDefaultTimeout(15000);
});

after(async () => {
  await context?.close().catch(() => {});
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  if (stack) await stack.stop(); else await arcgis?.stop();
});

const text = (page, selector) => page.locator(selector).textContent();
const waitForText = (page, selector, predicate) => page.waitForFunction(
  ([sel, source]) => new Function('t', `return ${source}`)(document.querySelector(sel)?.textContent ?? ''),
  [selector, predicate],
);

it('logs in through the portal stand-in from the demo page, calls ArcGIS Server, logs out', { skip: noBrowser }, async () => {
  const demo = `${stack.demoOrigin}/`;
  const page = await context.newPage();
  await page.goto(demo);
  await waitForText(page, '#status', "t === 'You are not logged in.'");

  // The portal's oauth2/authorize login form (PKCE, state), then back to the demo page.
  await Promise.all([page.waitForURL(`${arcgis.portalUrl}/oauth2/authorize?**`), page.click('#login-arcgis')]);
  const authorize = new URL(page.url());
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authorize.searchParams.get('response_type'), 'code');
  await page.fill('input[name=username]', 'jdoe');
  await page.fill('input[name=password]', 'jdoe');
  await Promise.all([page.waitForURL(demo), page.click('button[type=submit]')]);

  await waitForText(page, '#name', "t === 'jdoe'");
  const shown = JSON.parse((await text(page, '#userinfo')).replace(/^HTTP 200\n/, ''));
  assert.equal(shown.provider, 'arcgis');
  assert.deepEqual(shown.roles, ['org_publisher']);
  assert.deepEqual(shown.groups, ['Field crew', 'Editors']);
  assert.equal(shown.attributes.fullName, 'Jane Doe');
  assert.equal(shown.attributes.orgId, 'DEVORG0123456789');

  // The proxy hands the ArcGIS Server stand-in a server token as ?token=.
  await page.click('#call-gis');
  await waitForText(page, '#gis-result', "t.startsWith('HTTP ')");
  const gis = await text(page, '#gis-result');
  assert.match(gis, /^HTTP 200/);
  assert.match(gis, /Parcels/);

  // Logout: oauth2/signout and back through /logout/callback to the demo page.
  await Promise.all([page.waitForURL(demo), page.click('#logout')]);
  await waitForText(page, '#status', "t === 'You are not logged in.'");
  await page.close();
});

it('accepts an ESRI token of the portal as Bearer', { skip: noBrowser }, async () => {
  // A token as an ArcGIS client would hold it: the code flow run directly at the stand-in.
  const verifier = 'v'.repeat(64);
  const { createHash } = await import('node:crypto');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = 'http://127.0.0.1:1/cb';
  const form = new URLSearchParams({
    client_id: 'identity-dev', response_type: 'code', redirect_uri: redirect,
    code_challenge: challenge, code_challenge_method: 'S256', username: 'admin', password: 'admin',
  });
  const authorized = await fetch(`${arcgis.portalUrl}/oauth2/authorize`, { method: 'POST', body: form, redirect: 'manual' });
  const code = new URL(authorized.headers.get('location')).searchParams.get('code');
  const tokenAnswer = await (await fetch(`${arcgis.portalUrl}/oauth2/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'authorization_code', client_id: 'identity-dev', code, redirect_uri: redirect, code_verifier: verifier,
    }),
  })).json();
  assert.equal(tokenAnswer.username, 'admin');
  const res = await fetch(stack.service.url('/userinfo'), {
    headers: { authorization: `Bearer ${tokenAnswer.access_token}`, accept: 'application/json' },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.name, 'admin');
  assert.deepEqual(body.roles, ['org_admin']);
  const refused = await fetch(stack.service.url('/userinfo'), {
    headers: { authorization: `Bearer ${tokenAnswer.access_token}x`, accept: 'application/json' },
  });
  assert.equal(refused.status, 401);
});
