// Helpers for bench/run (Node ≥ 20, no packages of its own):
//   free-ports N                       print N free loopback ports
//   logout-issuer PORT DIR             a tiny static OpenID provider (discovery + JWKS) whose
//                                      ES256 key signs back-channel logout tokens; its private
//                                      key goes to DIR/logout-key.json
//   logout-tokens ISSUER AUD DIR COUNT write COUNT logout tokens (distinct jti) to DIR/logout-tokens
//   sessions SERVICE OP COUNT PARALLEL OUT [PROVIDER]
//                                      COUNT real logins through the service and the dev
//                                      provider's form (provider entry PROVIDER, default local);
//                                      cookies to OUT, timings as JSON on stdout; for local also
//                                      a Bearer access token of the provider to OUT.bearer
//   fapi-jwks KEY.pem OUT              the public JWKS (PS256) of the FAPI 2.0 client key, for
//                                      dev/op's OP_FAPI_CLIENT_JWKS_FILE
//   check SERVICE FILE                 every cookie in FILE still gives authenticated:true
//   report CASES.jsonl FACTS.json OUT  the results table (markdown) to OUT and stdout
// Nothing here logs a cookie or token.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

import { Browser, login, providerTokens } from '../tests/interop/client.mjs';

const [command, ...args] = process.argv.slice(2);

const b64url = (value) => Buffer.from(value).toString('base64url');

async function freePorts(n) {
  const servers = [];
  for (let i = 0; i < n; i += 1) {
    const server = net.createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  console.log(servers.map((s) => s.address().port).join(' '));
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
}

function logoutIssuer(port, dir) {
  const issuer = `http://127.0.0.1:${port}`;
  // PEM out, then KeyObjects of their own for the JWK export (see newSigningJwk in
  // dev/op/server.mjs: Node 20 can deadlock exporting a freshly generated KeyObject).
  const pems = crypto.generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const privateKey = crypto.createPrivateKey(pems.privateKey);
  const pub = crypto.createPublicKey(pems.publicKey).export({ format: 'jwk' });
  const kid = crypto.createHash('sha256').update(JSON.stringify([pub.crv, pub.x, pub.y])).digest('base64url').slice(0, 16);
  fs.writeFileSync(path.join(dir, 'logout-key.json'), JSON.stringify({ kid, jwk: privateKey.export({ format: 'jwk' }) }), { mode: 0o600 });
  const jwks = JSON.stringify({ keys: [{ ...pub, kid, use: 'sig', alg: 'ES256' }] });
  const discovery = JSON.stringify({
    issuer,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
  });
  http.createServer((req, res) => {
    const body = req.url === '/.well-known/openid-configuration' ? discovery : req.url === '/jwks' ? jwks : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(body ?? '{}');
  }).listen(port, '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}

function logoutTokens(issuer, aud, dir, count) {
  const { kid, jwk } = JSON.parse(fs.readFileSync(path.join(dir, 'logout-key.json'), 'utf8'));
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'logout+jwt', kid }));
  const now = Math.floor(Date.now() / 1000);
  const run = crypto.randomBytes(6).toString('hex');
  const out = fs.openSync(path.join(dir, 'logout-tokens'), 'w');
  let chunk = [];
  for (let i = 0; i < count; i += 1) {
    // A sid no session has: the service checks the token, records its jti and looks the sid
    // up, which is the whole cost of a logout that matches nothing.
    const payload = b64url(JSON.stringify({
      iss: issuer, aud, iat: now, exp: now + 600, jti: `${run}-${i}`, sid: `bench-${run}-${i}`,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    }));
    const input = `${header}.${payload}`;
    const signature = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    chunk.push(`${input}.${signature.toString('base64url')}`);
    if (chunk.length === 1000) { fs.writeSync(out, `${chunk.join('\n')}\n`); chunk = []; }
  }
  if (chunk.length) fs.writeSync(out, `${chunk.join('\n')}\n`);
  fs.closeSync(out);
}

