-- The wrk script of scripts/bench.sh. wrk prints no count per HTTP status and nothing per
-- second, so each thread counts its responses here and done() writes the run's figures to
-- a file, in the line format scripts/bench/figures.ts parses (which also decides which
-- statuses are failures). done() runs also when wrk is stopped early with SIGINT.
-- Reads (environment; every thread's Lua state reads it again):
--   BENCH_OUT       the file done() writes
--   BENCH_T0_MS     when the stream started, epoch milliseconds: second 0 of the timeline
--   BENCH_RATE      requests per second in all (--rate); unset: as fast as answers come
--   BENCH_THREADS   wrk's --threads, which share BENCH_RATE equally
--   BENCH_PATHS     paths to request in turn, space-separated, each repeated by its weight
--                   (--path-mix); unset: the URL's own path
local ffi = require("ffi")

-- os.time() counts whole seconds only; wrk is built on LuaJIT, whose ffi reaches libc.
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_REALTIME = 0
local timespec = ffi.new("bench_timespec")

local function now_ms()
    ffi.C.clock_gettime(CLOCK_REALTIME, timespec)
    return tonumber(timespec.tv_sec) * 1000 + math.floor(tonumber(timespec.tv_nsec) / 1e6)
end

local t0_ms = tonumber(os.getenv("BENCH_T0_MS") or "") or now_ms()
local rate = tonumber(os.getenv("BENCH_RATE") or "")
local paths = {}
for p in (os.getenv("BENCH_PATHS") or ""):gmatch("%S+") do
    paths[#paths + 1] = p
end

-- Per thread. Globals, because done() reads them with thread:get().
sent = 0
statuses = {}
-- (second since t0) * 1000 + status -> count: flat, because wrk's thread:get() breaks
-- on nested tables (wrk 4.1.0 segfaults copying them).
per_second = {}
retry_after_503 = 0

-- A fixed pause per connection (connections * 1000 / rate) would send fewer requests the
-- slower the answers come. Instead each thread hands out send times interval_ms apart
-- to whichever of its connections asks next; a connection waiting on a slow answer leaves
-- its slot to another, and a stall builds no backlog to burst out afterwards.
if rate then
    local interval_ms = tonumber(os.getenv("BENCH_THREADS")) * 1000 / rate
    local next_slot = 0
    function delay()
        local now = now_ms()
        local slot = math.max(next_slot, now)
        next_slot = slot + interval_ms
        return slot - now
    end
end

-- Defining request() makes wrk call it before every request, which is how `sent` counts.
local next_path = 0
function request()
    sent = sent + 1
    if #paths == 0 then
        return wrk.format()
    end
    next_path = next_path % #paths + 1
    return wrk.format(nil, paths[next_path])
end

local function has_retry_after(headers)
    for name in pairs(headers) do
        if name:lower() == "retry-after" then
            return true
        end
    end
    return false
end

function response(status, headers)
    statuses[status] = (statuses[status] or 0) + 1
    local second = math.max(0, math.floor((now_ms() - t0_ms) / 1000))
    local key = second * 1000 + status
    per_second[key] = (per_second[key] or 0) + 1
    if status == 503 and has_retry_after(headers) then
        retry_after_503 = retry_after_503 + 1
    end
end

-- The main Lua state: setup() sees each thread, done() adds up what they counted.
local threads = {}

function setup(thread)
    threads[#threads + 1] = thread
end

local function add_into(total, part)
    for k, n in pairs(part) do
        total[k] = (total[k] or 0) + n
    end
end

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    return keys
end

function done(summary, latency)
    local total_sent, total_retry, all_statuses, all_seconds = 0, 0, {}, {}
    for _, thread in ipairs(threads) do
        total_sent = total_sent + thread:get("sent")
        total_retry = total_retry + thread:get("retry_after_503")
        add_into(all_statuses, thread:get("statuses"))
        add_into(all_seconds, thread:get("per_second"))
    end
    local e = summary.errors
    local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
    out:write(string.format("requests %d\n", summary.requests))
    out:write(string.format("sent %d\n", total_sent))
    out:write(string.format("duration_us %d\n", summary.duration))
    out:write(string.format("socket %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
    out:write(string.format("latency_us %d %d %d %d\n",
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
    for _, status in ipairs(sorted_keys(all_statuses)) do
        out:write(string.format("status %d %d\n", status, all_statuses[status]))
    end
    out:write(string.format("retry_after_503 %d\n", total_retry))
    for _, key in ipairs(sorted_keys(all_seconds)) do
        out:write(string.format("second %d %d %d\n", math.floor(key / 1000), key % 1000, all_seconds[key]))
    end
    out:close()
end
