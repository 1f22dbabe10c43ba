-- wrk script: GET /v1/check?uscc=<code>&matter=<matter>, rotating through a codes file.
--
--   wrk -t1 -c32 -d10s --latency -s loadtest/wrk_codes.lua http://127.0.0.1:8000 \
--       -- <codes file> [<api key>] [<matter>]
--
-- Script arguments (after --) win over the environment: BENCH_CODES (codes file, one
-- code a line), BENCH_KEY (sent as "Authorization: Bearer <key>"; none if empty) and
-- BENCH_MATTER (default bidding). Every request is formatted once, in init().
-- BENCH_DELAY_MS, if set, makes each connection wait that long before each request:
-- a paced load (about connections / (latency + delay) requests a second) for latency
-- below saturation.

local requests = {}
local count = 0
local index = 0
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")

if pause then
   function delay()
      return pause
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
