#!/usr/bin/env bash
# Measures the API proxy (SPEC 9) against the release binary, in one run:
#   direct  wrk -> upstream (nginx answering a small JSON)
#   floor   wrk -> nginx proxy_pass (keep-alive upstream) -> upstream
#   actix   wrk -> bare actix-web reverse proxy over awc (bench/floor, mode p) -> upstream
#   ours    wrk -> identity-service <proxy_path> (session cookie, token attached) -> upstream
# and prints req/s and CPU time per request of the proxy process (from /proc/<pid>/stat,
# all threads; nginx: master and workers), plus ours / floor and ours / actix (the
# issue's two floor proxies: what any proxy costs here, and what actix-web itself costs). Then, unless MEMORY=0, the
# service's RSS growth over a 100 MB download and a 100 MB upload through the proxy.
# Needs: Rust, Node (dev/op), wrk and nginx (apt-get install wrk nginx); Redis when
# STORE=redis (default memory: the proxy path itself, no Redis round trip).
# Usage: bench/proxy.sh [DURATION_SECONDS] [CONNECTIONS]
#   ROUNDS=N (default 3): floor and ours are measured N times in alternation and the
#   ratio is taken between their medians (this machine drifts more than a single run shows).
#   IDENTITY_BIN_B=PATH (with STORE=redis): a second binary beside the first, sharing its
#   sessions, measured in the same alternation ("oursb"): a before/after of one change.
#   PERF=DIR: also `perf record` the floor and the service during their runs into
#   DIR/floor.data and DIR/ours.data (those runs then carry perf's overhead).
#   ACCESS_LOG=1: run the service with its default logging (an access line per request)
#   instead of `[log] access = false` and RUST_LOG=warn (the floors write no access log).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
store=${STORE:-memory}
op_port=9482; service_port=8482; upstream_port=18491; floor_port=18492; sink_port=18493; actix_port=18494
for tool in wrk nginx curl python3; do
  command -v $tool >/dev/null || { echo "$tool is not installed (apt-get install wrk nginx curl python3)" >&2; exit 1; }
done
[ -n "${IDENTITY_BIN:-}" ] || cargo build --release --quiet
bin=${IDENTITY_BIN:-${CARGO_TARGET_DIR:-target}/release/identity-service}
(cd bench/floor && CARGO_TARGET_DIR=target cargo build --release --quiet)
(cd dev/op && [ -d node_modules ] || npm ci --silent)
workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$workdir/up/nginx.pid" ] && kill "$(cat "$workdir/up/nginx.pid")" 2>/dev/null || true
  [ -f "$workdir/floor/nginx.pid" ] && kill "$(cat "$workdir/floor/nginx.pid")" 2>/dev/null || true
  sleep 0.3; rm -rf "$workdir"
}
trap cleanup EXIT

nginx_conf() { # dir port location-body
  mkdir -p "$1"
  cat >"$1/nginx.conf" <<NGINX
daemon on;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 2;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  upstream up { server 127.0.0.1:$upstream_port; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    client_max_body_size 0;
    location / { $3 }
  }
}
NGINX
  nginx -c "$1/nginx.conf" -p "$1"
}
nginx_conf "$workdir/up" $upstream_port 'default_type application/json; return 200 "{\"id\":42,\"name\":\"small json\",\"tags\":[\"a\",\"b\"]}";'
nginx_conf "$workdir/floor" $floor_port 'proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Cookie ""; proxy_set_header Authorization "Bearer fixed"; proxy_set_header X-Forwarded-For $remote_addr;'

bench/floor/target/release/bench-floor p "127.0.0.1:$actix_port" 2 "http://127.0.0.1:$upstream_port" \
  >"$workdir/actix.log" 2>&1 &
actix_pid=$!
pids+=($actix_pid)
OP_PORT=$op_port OP_ISSUER=http://127.0.0.1:$op_port SERVICE_URL=http://127.0.0.1:$service_port \
  DEMO_PORT=off node dev/op/server.mjs >"$workdir/op.log" 2>&1 &