const USERS = [['alice', 'alice-password'], ['bob', 'bob-password']];
const RETURN_URL = 'http://127.0.0.1:3000/';

async function sessions(serviceUrl, opUrl, count, parallel, out, provider = 'local') {
  const service = { url: (p) => `${serviceUrl}${p}` };
  const op = { url: (p) => `${opUrl}${p}` };
  const cookies = [];
  let serviceMs = 0;
  let next = 0;
  const started = performance.now();
  // Time spent waiting for the service's own answers (its /callback includes its calls to
  // the provider's token and userinfo endpoints).
  class TimedBrowser extends Browser {
    async request(url, options) {
      if (!url.startsWith(serviceUrl)) return super.request(url, options);
      const t = performance.now();
      const res = await super.request(url, options);
      serviceMs += performance.now() - t;
      return res;
    }
  }
  async function worker() {
    while (next < count) {
      const i = next;
      next += 1;
      const [username, password] = USERS[i % USERS.length];
      const browser = new TimedBrowser();
      await login(browser, service, { username, password, returnURL: RETURN_URL, provider });
      const cookie = browser.jar.get('ctIDENTITY');
      if (!cookie) throw new Error(`login ${i} gave no session cookie`);
      cookies.push(cookie.value);
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker));
  const wallMs = performance.now() - started;
  fs.writeFileSync(out, `${cookies.join('\n')}\n`, { mode: 0o600 });
  if (provider === 'local') {
    const tokens = await providerTokens(new Browser(), op, {
      username: 'alice', password: 'alice-password', redirectUri: `${serviceUrl}/callback`,
    });
    fs.writeFileSync(`${out}.bearer`, tokens.access_token, { mode: 0o600 });
  }
  const lengths = cookies.map((c) => `ctIDENTITY=${c}`.length);
  console.log(JSON.stringify({
    logins: count, wall_ms: Math.round(wallMs), service_wait_ms_per_login: +(serviceMs / count).toFixed(2),
    cookie_bytes_max: Math.max(...lengths), cookie_value_bytes: Math.max(...cookies.map((c) => c.length)),
  }));
}

function fapiJwks(keyFile, out) {
  // As tests/interop/fapi.test.mjs registers the client "fapi" at the development provider.
  const jwk = crypto.createPublicKey(fs.readFileSync(keyFile)).export({ format: 'jwk' });
  fs.writeFileSync(out, JSON.stringify({ keys: [{ ...jwk, kid: 'fapi-client', alg: 'PS256', use: 'sig' }] }));
}

async function check(serviceUrl, file) {
  const values = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  let ok = 0;
  for (let i = 0; i < values.length; i += 50) {
    const batch = values.slice(i, i + 50).map(async (value) => {
      const res = await fetch(`${serviceUrl}/userinfo`, { headers: { cookie: `ctIDENTITY=${value}` } });
      const body = await res.json();
      if (res.status === 200 && body.authenticated === true) ok += 1;
    });
    await Promise.all(batch);
  }
  console.log(JSON.stringify({ sessions: values.length, authenticated: ok }));
}

// ---- report --------------------------------------------------------------------------------

