-- wrk script: GET /v1/check?uscc=<code>&matter=<matter>, rotating through a codes file.
--
--   wrk -t1 -c32 -d10s --latency -s loadtest/wrk_codes.lua http://127.0.0.1:8000 \
--       -- <codes file> [<api key>] [<matter>]
--
-- Script arguments (after --) win over the environment: BENCH_CODES (codes file, one
-- code a line), BENCH_KEY (sent as "Authorization: Bearer <key>"; none if empty) and
-- BENCH_MATTER (default bidding). Every request is formatted once, in init().
-- BENCH_DELAY_MS, if set, makes each connection wait before each request, for that many
-- milliseconds on average: a paced load (about connections / (latency + delay) requests
-- a second) for latency below saturation. The waits are drawn from an exponential
-- distribution, the think times of TPC-C's terminals: with one fixed wait, connections
-- answered together (by one group commit, one GC pause) ask again together, and keep
-- doing so, which no population of independent callers does (measured on the gateway
-- at 2,000 req/s: p50 4.4-5.4 ms with fixed waits, 2.4-2.6 ms with these).

local requests = {}
local count = 0
local index = 0
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")

if pause then
   function delay()
      -- wrk takes whole milliseconds: rounded, the mean stays ``pause``.
      return math.floor(-pause * math.log(1 - math.random()) + 0.5)
   end
end

function init(args)
   local path = args[1] or os.getenv("BENCH_CODES")
   local key = args[2] or os.getenv("BENCH_KEY") or ""
   local matter = args[3] or os.getenv("BENCH_MATTER") or "bidding"
   if not path then
      error("wrk_codes.lua: give the codes file as a script argument or in BENCH_CODES")
   end
   local headers = {}
   if key ~= "" then
      headers["Authorization"] = "Bearer " .. key
   end
   local file = assert(io.open(path, "r"))
   for line in file:lines() do
      local code = line:match("^%s*(%S+)%s*$")
      if code then
         count = count + 1
         local target = "/v1/check?uscc=" .. code .. "&matter=" .. matter
         requests[count] = wrk.format("GET", target, headers)
      end
   end
   file:close()
   if count == 0 then
      error("wrk_codes.lua: no codes in " .. path)
   end
end

function request()
   index = index % count + 1
   return requests[index]
end