pids+=($!)
cat >"$workdir/bench.toml" <<TOML
[server]
bind = "127.0.0.1:$service_port"
public_url = "http://127.0.0.1:$service_port"
workers = 2
$( [ "${ACCESS_LOG:-0}" = 1 ] || printf '[log]\naccess = false\n' )
[session]
store = "$store"
key_prefix = "bench-proxy:$(date +%s):"
[proxy]
max_body = "200MB"
[[providers]]
id = "local"
issuer = "http://127.0.0.1:$op_port"
client_id = "identity"
client_secret = "identity-dev-secret"
[[targets]]
url = "http://127.0.0.1:$upstream_port/"
strategy = "access_token"
proxy_path = "/api/small"
[[targets]]
url = "http://127.0.0.1:$sink_port/"
strategy = "access_token"
proxy_path = "/api/big"
TOML
sleep 1
service_env=(RUST_LOG=warn)
[ "${ACCESS_LOG:-0}" = 1 ] && service_env=(-u RUST_LOG)
env "${service_env[@]}" "$bin" --config "$workdir/bench.toml" >"$workdir/service.log" 2>&1 &
service_pid=$!
pids+=($service_pid)
ready=
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$service_port/health/ready" >/dev/null && { ready=1; break; }
  kill -0 "$service_pid" 2>/dev/null || break
  sleep 0.2
done
[ -n "$ready" ] || { echo "the service did not become ready" >&2; for log in service op; do tail -n 20 "$workdir/$log.log" >&2; done; exit 1; }
if [ -n "${IDENTITY_BIN_B:-}" ]; then
  [ "$store" = redis ] || { echo "IDENTITY_BIN_B needs STORE=redis (shared sessions)" >&2; exit 1; }
  service_b_port=$((service_port + 10))
  sed "s/^bind = .*/bind = \"127.0.0.1:$service_b_port\"/" "$workdir/bench.toml" >"$workdir/bench-b.toml"
  env "${service_env[@]}" "$IDENTITY_BIN_B" --config "$workdir/bench-b.toml" >"$workdir/service-b.log" 2>&1 &
  service_b_pid=$!
  pids+=($service_b_pid)
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$service_b_port/health/ready" >/dev/null && break
    sleep 0.2
  done
fi
cookie=$(bench/login.sh "http://127.0.0.1:$service_port")
hdr=(-H "Cookie: ctIDENTITY=$cookie" -H "X-Requested-With: bench")
curl -sf "${hdr[@]}" "http://127.0.0.1:$service_port/api/small/item" | grep -q '"small json"' \
  || { echo "the proxied request failed" >&2; tail "$workdir/service.log" >&2; exit 1; }

ticks() { # CPU ticks (user+system) of the given pids and their threads
  local total=0
  for pid in "$@"; do
    read -r -a f <"/proc/$pid/stat"; total=$((total + f[13] + f[14]))
  done
  echo $total
}
nginx_pids() { echo "$(cat "$1/nginx.pid") $(pgrep -P "$(cat "$1/nginx.pid")" | tr '\n' ' ')"; }
hz=$(getconf CLK_TCK)
cpu_floor=(); cpu_actix=(); cpu_ours=(); cpu_oursb=(); cpu_direct=()
run() { # name url pids...
  local name=$1 url=$2; shift 2
  local before after out reqs
  local perf_pid=""
  if [ -n "${PERF:-}" ] && [ "$name" != direct ]; then
    mkdir -p "$PERF"
    perf record -e cpu-clock -F 999 --call-graph dwarf -p "$(echo "$@" | tr ' ' ',')" -o "$PERF/$name.data" \
      -- sleep "$duration" >"$workdir/perf.log" 2>&1 &
    perf_pid=$!
  fi
  before=$(ticks "$@")
  out=$(wrk -t2 -c"$connections" -d"${duration}s" --latency "${hdr[@]}" "$url")
  after=$(ticks "$@")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  reqs=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ { print $2 }')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" { print $2 }')
  us=$(python3 -c "print(round(($after - $before) * 1e6 / $hz / $reqs, 1))")
  # wrk prints these lines only when there were any.
  non2xx=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses/ { print $NF }')
  sockerr=$(printf '%s\n' "$out" | awk '/Socket errors/ { $1 = $2 = ""; print }' | sed 's/^ *//')
  printf '%-7s %10s req/s  p99 %8s  proxy CPU %6s us/request%s%s\n' "$name" "$rps" "$p99" "$us" \
    "${non2xx:+  non-2xx: $non2xx}" "${sockerr:+  socket errors: $sockerr}"
  eval "cpu_$name+=(\"$us\")"
}
result="bench/results/proxy-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "# proxied GET of a small JSON, release build, $(nproc) cores, $(date -u +%FT%TZ), store=$store"
  echo "# wrk -t2 -c$connections -d${duration}s; CPU = user+system time of the proxy process(es) / requests"
  if [ "${ACCESS_LOG:-0}" = 1 ]; then
    echo "# service logging: default (access line per request); floors: no access log"
  else
    echo "# service logging: [log] access = false, RUST_LOG=warn (as the floors: no access log)"
  fi
  run direct "http://127.0.0.1:$upstream_port/item" $(nginx_pids "$workdir/up")
  for _ in $(seq 1 "${ROUNDS:-3}"); do
    run floor "http://127.0.0.1:$floor_port/item" $(nginx_pids "$workdir/floor")
    run actix "http://127.0.0.1:$actix_port/item" "$actix_pid"
    run ours "http://127.0.0.1:$service_port/api/small/item" "$service_pid"
    [ -z "${IDENTITY_BIN_B:-}" ] || run oursb "http://127.0.0.1:$service_b_port/api/small/item" "$service_b_pid"
  done
  python3 - "${cpu_floor[*]}" "${cpu_actix[*]}" "${cpu_ours[*]}" "${cpu_oursb[*]}" <<'PY'
