// A browser-like HTTP client for the interop tests: a cookie jar (host-only cookies, paths,
// Max-Age/Expires; ports ignored, as browsers do), no automatic redirects, and helpers that
// walk the development provider's real pages (login form, logout confirmation form).

import * as crypto from 'node:crypto';

const HTML_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

/** One parsed Set-Cookie header. */
export function parseSetCookie(header, requestUrl) {
  const [pair, ...attributes] = header.split(';');
  const eq = pair.indexOf('=');
  const cookie = {
    name: pair.slice(0, eq).trim(),
    value: pair.slice(eq + 1).trim(),
    host: new URL(requestUrl).hostname,
    path: '/',
    httpOnly: false,
    secure: false,
    sameSite: undefined,
    expires: undefined,
    raw: header,
  };
  const defaultPath = new URL(requestUrl).pathname.replace(/\/[^/]*$/, '') || '/';
  cookie.path = defaultPath;
  for (const attribute of attributes) {
    const [k, ...rest] = attribute.split('=');
    const key = k.trim().toLowerCase();
    const value = rest.join('=').trim();
    if (key === 'path' && value.startsWith('/')) cookie.path = value;
    else if (key === 'httponly') cookie.httpOnly = true;
    else if (key === 'secure') cookie.secure = true;
    else if (key === 'samesite') cookie.sameSite = value;
    else if (key === 'max-age') cookie.expires = Date.now() + Number(value) * 1000;
    else if (key === 'expires' && cookie.expires === undefined) cookie.expires = Date.parse(value);
    else if (key === 'domain') cookie.domain = value;
  }
  return cookie;
}

function pathMatches(cookiePath, requestPath) {
  if (cookiePath === requestPath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

/** Cookies by (host, path, name). */
export class CookieJar {
  constructor() {
    this.cookies = new Map();
  }

  store(requestUrl, setCookieHeaders) {
    for (const header of setCookieHeaders) {
      const cookie = parseSetCookie(header, requestUrl);
      const key = `${cookie.host} ${cookie.path} ${cookie.name}`;
      if (cookie.expires !== undefined && cookie.expires <= Date.now()) this.cookies.delete(key);
      else this.cookies.set(key, cookie);
    }
  }

  /** The `Cookie` header for `url` (or undefined). */
  header(url) {
    const { hostname, pathname } = new URL(url);
    const now = Date.now();
    const matching = [...this.cookies.values()]
      .filter((c) => c.host === hostname && pathMatches(c.path, pathname))
      .filter((c) => c.expires === undefined || c.expires > now)
      .sort((a, b) => b.path.length - a.path.length);
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  /** The cookie `name` (any path) or undefined. */
  get(name) {
    return [...this.cookies.values()].find((c) => c.name === name);
  }

  delete(name) {
    for (const [key, c] of this.cookies) if (c.name === name) this.cookies.delete(key);
  }
}

/** A form found in an HTML page: action (absolute), method and fields. */
export function parseForm(html, baseUrl, idOrAction) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const attr = (tag, name) => {
    const m = new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
    return m ? decodeEntities(m[2] ?? m[3] ?? m[4]) : undefined;
  };
  for (const [, tag, body] of forms) {
    const id = attr(tag, 'id');
    const action = attr(tag, 'action') ?? baseUrl;
    if (idOrAction && id !== idOrAction && !action.includes(idOrAction)) continue;
    const fields = {};
    for (const [, input] of body.matchAll(/<input\b([^>]*)>/gi)) {
      const name = attr(input, 'name');
      if (name) fields[name] = attr(input, 'value') ?? '';
    }
    return {
      id,
      action: new URL(action, baseUrl).href,
      method: (attr(tag, 'method') ?? 'get').toUpperCase(),
      fields,
    };
  }
  return undefined;
}

function decodeEntities(s) {
  return s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_, e) => ({
    amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'",
  }[e]));
}

/** A cookie-keeping, non-redirecting fetch: one "browser". */
export class Browser {
  constructor() {
    this.jar = new CookieJar();
  }

  /**
   * One request. `form` (object) is sent urlencoded; `accept` defaults to a browser's
   * navigation Accept header (`json: true` asks for JSON); `cookie: false` sends none.
   */
  async request(url, { method = 'GET', form, headers = {}, json = false, cookie = true } = {}) {
    const h = { accept: json ? 'application/json' : HTML_ACCEPT, ...headers };
    const jarCookie = cookie ? this.jar.header(url) : undefined;
    if (jarCookie && !h.cookie) h.cookie = jarCookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      h['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
    this.jar.store(url, res.headers.getSetCookie());
    return res;
  }

  /** GET as JSON: { status, headers, body }. */
  async getJson(url, options = {}) {
    const res = await this.request(url, { ...options, json: true });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: res.status, headers: res.headers, body };
  }

