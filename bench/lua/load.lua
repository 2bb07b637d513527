-- wrk script for bench/load.py: the request from the environment, status codes counted per
-- thread, one JSON line at the end.
--
--   WRK_METHOD     GET (default) or POST
--   WRK_BODY_FILE  file whose bytes are the request body (sent as application/json)
--
-- done() prints a line starting with "WRK_JSON " followed by: requests (responses received),
-- duration_us, bytes, errors {connect, read, write, status, timeout} as wrk counts them, latency_us
-- {min, mean, stdev, max, p50, p90, p95, p99, p999} over every response (any status), statuses
-- {code: count}, retry_after (responses that carried a Retry-After header) and sent (requests
-- written, so sent - requests is what was still unanswered when the run stopped).

local method = os.getenv("WRK_METHOD") or "GET"
local body_file = os.getenv("WRK_BODY_FILE") or ""

wrk.method = method
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  retry_after = 0
  sent = 0
  fixed = wrk.format()
end

function request()
  sent = sent + 1
  return fixed
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if headers["retry-after"] or headers["Retry-After"] then
    retry_after = retry_after + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  local with_retry, total_sent = 0, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      counts[code] = (counts[code] or 0) + n
    end
    with_retry = with_retry + (t:get("retry_after") or 0)
    total_sent = total_sent + (t:get("sent") or 0)
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', code, n))
  end
  local e = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "sent": %d, "retry_after": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, '
      .. '"p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d}, "statuses": {%s}}',
    summary.requests, summary.duration, summary.bytes, total_sent, with_retry,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ", ")
  )
  io.write("WRK_JSON " .. out .. "\n")
end
