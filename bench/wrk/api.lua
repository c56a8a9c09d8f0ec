-- wrk script: debits (each with a unique Idempotency-Key) or balance checks on customers LO..HI.
-- Environment: LS_KEYS (API keys, comma-separated: the load is spread over them so that the per-key
-- rate limit is not what gets measured), LS_MODE ("debit" or "balance"), LS_LO and LS_HI (customer ids).
local keys, mode = {}, os.getenv("LS_MODE")
for key in string.gmatch(os.getenv("LS_KEYS"), "[^,]+") do table.insert(keys, "Bearer " .. key) end
local lo, hi = tonumber(os.getenv("LS_LO")), tonumber(os.getenv("LS_HI"))
local threads, next_thread = {}, 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  run_id = tostring(os.time()) .. "-" .. tostring(thread_id)
  math.randomseed(os.time() + thread_id * 7919)
end

function request()
  counter = counter + 1
  local customer = math.random(lo, hi)
  local auth = keys[math.random(1, #keys)]
  if mode == "balance" then
    return wrk.format("GET", "/api/v1/customers/" .. customer, {["Authorization"] = auth})
  end
  return wrk.format("POST", "/api/v1/customers/" .. customer .. "/debit",
    {["Authorization"] = auth, ["Content-Type"] = "application/json",
     ["Idempotency-Key"] = "bench-" .. run_id .. "-" .. counter},
    '{"amount": 1, "reason": "bench"}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
