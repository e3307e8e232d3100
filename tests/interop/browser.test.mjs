// A real browser (Debian's headless Chromium, driven by playwright-core) against the demo
// page, the development provider and identity-service: log in through the provider's form,
// see /userinfo on the demo page (a credentialed cross-origin fetch), check the session
// cookie's attributes, the provider chooser of a service with two providers, log out; and
// "Your sessions" with two browser contexts: one ends the other, then logs out everywhere.
//
// Skipped, with a message, when no Chromium is installed (CHROMIUM_BIN, default
// /usr/bin/chromium); dev/test-interop installs it when it may.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before } from 'node:test';

import { USERS, freePort, startOp, startService, startStack, testWithLogs } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const noBrowser = fs.existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium), `
    + 'or run dev/test-interop as root with CI=true or INSTALL_BROWSER=1';

// The flags of FIELD-NOTES ("Browsers here"); --headless comes with headless: true and the
// fresh profile is launchPersistentContext's user data dir.
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic',
];

let stack;
let context;
let profileDir;
const consoleLines = [];
const it = testWithLogs(() => stack && {
  logTails: () => `${stack.logTails()}\n--- browser console ---\n${consoleLines.slice(-30).join('\n')}`,
});

before(async () => {
  if (noBrowser) return;
  // OP 1 (with the demo page) behind service 1: the demo's own setup.
  stack = await startStack();
  // Service 2 with two providers: OP 1 again and a second OP registered for service 2.
  const port2 = await freePort();
  const op2 = stack.add('op2', await startOp({
    name: 'op2', dir: stack.dir, serviceUrl: `http://127.0.0.1:${port2}`,
  }));
  stack.add('chooser', await startService({
    name: 'chooser',
    dir: stack.dir,
    port: port2,
    providers: [
      { op: stack.op, id: 'local', name: 'Local login' },
      { op: op2, id: 'second', name: 'Second provider' },
    ],
    origins: [stack.demoOrigin],
    // Cookies ignore ports: two services on 127.0.0.1 need two cookie names.
    session: 'cookie_name = "ctCHOOSER"',
  }));

  const { chromium } = await import('playwright-core').catch((error) => {
    throw new Error(`playwright-core is missing: run \`npm ci\` in tests/interop (${error.message})`);
  });
  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-chromium-'));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    timeout: 30000,
  });
  context.setDefaultTimeout(15000);
});

after(async () => {
  await context?.close().catch(() => {});
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  await stack?.stop();
});

async function newPage() {
  const page = await context.newPage();
  page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
  return page;
}

const text = (page, selector) => page.locator(selector).textContent();

async function waitForText(page, selector, expected) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent === want,
    [selector, expected],
  ).catch(async (error) => {
    throw new Error(`${selector} is ${JSON.stringify(await text(page, selector))}, expected ${JSON.stringify(expected)} `
      + `(status: ${JSON.stringify(await text(page, '#status'))}, url ${page.url()}): ${error.message}`);
  });
}

