-- wrk script for the bench: POST a realistic chat body with the client's headers.
-- bench/load.py sets BENCH_BODY_FILE (the JSON body) and BENCH_AUTH (the bearer key).
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["User-Agent"] = "OpenAI/Python 1.55.0"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_AUTH")
