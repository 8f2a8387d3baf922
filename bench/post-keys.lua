-- wrk script: POST like the kit's post.lua, but each request to its own key
-- (/kv/bench-key-<n>), so dtc's per-key ordering does not queue the writes behind each other.
wrk.method = "POST"
wrk.body = '{"key":"bench-key","value":"0123456789abcdef0123456789abcdef"}'
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
   n = n + 1
   return wrk.format(nil, "/kv/bench-key-" .. n)
end
function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"rps":%.2f,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