import statistics, sys
floor, actix, ours = (statistics.median(map(float, arg.split())) for arg in sys.argv[1:4])
print(f"median CPU per request: nginx floor {floor} us, actix floor {actix} us, ours {ours} us")
print(f"ours / nginx floor: {ours / floor:.2f}; ours / actix floor: {ours / actix:.2f}")
if sys.argv[4].strip():
    b = statistics.median(map(float, sys.argv[4].split()))
    print(f"B: {b} us; B / nginx floor: {b / floor:.2f}; B / actix floor: {b / actix:.2f}; B / ours: {b / ours:.2f}")
PY

  if [ "${MEMORY:-1}" != 0 ]; then
    python3 - "$sink_port" >"$workdir/sink.log" 2>&1 <<'PY' &
import http.server, sys
CHUNK = bytes(range(256)) * 256
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[-1])
        self.send_response(200); self.send_header("Content-Length", str(n)); self.end_headers()
        while n > 0:
            piece = CHUNK[: min(n, len(CHUNK))]; self.wfile.write(piece); n -= len(piece)
    def do_PUT(self):
        n = int(self.headers.get("Content-Length", 0)); got = 0
        while got < n:
            got += len(self.rfile.read(min(65536, n - got)))
        body = str(got).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
    pids+=($!)
    # A loaded machine can take more than a moment to start Python.
    for _ in $(seq 1 50); do
      curl -s -o /dev/null "http://127.0.0.1:$sink_port/0" && break
      sleep 0.2
    done
    rss() { awk '/VmRSS/ { print $2 }' "/proc/$service_pid/status"; }
    hwm() { awk '/VmHWM/ { print $2 }' "/proc/$service_pid/status"; }
    size=100000000
    r0=$(rss); h0=$(hwm)
    got=$(curl -sS "${hdr[@]}" -o /dev/null -w '%{size_download} bytes, HTTP %{http_code}' "http://127.0.0.1:$service_port/api/big/$size")
    r1=$(rss); h1=$(hwm)
    echo "100 MB download: $got; RSS ${r0} -> ${r1} KiB, peak (VmHWM) ${h0} -> ${h1} KiB (growth $(( (h1 - h0) / 1024 )) MiB)"
    head -c $size /dev/zero >"$workdir/upload.bin"
    got=$(curl -sS "${hdr[@]}" -T "$workdir/upload.bin" "http://127.0.0.1:$service_port/api/big/up")
    r2=$(rss); h2=$(hwm)
    echo "100 MB upload: upstream read $got bytes; RSS ${r1} -> ${r2} KiB, peak (VmHWM) ${h1} -> ${h2} KiB (growth $(( (h2 - h1) / 1024 )) MiB)"
  fi
} | tee "$result"
echo "written to $result"
