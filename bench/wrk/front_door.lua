-- wrk script for bench/front_doors.py: POST one agent-sized body with one client's headers.
-- BENCH_BODY_FILE is the JSON body; BENCH_HEADERS_FILE holds one "Name: value" header a line
-- (the client's own: Authorization or x-api-key, anthropic-version, User-Agent, session id...).
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
for line in io.lines(os.getenv("BENCH_HEADERS_FILE")) do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end
