-- wrk script for bench/run. Environment:
--   BENCH_KIND    plain (default) | cookie | proxy | token | logout
--   BENCH_FILE    one value a line: session cookie values (cookie, proxy, token) or logout tokens
--   BENCH_TARGET  the urlencoded `target` of POST /token (token)
--   BENCH_THREADS wrk's -t (logout tokens are split between threads, each used once)
-- cookie: GET with `Cookie: ctIDENTITY=<next session>`, rotating through the file.
-- proxy:  as cookie, with X-Requested-With (the API proxy's CSRF rule).
-- token:  POST /token target=… with the next session cookie and X-Requested-With.
-- logout: POST logout_token=<next unused token>; after the last one `exhausted` is set and
--         tokens repeat (the service then refuses them as replays: errors).
-- done() prints one JSON line with the figures bench/run records (latencies in µs).

local threads = {}
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end

function init(args)
  kind = os.getenv("BENCH_KIND") or "plain"
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  values = {}
  local file = os.getenv("BENCH_FILE")
  if file and kind ~= "plain" then
    local i = 0
    for line in io.lines(file) do
      if line ~= "" then
        if kind ~= "logout" or i % nthreads == id then
          table.insert(values, line)
        end
        i = i + 1
      end
    end
  end
  n = #values
  -- threads start at different sessions so that they do not walk in step
  idx = (kind == "logout") and 0 or math.floor(id * n / nthreads)
  exhausted = false
  if kind == "token" then
    body = "target=" .. (os.getenv("BENCH_TARGET") or "")
  end
end

function request()
  if kind == "plain" or n == 0 then
    return wrk.format(nil)
  end
  idx = idx + 1
  if idx > n then
    idx = 1
    if kind == "logout" then
      exhausted = true
    end
  end
  local value = values[idx]
  if kind == "cookie" then
    return wrk.format(nil, nil, { ["Cookie"] = "ctIDENTITY=" .. value })
  elseif kind == "proxy" then
    return wrk.format(nil, nil, { ["Cookie"] = "ctIDENTITY=" .. value, ["X-Requested-With"] = "bench" })
  elseif kind == "token" then
    return wrk.format("POST", nil, {
      ["Cookie"] = "ctIDENTITY=" .. value,
      ["X-Requested-With"] = "bench",
      ["Content-Type"] = "application/x-www-form-urlencoded",
    }, body)
  else
    return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "logout_token=" .. value)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local ran_out = false
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      ran_out = true
    end
  end
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"errors_status":%d,"errors_socket":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"exhausted":%s}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, tostring(ran_out)))
end
