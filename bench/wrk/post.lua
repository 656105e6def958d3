-- wrk script for the benchmark: one fixed POST (path, body and key from the environment),
-- and a machine-readable summary (a line starting with BENCH_JSON) with wrk's own
-- latency percentiles in microseconds.
local path = os.getenv("BENCH_PATH") or "/api/generate"
local body = os.getenv("BENCH_BODY") or '{"model":"bench","prompt":"hi","stream":false}'
local key = os.getenv("BENCH_KEY") or ""

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"mean_us":%.2f,"stdev_us":%.2f,"min_us":%.1f,"max_us":%.1f,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"p999_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency.mean, latency.stdev, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