it('logs in from the demo page, shows /userinfo, offers a provider chooser, logs out', { skip: noBrowser }, async () => {
  const demo = `${stack.demoOrigin}/`;
  const page = await newPage();

  // 1. The demo page, logged out.
  await page.goto(demo);
  await waitForText(page, '#status', 'You are not logged in.');
  assert.equal(await text(page, '#name'), '—');

  // 2. "Log in": the service sends the browser to the provider's login form.
  await Promise.all([page.waitForURL(`${stack.op.issuer}/interaction/**`), page.click('#login')]);
  await page.fill('input[name=login]', USERS.alice.username);
  await page.fill('input[name=password]', USERS.alice.password);
  await Promise.all([page.waitForURL(demo), page.click('button[type=submit]')]);

  // 3. Back on the demo page, which reads /userinfo cross-origin with credentials.
  await waitForText(page, '#name', 'alice');
  await waitForText(page, '#status', 'You are logged in.');
  const shown = JSON.parse((await text(page, '#userinfo')).replace(/^HTTP 200\n/, ''));
  assert.equal(shown.subject, USERS.alice.sub);
  assert.deepEqual([...shown.roles].sort(), USERS.alice.roles);
  assert.equal(await page.locator('#logout').isVisible(), true);

  // 4. The session cookie as the browser keeps it.
  const cookies = await context.cookies(stack.service.origin);
  const session = cookies.find((c) => c.name === 'ctIDENTITY');
  assert.ok(session, `ctIDENTITY among ${cookies.map((c) => c.name).join(', ')}`);
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.equal(session.path, '/');
  assert.equal(session.expires, -1, 'a browser-session cookie');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('ctIDENTITY'), 'not readable by scripts');

  // 5. A service with two providers shows the chooser, whose links lead to each provider.
  const chooser = await newPage();
  const response = await chooser.goto(stack.chooser.url(`/login?returnURL=${encodeURIComponent(demo)}`));
  assert.equal(response.status(), 200);
  assert.equal(await chooser.title(), 'Choose how to sign in');
  const links = chooser.locator('#providers a');
  assert.deepEqual(await links.allTextContents(), ['Local login', 'Second provider']);
  assert.deepEqual(await links.evaluateAll((as) => as.map((a) => a.dataset.provider)), ['local', 'second']);
  await Promise.all([
    chooser.waitForURL(`${stack.op2.issuer}/interaction/**`),
    chooser.click('text=Second provider'),
  ]);
  assert.equal(await chooser.locator('input[name=login]').count(), 1, 'the second provider\'s login form');
  await chooser.close();

  // 6. "Log out": through the provider's end-session endpoint and back to the demo page.
  await page.reload();
  await waitForText(page, '#name', 'alice');
  await Promise.all([page.waitForURL(demo), page.click('#logout')]);
  await waitForText(page, '#status', 'You are not logged in.');
  assert.equal(await text(page, '#name'), '—');
  assert.equal(await page.locator('#login').isVisible(), true);
  assert.equal(await page.locator('#logout').isVisible(), false);
  const left = await context.cookies(stack.service.origin);
  assert.ok(!left.some((c) => c.name === 'ctIDENTITY'), 'the session cookie is gone');

  // 7. The chooser's second provider, end to end: bob logs in there.
  await page.goto(stack.chooser.url(`/login?returnURL=${encodeURIComponent(demo)}&provider=second`));
  await page.fill('input[name=login]', USERS.bob.username);
  await page.fill('input[name=password]', USERS.bob.password);
  await Promise.all([page.waitForURL(demo), page.click('button[type=submit]')]);
  await page.goto(stack.chooser.url('/userinfo'));
  const bob = JSON.parse(await page.locator('body').textContent());
  assert.equal(bob.name, 'bob');
  assert.equal(bob.provider, 'second');
  await page.close();
});

it('"Your sessions": one browser ends the other\'s session, then logs out everywhere', { skip: noBrowser }, async () => {
  const demo = `${stack.demoOrigin}/`;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30000 });
  try {
    const firstContext = await browser.newContext({
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    });
    const secondContext = await browser.newContext({
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    });
    const open = async (ctx) => {
      const page = await ctx.newPage();
      ctx.setDefaultTimeout(15000);
      page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
      return page;
    };
    const logIn = async (page) => {
      await page.goto(demo);
      await waitForText(page, '#status', 'You are not logged in.');
      // The demo's "Log in" link, followed to its end: the provider's form, or straight
      // back to the demo page for a browser still signed in at the provider.
      const interaction = `${stack.op.issuer}/interaction/`;
      await page.goto(await page.locator('#login').getAttribute('href'));
      if (page.url().startsWith(interaction)) {
        await page.fill('input[name=login]', USERS.alice.username);
        await page.fill('input[name=password]', USERS.alice.password);
        await Promise.all([page.waitForURL(demo), page.click('button[type=submit]')]);
      }
      await waitForText(page, '#status', 'You are logged in.');
    };
    const sessionCount = (page, n) => page.waitForFunction(
      (want) => document.querySelectorAll('#sessions li.session').length === want, n,
    );

    // 1. Log in twice, in two browsers.
    const first = await open(firstContext);
    await logIn(first);
    const second = await open(secondContext);
    await logIn(second);

    // 2. The first browser sees both; the other one is labelled by its User-Agent.
    await first.reload();
    await waitForText(first, '#status', 'You are logged in.');
    await sessionCount(first, 2);
    const other = first.locator('#sessions li[data-current="false"]');
    assert.match(await other.textContent(), /^Firefox 133 on Linux · /);
    assert.match(await first.locator('#sessions li[data-current="true"]').textContent(), /^Chrome 131 on Linux · .*\(this browser\)/);

    // 3. It ends the other one: the second browser is logged out at once.
    await other.locator('button.end-session').click();
    await sessionCount(first, 1);
    await second.reload();
    await waitForText(second, '#status', 'You are not logged in.');
    await first.reload();
    await waitForText(first, '#status', 'You are logged in.');

    // 4. "Log out everywhere" from the first ends both again.
    await logIn(second);
    await first.reload();
    await sessionCount(first, 2);
    await Promise.all([first.waitForEvent('load'), first.click('#logout-everywhere')]);
    await waitForText(first, '#status', 'You are not logged in.');
    await second.reload();
    await waitForText(second, '#status', 'You are not logged in.');
    assert.ok(!(await firstContext.cookies(stack.service.origin)).some((c) => c.name === 'ctIDENTITY'), 'the cookie is cleared');
  } finally {
    await browser.close();
  }
});