const fmt = (n, digits = 0) => (n === undefined || n === null || Number.isNaN(n) ? '–' : Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

function report(casesFile, factsFile, out) {
  const cases = Object.fromEntries(fs.readFileSync(casesFile, 'utf8').split('\n').filter(Boolean).map((l) => {
    const c = JSON.parse(l);
    const seconds = c.duration_us / 1e6;
    c.rps = c.requests / seconds;
    c.p50_ms = c.p50_us / 1000;
    c.p99_ms = c.p99_us / 1000;
    c.max_ms = c.max_us / 1000;
    c.errors = c.errors_status + c.errors_socket;
    c.cpu_us = (c.cpu_ticks * 1e6) / c.clk_tck / c.requests;
    c.rss_mb = c.rss_kb / 1024;
    c.redis_per_req = c.redis_calls / c.requests;
    return [c.name, c];
  }));
  // Floors run at the start and again at the end: ratios use their mean.
  for (const f of ['floor d', 'floor e']) {
    const again = cases[`${f} again`];
    if (cases[f] && again) {
      cases[f].drift = again.rps / cases[f].rps;
      cases[f].rps = (cases[f].rps + again.rps) / 2;
      cases[f].cpu_us = (cases[f].cpu_us + again.cpu_us) / 2;
      cases[f].label += ` (mean of start and end; end/start req/s ${cases[f].drift.toFixed(2)})`;
      again.label += ' (end run)';
    }
  }
  const facts = JSON.parse(fs.readFileSync(factsFile, 'utf8'));
  const rps = (name) => cases[name]?.rps;
  const cpu = (name) => cases[name]?.cpu_us;
  const lines = [];
  const push = (s = '') => lines.push(s);
  push(`# bench/run ${facts.started} (${facts.mode})`);
  push();
  push(`Machine: ${facts.nproc} cores, ${facts.cpu_model}, load average at start ${facts.loadavg}. `
    + `Service ${facts.service_version} (commit ${facts.commit}), ${facts.binary}, default logging `
    + `(RUST_LOG unset), ${facts.workers} workers, Redis store (private redis-server ${facts.redis_version} on loopback). `
    + `Load: wrk -t2 -c${facts.connections}, ${facts.duration}s per case after a ${facts.warmup}s warm-up; `
    + `${facts.sessions} sessions from real logins, cookies rotated per request.`);
  push();
  push('| case | req/s | p50 ms | p99 ms | max ms | errors | CPU µs/req | RSS MB | Redis cmds/req | ratio to floor |');
  push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const c of Object.values(cases)) {
    let ratio = '';
    if (c.floor && cases[c.floor] && !c.name.endsWith('again')) {
      ratio = `${(c.rps / cases[c.floor].rps).toFixed(2)} × ${c.floor} req/s, ${(c.cpu_us / cases[c.floor].cpu_us).toFixed(2)} × its CPU`;
    }
    push(`| ${c.label} | ${fmt(c.rps)} | ${fmt(c.p50_ms, 2)} | ${fmt(c.p99_ms, 2)} | ${fmt(c.max_ms, 1)} | ${fmt(c.errors)}${c.exhausted ? ' (tokens ran out)' : ''} | ${fmt(c.cpu_us, 1)} | ${fmt(c.rss_mb, 1)} | ${c.redis_calls ? `${fmt(c.redis_per_req, 2)} (${c.redis_top})` : '0'} | ${ratio} |`);
  }
  const login = facts.login;
  push(`| full login, end to end (${login.logins} logins, ${login.parallel} at once) | ${fmt(login.logins / (login.wall_ms / 1000), 1)} logins/s (provider-bound) | – | – | – | 0 | ${fmt(login.cpu_us, 0)} per login | ${fmt(login.rss_mb, 1)} | ${fmt(login.redis_per_login, 1)} per login (${login.redis_top}) | ${(login.cpu_us / cpu('floor e')).toFixed(1)} × floor e CPU/req; waited ${fmt(login.service_wait_ms_per_login, 2)} ms for our answers per login |`);
  push();
  const target = (name, goal, measured, ok) => push(`| ${name} | ${goal} | ${measured} | ${ok ? 'met' : '**not met**'} |`);
  push('## Targets (issue 10)');
  push();
  push('| target | goal | measured | |');
  push('|---|---|---|---|');
  const ui = rps('userinfo cookie') / rps('floor e');
  target('/userinfo req/s', '≥ 0.8 × floor e', `${ui.toFixed(2)} ×`, ui >= 0.8);
  const uc = cpu('userinfo cookie') / cpu('floor e');
  target('/userinfo CPU/req', '≤ 1.5 × floor e', `${uc.toFixed(2)} ×`, uc <= 1.5);
  const md = rps('metadata') / rps('floor d');
  target('/metadata req/s', '≥ 0.7 × floor d', `${md.toFixed(2)} ×`, md >= 0.7);
  for (const t of ['token jwt', 'token client_credentials']) {
    const r = rps(t) / rps('userinfo cookie');
    target(`POST /token cached (${t.split(' ')[1]}) req/s`, '≥ 0.8 × /userinfo', `${r.toFixed(2)} ×`, r >= 0.8);
  }
  // Issue 10: floor e, or floor d once the login writes nothing to Redis.
  const loginFloor = (cases['login 302']?.redis_per_req ?? 0) >= 0.5 ? 'floor e' : 'floor d';
  const lg = rps('login 302') / rps(loginFloor);
  target('GET /login 302 req/s', `≥ 0.7 × ${loginFloor}${loginFloor === 'floor d' ? ' (no Redis call)' : ''}`, `${lg.toFixed(2)} ×`, lg >= 0.7);
  target('back-channel logout req/s', '≥ 5,000', fmt(rps('backchannel logout')), rps('backchannel logout') >= 5000);
  const ours = Object.values(cases).filter((c) => !c.name.startsWith('floor'));
  const floorsP99 = Object.values(cases).filter((c) => c.name.startsWith('floor')).map((c) => c.p99_ms);
  // The proxied cases (--proxy-dpop) carry an upstream hop and are reported below instead.
  const direct = ours.filter((c) => !c.name.startsWith('proxy '));
  const worstP99 = Math.max(...direct.map((c) => c.p99_ms));
  target(`p99 at ${facts.connections} connections, every case${direct.length < ours.length ? ' (proxied cases apart)' : ''}`, '< 5 ms', `worst ${fmt(worstP99, 2)} ms (floors' worst ${fmt(Math.max(...floorsP99), 2)} ms) (${direct.filter((c) => c.p99_ms >= 5).map((c) => c.name).join(', ') || 'none over'})`, worstP99 < 5);
  const errors = ours.reduce((s, c) => s + c.errors, 0) + facts.check_failures;
  target('errors', '0', `${errors} (non-2xx/3xx, socket errors, sessions no longer authenticated after the run: ${facts.check_failures})`, errors === 0);
  const rss = Math.max(...ours.map((c) => c.rss_mb));
  target(`RSS (after ${facts.sessions} sessions${facts.sessions >= 100000 ? "" : ", not 100,000"})`, '< 50 MB', `${fmt(rss, 1)} MB peak`, rss < 50);
  const lasting = facts.redis_bytes_per_session - (facts.redis_transient_bytes_per_session ?? 0);
  target('Redis per session', '≤ 2.5 KB', `${fmt(lasting)} bytes lasting (record + indexes) + ${fmt(facts.redis_transient_bytes_per_session ?? 0)} bytes of login-used markers that expire with the login state (MEMORY USAGE … SAMPLES 0 of our keys / sessions; ${facts.redis_keys} keys)`, lasting <= 2560);
  target('cookie', '≤ 100 bytes', `${login.cookie_bytes_max} bytes (name=value)`, login.cookie_bytes_max <= 100);
  if (cases['userinfo traces 1.0']) {
    // SPEC 7 "Traces" (issue 21): tracing's own cost and a silent collector's.
    let traces = {};
    try { traces = JSON.parse(fs.readFileSync(factsFile.replace(/facts\.json$/, 'traces.json'), 'utf8')); } catch {}
    const off = rps('userinfo cookie');
    const cost = (name) => `${((1 - rps(name) / off) * 100).toFixed(1)} % fewer req/s, ${((cpu(name) / cpu('userinfo cookie') - 1) * 100).toFixed(1)} % more CPU/req than traces off`;
    target('traces at sample_ratio 1.0 (aim)', '≤ 10 % cost', cost('userinfo traces 1.0'), rps('userinfo traces 1.0') >= 0.9 * off);
    target('traces at sample_ratio 0.1', '–', cost('userinfo traces 0.1'), true);
    const silent = rps('userinfo traces silent') / rps('userinfo traces 1.0');
    target('silent collector vs one that answers', 'within 5 %', `${silent.toFixed(3)} × req/s; spans dropped and counted: ${traces.dropped?.['userinfo traces silent'] ?? '?'} (answering collector: ${traces.dropped?.['userinfo traces 1.0'] ?? '?'} dropped, ${traces.received?.requests ?? '?'} export requests received)`, silent >= 0.95);
  }
  const bearer = cases['proxy bearer'];
  const dpop = cases['proxy dpop'];
  if (bearer && dpop) {
    // SPEC 12 / issue 20: what a DPoP proof per proxied request costs (one ES256 signature
    // with the session's key, plus its header), against the same proxy path with a Bearer token.
    push();
    push('## Proxy: DPoP against Bearer (issue 20)');
    push();
    push('| | proxy bearer | proxy dpop | dpop / bearer |');
    push('|---|---:|---:|---:|');
    push(`| req/s | ${fmt(bearer.rps)} | ${fmt(dpop.rps)} | ${(dpop.rps / bearer.rps).toFixed(2)} |`);
    push(`| CPU µs/req (service) | ${fmt(bearer.cpu_us, 1)} | ${fmt(dpop.cpu_us, 1)} | ${(dpop.cpu_us / bearer.cpu_us).toFixed(2)} (+${fmt(dpop.cpu_us - bearer.cpu_us, 1)} µs: the proof) |`);
    push(`| p50 / p99 ms | ${fmt(bearer.p50_ms, 2)} / ${fmt(bearer.p99_ms, 2)} | ${fmt(dpop.p50_ms, 2)} / ${fmt(dpop.p99_ms, 2)} | |`);
    push(`| errors | ${fmt(bearer.errors)} | ${fmt(dpop.errors)} | |`);
    const dl = facts.dpop_login;
    push();
    push(`Both proxy \`GET <proxy_path>/\` with a session cookie and \`X-Requested-With\` to floor d (a bare actix-web answer `
      + 'that ignores Authorization and DPoP), rotating through the same number of sessions '
      + `(${facts.proxy_sessions}): "proxy bearer" sessions of the development provider (target \`access_token\`, \`["BEARER"]\`), `
      + '"proxy dpop" sessions of a second development provider with its FAPI 2.0 client (profile fapi2: PAR, private_key_jwt PS256, '
      + 'DPoP-bound tokens; target `access_token`, `["DPOP"]`), so the difference is what DPoP adds per request: the proof it signs with the session\'s key (read from the sealed record) and its header. '
      + (dl ? `The ${dl.logins} FAPI logins took ${fmt(dl.wall_ms / 1000, 1)} s (${fmt(dl.logins / (dl.wall_ms / 1000), 1)} logins/s, ${dl.parallel} at once).` : ''));
  }
  push();
  push('Notes: CPU µs/req is utime+stime of the server process from /proc/<pid>/stat across the measured run '
    + 'divided by its requests (10 ms ticks). Redis commands are INFO commandstats deltas of the private Redis. '
    + 'Floor e reads a value of the session record\'s size '
    + `(${facts.record_bytes} bytes). Back-channel logout tokens are ES256, signed by a static second provider `
    + 'entry ("bcl") and carry a sid no session has. The Bearer case uses one access token of the development provider. '
    + 'wrk runs on the same 2 cores, so req/s is bounded by the client too: read the ratios, not the absolute numbers.');
  const text = `${lines.join('\n')}\n`;
  fs.writeFileSync(out, text);
  process.stdout.write(text);
}

switch (command) {
  case 'free-ports': await freePorts(Number(args[0] ?? 1)); break;
  case 'logout-issuer': logoutIssuer(Number(args[0]), args[1]); break;
  case 'logout-tokens': logoutTokens(args[0], args[1], args[2], Number(args[3])); break;
  case 'sessions': await sessions(args[0], args[1], Number(args[2]), Number(args[3]), args[4], args[5]); break;
  case 'fapi-jwks': fapiJwks(args[0], args[1]); break;
  case 'check': await check(args[0], args[1]); break;
  case 'report': report(args[0], args[1], args[2]); break;
  default:
    console.error('usage: see the head of bench/aux.mjs');
    process.exit(2);
}
