// Shared harness of the interop tests: starts the development OpenID provider (dev/op, a
// fresh node process per test file, on free ports) and the identity-service binary (path
// from IDENTITY_BIN, default target/release/identity-service) with a configuration written
// to a temporary file that points at that provider, sessions in Redis under a unique key
// prefix. `stop()` ends both. Logs go to a temporary folder; a failing `it()` prints their
// tails, and INTEROP_KEEP_LOGS=1 keeps the folder.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const IDENTITY_BIN = path.resolve(
  REPO,
  process.env.IDENTITY_BIN || path.join('target', 'release', 'identity-service'),
);
export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** The development users (dev/op/server.mjs). */
export const USERS = {
  alice: {
    username: 'alice',
    password: 'alice-password',
    sub: '5f0c6f4e-6d1a-4c52-9a3e-a11ce0000001',
    name: 'Alice Example',
    email: 'alice@example.com',
    roles: ['admin', 'gis'],
    groups: ['staff'],
  },
  bob: {
    username: 'bob',
    password: 'bob-password',
    sub: '9b2d7c1a-3e4f-4a6b-8c9d-b0b000000002',
    name: 'Bob Example',
    email: 'bob@example.com',
    roles: ['user'],
    groups: ['users'],
  },
};

// Every request of the tests says `Connection: close`: a stopping service (actix) otherwise
// waits for our idle keep-alive connections to time out (about 5 s) before it exits. And
// none waits forever: a hung peer is a failure after 30 s, not a hung test run.
const plainFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('connection', 'close');
  return plainFetch(input, { ...init, headers, signal: init.signal ?? AbortSignal.timeout(30000) });
};

const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
export { sleep };

/** A TCP port that is free right now on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A child process whose output goes to a log file (and a tail kept in memory). */
class Child {
  constructor(name, command, args, { env, cwd, logFile }) {
    this.name = name;
    this.logFile = logFile;
    this.tail = [];
    this.exited = null;
    const log = fs.openSync(logFile, 'a');
    this.process = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.process);
    const onData = (chunk) => {
      fs.writeSync(log, chunk);
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) this.tail.push(line);
      }
      if (this.tail.length > 200) this.tail.splice(0, this.tail.length - 200);
    };
    this.process.stdout.on('data', onData);
    this.process.stderr.on('data', onData);
    this.exitPromise = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => {
        this.exited = { code, signal };
        children.delete(this.process);
        resolve(this.exited);
      });
      this.process.on('error', (error) => {
        this.exited = { code: null, signal: null, error: error.message };
        children.delete(this.process);
        resolve(this.exited);
      });
    });
    this.exitPromise.then(() => fs.closeSync(log));
  }

  /** The last `lines` lines of output. */
  lastLines(lines = 40) {
    return this.tail.slice(-lines).join('\n');
  }

  /** Lines of output matching `pattern`. */
  grep(pattern) {
    return fs.readFileSync(this.logFile, 'utf8').split('\n').filter((line) => pattern.test(line));
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with how it exited. */
  async stop(graceMs = 10000) {
    if (this.exited) return this.exited;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    const result = await this.exitPromise;
    clearTimeout(timer);
    return result;
  }
}