  /**
   * Follows redirects from `start` (a URL or { url, method, form }) until `stop(url)` is
   * true (that URL is not fetched) or a non-redirect answer arrives. Returns
   * { url, stopped, res, html, trail }, trail = [{ method, url, status, location }].
   */
  async follow(start, { stop = () => false, maxHops = 25 } = {}) {
    let req = typeof start === 'string' ? { url: start, method: 'GET' } : { method: 'GET', ...start };
    const trail = [];
    for (let hop = 0; hop < maxHops; hop += 1) {
      if (stop(req.url)) return { url: req.url, stopped: true, trail };
      const res = await this.request(req.url, { method: req.method, form: req.form });
      const location = res.headers.get('location');
      trail.push({ method: req.method, url: req.url, status: res.status, location });
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        req = { url: new URL(location, req.url).href, method: 'GET' };
        continue;
      }
      const html = await res.text();
      return { url: req.url, stopped: false, res, html, trail };
    }
    throw new Error(`too many redirects: ${JSON.stringify(trail, null, 1)}`);
  }
}

/** Describes a trail for assertion messages (query strings cut: they hold codes and state). */
export function describeTrail(trail) {
  return trail.map((s) => `${s.method} ${s.url.split('?')[0]} -> ${s.status}${s.location ? ` ${s.location.split('?')[0]}` : ''}`).join('\n');
}

/**
 * Logs in through the service: GET /login?returnURL=…, then the provider's real login form
 * (fields login/password), consent (automatic), /callback, until the browser is sent to
 * `returnURL`'s origin. Returns { finalUrl, trail, loginPages }.
 */
export async function login(browser, service, {
  username, password, returnURL, provider, prompt, loginHint, maxForms = 3,
}) {
  const query = new URLSearchParams({ returnURL });
  if (provider) query.set('provider', provider);
  if (prompt) query.set('prompt', prompt);
  if (loginHint) query.set('login_hint', loginHint);
  const returnOrigin = new URL(returnURL).origin;
  const stop = (url) => new URL(url).origin === returnOrigin;
  let step = await browser.follow(service.url(`/login?${query}`), { stop });
  const trail = [...step.trail];
  const loginPages = [];
  for (let forms = 0; !step.stopped; forms += 1) {
    const form = step.html && parseForm(step.html, step.url, 'login-form');
    if (!form || forms >= maxForms) {
      throw new Error(`login did not reach ${returnOrigin}; last page ${step.url.split('?')[0]} `
        + `(${step.res?.status}):\n${describeTrail(trail)}\n${(step.html ?? '').slice(0, 600)}`);
    }
    loginPages.push(step);
    step = await browser.follow({
      url: form.action,
      method: form.method,
      form: { ...form.fields, login: username, password },
    }, { stop });
    trail.push(...step.trail);
  }
  return { finalUrl: step.url, trail, loginPages };
}

/**
 * Follows a logout from `start` through the provider's end-session pages (the automatic
 * confirmation form, or `confirm: true` to press "yes" on the asking page) until `stop`.
 */
export async function followLogout(browser, start, { stop, confirm = true }) {
  let step = await browser.follow(start, { stop });
  const trail = [...step.trail];
  for (let forms = 0; !step.stopped && forms < 3; forms += 1) {
    const form = step.html && parseForm(step.html, step.url, 'op.logoutForm');
    if (!form) break;
    const fields = { ...form.fields };
    if (confirm) fields.logout = 'yes';
    step = await browser.follow({ url: form.action, method: form.method, form: fields }, { stop });
    trail.push(...step.trail);
  }
  return { ...step, trail };
}

/** PKCE pair. */
export function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** The payload and header of a JWT, unverified (for assertions only). */
export function decodeJwt(token) {
  const [header, payload] = token.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')));
  return { header, payload };
}

/**
 * Runs the authorization code flow ourselves as the `identity` client (not through the
 * service): the provider's login form, then the code at its token endpoint. Returns the
 * token response (access_token, id_token, refresh_token, …).
 */
export async function providerTokens(browser, op, { username, password, redirectUri, scope = 'openid profile email' }) {
  const { verifier, challenge } = pkce();
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: 'identity',
    redirect_uri: redirectUri,
    scope,
    state: crypto.randomBytes(16).toString('base64url'),
    nonce: crypto.randomBytes(16).toString('base64url'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  const stop = (url) => url.startsWith(redirectUri);
  let step = await browser.follow(op.url(`/auth?${query}`), { stop });
  const trail = [...step.trail];
  if (!step.stopped) {
    const form = parseForm(step.html ?? '', step.url, 'login-form');
    if (!form) throw new Error(`no login form at the provider:\n${describeTrail(trail)}`);
    step = await browser.follow({ url: form.action, method: 'POST', form: { ...form.fields, login: username, password } }, { stop });
    trail.push(...step.trail);
  }
  const code = step.stopped && new URL(step.url).searchParams.get('code');
  if (!code) throw new Error(`no code:\n${describeTrail(trail)}`);
  const res = await fetch(op.url('/token'), {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from('identity:identity-dev-secret').toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token endpoint ${res.status}: ${JSON.stringify(body)}`);
  return body;
}
