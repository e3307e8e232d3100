// Reads `perf script` output (samples with call stacks) on stdin and prints, as markdown:
// the top functions by self time, and the inclusive share of the cost groups issue 10
// suspects (a sample counts for a group when any frame of its stack matches). With an
// output path it also writes folded stacks (for inferno-flamegraph).
// Usage: perf script -i FILE.data | node bench/profile.mjs TITLE [FOLDED_OUT]

import * as fs from 'node:fs';
import * as readline from 'node:readline';

const [title = 'profile', foldedOut] = process.argv.slice(2);

// Suspects of issue 10 and other groups worth knowing; regexes over demangled frames.
const GROUPS = [
  ['access log: tracing-subscriber fmt layer (format + write)', /tracing_subscriber::fmt/],
  ['  of which: stdout write (std::io::stdio, write(2))', /std::io::stdio|Stdout|StdoutLock/],
  ['spans: tracing-actix-web + span lifecycle', /tracing_actix_web|tracing_core::|tracing::span|sharded_slab|tracing_subscriber::registry/],
  ['request id: uuid', /uuid::/],
  ['metrics: actix-web-prom + prometheus', /actix_web_prom|prometheus::/],
  ['CORS wrapper (actix-cors)', /actix_cors/],
  ['header wrapper strip_credentials_without_origin', /strip_credentials_without_origin/],
  ['serde_json deserialise (any)', /serde_json::de::|serde::de::|as serde::de::Deserialize|__FieldVisitor|Visitor/],
  ['serde_json serialise (any)', /serde_json::ser::|as serde::ser::Serialize/],
  ['session record open (crypto::open)', /crypto::open/],
  ['session seal / touch (SessionService::seal, replace)', /SessionService::seal|crypto::seal|store::.*replace/],
  ['SHA-256 (any)', /sha2::|Sha256|sha256|SHA256|sha256_block/],
  ['AES-GCM (any)', /aes_gcm|Aes256Gcm|aes::|ghash|polyval|gcm_|aes_hw|aesni|EVP_AEAD/i],
  ['JWT verify (jsonwebtoken, RSA/ECDSA)', /jsonwebtoken|RSA_verify|rsa_|ecdsa|ECDSA|bn_|BN_/],
  ['redis client (redis::)', /redis::/],
  ['actix-http h1 codec / dispatcher', /actix_http::h1/],
  ['routing / app service (actix_web::app_service, scope, resource)', /actix_web::(app_service|scope|resource|route)/],
  ['tokio runtime + mio', /tokio::|mio::/],
  ['allocator (malloc/free/realloc)', /^(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|__libc_malloc|__libc_free|malloc_consolidate|__GI___libc_malloc|__GI___libc_free|_int_realloc)$|je_|mi_/],
  ['kernel (syscalls, TCP)', /\[kernel|entry_SYSCALL|__x64_sys|tcp_|do_syscall|__sys_/],
  ['syscall wrappers write/send/recv/epoll (libc)', /^(__libc_write|__GI___libc_write|write|__send|send|sendto|__libc_send|recv|__libc_recv|recvfrom|epoll_wait|__GI_epoll_wait|writev|__writev|read|__libc_read)$/],
];

// Attribution (each sample counted once): a sample belongs to the first "work" group found
// anywhere in its stack (so the log writer's write(2) counts as access log, the Redis
// client's syscalls as Redis); otherwise to the wrapper nearest its leaf. Middleware
// wrappers enclose the whole handler, so their inclusive share above is an upper bound;
// here they only get what they do themselves.
const WORK = [
  ['access log line (tracing-subscriber fmt: format + stdout write)', /tracing_subscriber::fmt/],
  ['request id (uuid, getrandom)', /uuid::|getrandom/],
  ['Prometheus (actix-web-prom, prometheus)', /actix_web_prom|prometheus::/],
  ['session record: serde_json deserialise', /serde_json::de::|as serde::de::Deserialize|serde_core::de/],
  ['answer: serde_json serialise', /serde_json::ser::|as serde::ser::Serialize|serde_core::ser/],
  ['session record: AES-GCM open / seal', /crypto::open|crypto::seal|aes_gcm|_aesni_|gcm_|ghash/i],
  ['SHA-256 / key derivation', /sha2::|Sha256|sha256|derive_name|derive_key|hkdf/],
  ['Redis client (redis::, our store)', /redis::|identity_service::store::/],
];
const WRAPPERS = [
  ['spans + tracing dispatch (tracing-actix-web, tracing-core, registry)', /tracing_actix_web|tracing_core::|tracing::span|sharded_slab|tracing_subscriber::registry|tracing_subscriber::layer/],
  ['CORS wrapper (actix-cors)', /actix_cors/],
  ['strip_credentials_without_origin', /strip_credentials_without_origin/],
  ['our handlers and extractors (identity_service::, other)', /identity_service::/],
  ['routing / app service (actix-web)', /actix_web::|actix_router::/],
  ['HTTP/1 codec and dispatcher (actix-http)', /actix_http::/],
  ['tokio / mio / actix-rt scheduling', /tokio::|mio::|actix_rt::|actix_server::/],
];
const attributed = new Map();

const selfCount = new Map();
const groupCount = GROUPS.map(() => 0);
const folded = new Map();
let samples = 0;
let stack = [];

function flush() {
  if (stack.length === 0) return;
  samples += 1;
  const leaf = stack[0];
  selfCount.set(leaf, (selfCount.get(leaf) ?? 0) + 1);
  GROUPS.forEach(([, re], i) => {
    if (stack.some((frame) => re.test(frame))) groupCount[i] += 1;
  });
  let group = WORK.find(([, re]) => stack.some((frame) => re.test(frame)))?.[0];
  if (!group) {
    for (const frame of stack) {
      group = WRAPPERS.find(([, re]) => re.test(frame))?.[0];
      if (group) break;
    }
  }
  group ??= 'other (kernel/libc outside the above: idle-loop syscalls, allocator)';
  attributed.set(group, (attributed.get(group) ?? 0) + 1);
  if (foldedOut) {
    const key = [...stack].reverse().join(';');
    folded.set(key, (folded.get(key) ?? 0) + 1);
  }
  stack = [];
}

// A frame line: "\t    55d0c1a2b3c4 symbol+0x12 (/path/dso)". Header lines start unindented.
const FRAME = /^\s+[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?\s+\(([^)]*)\)\s*$/;
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === '') { flush(); continue; }
  const m = FRAME.exec(line);
  if (!m) { flush(); continue; }
  let symbol = m[1];
  if (symbol === '[unknown]') symbol = `[unknown ${m[2].split('/').pop()}]`;
  // strip Rust hashes and generic noise for readability
  symbol = symbol.replace(/::h[0-9a-f]{16}$/, '');
  stack.push(symbol);
}
flush();

const pct = (n) => `${((100 * n) / Math.max(samples, 1)).toFixed(1)} %`;
const out = [];
out.push(`### ${title}: ${samples} samples`);
out.push('');
out.push('| attributed cost (each sample once) | share |');
out.push('|---|---:|');
[...attributed.entries()].sort((a, b) => b[1] - a[1]).forEach(([name, n]) => out.push(`| ${name} | ${pct(n)} |`));
out.push('');
out.push('| inclusive group (sample has a frame in it; wrappers include what they wrap) | share |');
out.push('|---|---:|');
GROUPS.forEach(([name], i) => out.push(`| ${name} | ${pct(groupCount[i])} |`));
out.push('');
out.push('| top functions by self time | share |');
out.push('|---|---:|');
[...selfCount.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)
  .forEach(([name, n]) => out.push(`| \`${name.slice(0, 140).replace(/\|/g, '\\|')}\` | ${pct(n)} |`));
out.push('');
process.stdout.write(`${out.join('\n')}\n`);
if (foldedOut) {
  fs.writeFileSync(foldedOut, [...folded.entries()].map(([k, n]) => `${k} ${n}`).join('\n') + '\n');
}