async function waitFor(what, child, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exited) {
      throw new Error(`${what} exited early (${JSON.stringify(child.exited)}):\n${child.lastLines()}`);
    }
    try {
      const outcome = await probe(AbortSignal.timeout(2000));
      if (outcome === true) return;
      last = outcome;
    } catch (error) {
      last = error.cause?.message ?? error.message;
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms (last: ${last}):\n${child.lastLines()}`);
}

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'identity-interop-'));
}

/**
 * Starts dev/op/server.mjs. `serviceUrl` is the identity-service URL its `identity` client
 * is registered for; `demoPort` (or null: no demo) where the demo page is served; `env`
 * adds OP_* variables (OP_ACCESS_TOKEN_TTL, OP_ACCESS_TOKEN_FORMAT, …).
 */
export async function startOp({ port, serviceUrl, demoPort = null, env = {}, dir = tempDir(), name = 'op' }) {
  const opPort = port ?? await freePort();
  const issuer = `http://127.0.0.1:${opPort}`;
  const childEnv = {
    ...process.env,
    OP_ISSUER: issuer,
    OP_PORT: String(opPort),
    OP_HOST: '127.0.0.1',
    SERVICE_URL: serviceUrl,
    DEMO_PORT: demoPort === null ? 'off' : String(demoPort),
    ...env,
  };
  const child = new Child(name, process.execPath, [path.join(REPO, 'dev', 'op', 'server.mjs')], {
    env: childEnv, cwd: path.join(REPO, 'dev', 'op'), logFile: path.join(dir, `${name}.log`),
  });
  await waitFor(`${name} (dev/op)`, child, async (signal) => {
    const res = await fetch(`${issuer}/.well-known/openid-configuration`, { signal });
    return res.status === 200 || `discovery ${res.status}`;
  }, 15000);
  if (demoPort !== null) {
    await waitFor(`${name} demo`, child, async (signal) => {
      const res = await fetch(`http://127.0.0.1:${demoPort}/config.js`, { signal });
      return res.status === 200 || `demo ${res.status}`;
    }, 5000);
  }
  return {
    name,
    issuer,
    port: opPort,
    demoUrl: demoPort === null ? null : `http://127.0.0.1:${demoPort}`,
    child,
    url: (p) => `${issuer}${p}`,
    stop: () => child.stop(),
  };
}

/**
 * Starts dev/arcgis/server.mjs (the ArcGIS portal and ArcGIS Server stand-in); resolves
 * once its `info` answers. `portalUrl` is what a provider's `portal_url` names.
 */
export async function startArcgis({ port, dir = tempDir(), name = 'arcgis', env = {} } = {}) {
  const arcgisPort = port ?? await freePort();
  const base = `http://127.0.0.1:${arcgisPort}`;
  const child = new Child(name, process.execPath, [path.join(REPO, 'dev', 'arcgis', 'server.mjs')], {
    env: { ...process.env, ARCGIS_PORT: String(arcgisPort), ARCGIS_URL: base, ...env },
    cwd: path.join(REPO, 'dev', 'arcgis'),
    logFile: path.join(dir, `${name}.log`),
  });
  await waitFor(`${name} (dev/arcgis)`, child, async (signal) => {
    const res = await fetch(`${base}/sharing/rest/info?f=json`, { signal });
    return res.status === 200 || `info ${res.status}`;
  }, 10000);
  return {
    name,
    base,
    portalUrl: `${base}/sharing/rest`,
    serverUrl: `${base}/server/rest/services/`,
    child,
    stop: () => child.stop(),
  };
}

const toml = (value) => JSON.stringify(value);

/**
 * The TOML of a service in front of `providers` ([{ op, id, name, extra }]); `extra`,
 * `session` and `tail` are raw TOML appended to the provider, to `[session]` and to the
 * file.
 */
export function serviceConfig({ port, providers, origins, keyPrefix, store = 'redis', session = '', tail = '' }) {
  const lines = [
    '[server]',
    `bind = ${toml(`127.0.0.1:${port}`)}`,
    `public_url = ${toml(`http://127.0.0.1:${port}`)}`,
    'workers = 2',
    '',
    '[session]',
    `store = ${toml(store)}`,
    `redis_url = ${toml(REDIS_URL)}`,
    `key_prefix = ${toml(keyPrefix)}`,
    session,
    '',
    '[redirects]',
    `allowed_origins = ${toml(origins)}`,
    '',
    '[cors]',
    `allowed_origins = ${toml(origins)}`,
  ];
  for (const p of providers) {
    lines.push(
      '',
      '[[providers]]',
      `id = ${toml(p.id ?? 'local')}`,
      `name = ${toml(p.name ?? 'Local login')}`,
      `issuer = ${toml(p.op.issuer)}`,
      'client_id = "identity"',
      'client_secret = "identity-dev-secret"',
      'scopes = ["openid", "profile", "email", "offline_access"]',
      'name_claim = "preferred_username"',
      'roles_claim = "realm_access.roles"',
      'groups_claim = "groups"',
      'attributes = ["email"]',
      p.extra ?? '',
    );
  }
  lines.push('', tail, '');
  return lines.join('\n');
}

/**
 * Starts the identity-service binary with `serviceConfig(options)` (or with `configFile`
 * as it is, and `env` added: IDENTITY__… overrides); resolves once /health/ready answers 200.
 */
export async function startService({ port, dir = tempDir(), name = 'service', configFile: given, env: overrides = {}, ...options }) {
  if (!fs.existsSync(IDENTITY_BIN)) {
    throw new Error(`no identity-service binary at ${IDENTITY_BIN}: run \`cargo build --release\` or set IDENTITY_BIN`);
  }
  const servicePort = port ?? await freePort();
  const keyPrefix = options.keyPrefix ?? `interop:${crypto.randomBytes(6).toString('hex')}:`;
  let configFile = given;
  if (!configFile) {
    configFile = path.join(dir, `${name}.toml`);
    fs.writeFileSync(configFile, serviceConfig({ ...options, port: servicePort, keyPrefix }));
  }
  // The configuration is the file (plus `env`): no IDENTITY__* overrides from the caller's shell.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IDENTITY__')));
  Object.assign(env, overrides);
  env.RUST_LOG = process.env.RUST_LOG || 'info';
  env.NO_COLOR = '1';
  const child = new Child(name, IDENTITY_BIN, ['--config', configFile, 'serve'], {
    env, cwd: REPO, logFile: path.join(dir, `${name}.log`),
  });
  const url = `http://127.0.0.1:${servicePort}`;
  await waitFor(`${name} (identity-service)`, child, async (signal) => {
    const res = await fetch(`${url}/health/ready`, { signal });
    const body = await res.text();
    return res.status === 200 || `ready ${res.status} ${body}`;
  }, 20000);
  return {
    name,
    url: (p = '') => `${url}${p}`,
    origin: url,
    port: servicePort,
    keyPrefix,
    configFile,
    child,
    stop: () => child.stop(),
  };
}

/**
 * One OP (with its demo page) and one service in front of it: what most test files need.
 * `opEnv` adds OP_* variables; `provider` is extra provider TOML; `tail`/`session` as in
 * `serviceConfig`.
 */
export async function startStack({ opEnv = {}, provider = '', session = '', tail = '', demo = true } = {}) {
  const dir = tempDir();
  const [servicePort, demoPort] = [await freePort(), await freePort()];
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  const op = await startOp({ serviceUrl, demoPort: demo ? demoPort : null, env: opEnv, dir });
  const demoOrigin = `http://127.0.0.1:${demoPort}`;
  let service;
  try {
    service = await startService({
      port: servicePort,
      dir,
      providers: [{ op, id: 'local', name: 'Local login', extra: provider }],
      origins: [demoOrigin],
      session,
      tail: typeof tail === 'function' ? tail(op) : tail,
    });
  } catch (error) {
    await op.stop();
    throw error;
  }
  return new Stack(dir, { op, service, demoOrigin });
}

/** Processes started together, stopped together. */
export class Stack {
  constructor(dir, parts) {
    this.dir = dir;
    Object.assign(this, parts);
    this.processes = Object.values(parts).filter((p) => p && typeof p.stop === 'function');
  }

  /** Adds another started OP or service to stop at the end. */
  add(name, part) {
    this[name] = part;
    this.processes.push(part);
    return part;
  }

  /** The tails of every log, for failure messages. */
  logTails(lines = 30) {
    return this.processes
      .map((p) => `--- ${p.name} (${p.child.logFile}) ---\n${p.child.lastLines(lines)}`)
      .join('\n');
  }

  /** Stops every process (services first); returns their exits by name. */
  async stop() {
    const exits = {};
    const services = this.processes.filter((p) => !p.issuer);
    const ops = this.processes.filter((p) => p.issuer);
    for (const group of [services, ops]) {
      await Promise.all(group.map(async (p) => { exits[p.name] = await p.stop(); }));
    }
    if (!process.env.INTEROP_KEEP_LOGS) fs.rmSync(this.dir, { recursive: true, force: true });
    return exits;
  }
}

/**
 * `test()` whose failure message ends with the tails of the stack's logs.
 * `getStack` is called at failure time (the stack is usually made in `before`).
 */
export function testWithLogs(getStack) {
  return (name, options, fn) => {
    if (typeof options === 'function') [fn, options] = [options, {}];
    return test(name, options, async (t) => {
      try {
        await fn(t);
      } catch (error) {
        const stack = getStack();
        if (stack && error && typeof error === 'object') {
          error.message = `${error.message}\n\n${stack.logTails()}`;
        }
        throw error;
      }
    });
  };
}
