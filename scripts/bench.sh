#!/usr/bin/env bash
# Sends a stream of HTTP requests with wrk and reports what came back: requests, throughput,
# latency percentiles, failed requests by kind (wrk's socket errors, each failed HTTP
# status) and a per-second timeline, optionally with a fault command run part way through.
# SIGINT or SIGTERM stops the stream early and still prints the whole report and JSON.
# Usage: scripts/bench.sh --url URL [options]
#   --url URL            what to request, http:// or https://
#   --duration SECONDS   how long to send (default 10)
#   --connections N      open connections (default 10)
#   --threads N          wrk threads; they share the connections equally (default 2)
#   --rate REQ_PER_S     about this many requests/s in all (default: as fast as answers come)
#   --timeout SECONDS    an answer slower than this counts as a timeout (default 10)
#   --no-keepalive       a new connection per request (see WRK_HEADERS below)
#   --path-mix LIST      request these paths in turn: PATH[:WEIGHT],... (default: the URL's)
#   --fault-cmd CMD      run CMD with bash -c once, --fault-at seconds after the start;
#   --fault-at SECONDS     both or neither, and before --duration (tenths allowed: 0.5)
#   --json FILE          also write the figures as JSON (BenchFigures in scripts/bench/figures.ts)
#   --min-requests N     fail when fewer requests were answered
# Exit status: 0 when the run completed, however many requests failed; 1 when it could not
# run (bad arguments, no wrk, wrk failed); 2 with fewer than --min-requests answers;
# 3 when the fault command failed (its output is shown).
# Reads:
#   PATH   wrk (Debian's wrk package; scripts/setup.sh installs it), node, and coreutils'
#          env (--default-signal, 8.31 or newer) when started in the background
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
TMP=""
WRK_PID=""
# --no-keepalive: one connection per request. wrk counts a keep-alive connection that the
# server closes while idle (nginx does so at every reload) as a read error, and never
# retries, where an HTTP client would simply reconnect; without keep-alive, a socket error
# is always a request that failed.
WRK_HEADERS=()
FAULT_PID=""
STOP=0

info() { printf 'bench: %s\n' "$*" >&2; }
fatal() {
    printf 'bench: error: %s\n' "$*" >&2
    exit 1
}

cleanup() {
    [[ -z "$WRK_PID" ]] || kill "$WRK_PID" 2>/dev/null || true
    [[ -z "$TMP" ]] || rm -rf "$TMP"
}

now_ms() {
    local us="${EPOCHREALTIME//[!0-9]/}"
    printf '%s\n' "$((us / 1000))"
}

# since_start MS : seconds from the stream's start to MS, as 1.2s.
since_start() {
    local d=$(($1 - T0_MS))
    printf '%d.%ds\n' "$((d / 1000))" "$((d % 1000 / 100))"
}

# whole NAME VALUE : VALUE must be a whole number above 0.
whole() {
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || fatal "$1 expects a whole number above 0, got '$2'"
}

# expand_paths LIST : PATH[:WEIGHT],... as the space-separated list bench.lua takes, each
# path repeated by its weight.
expand_paths() {
    local item path weight out=() i
    local -a items
    IFS=, read -r -a items <<<"$1"
    for item in "${items[@]}"; do
        path="$item" weight=1
        if [[ "$item" =~ ^(.*):([0-9]+)$ ]]; then
            path="${BASH_REMATCH[1]}" weight="${BASH_REMATCH[2]}"
        fi
        [[ "$path" =~ ^/[^[:space:]]*$ ]] || fatal "--path-mix: '$item' is not /PATH[:WEIGHT]"
        ((weight >= 1 && weight <= 100)) || fatal "--path-mix: the weight in '$item' must be 1 to 100"
        for ((i = 0; i < weight; i++)); do out+=("$path"); done
    done
    ((${#out[@]})) || fatal "--path-mix: no path in '$1'"
    printf '%s\n' "${out[*]}"
}

parse_args() {
    URL="" DURATION=10 CONNECTIONS=10 THREADS=2 RATE="" TIMEOUT=10 PATH_MIX="" PATHS="" FAULT_CMD=""
    FAULT_AT="" FAULT_AT_MS=0 JSON="" MIN_REQUESTS=""
    while (($#)); do
        case "$1" in
        --url) URL="${2:?--url needs a URL}"; shift 2 ;;
        --duration) DURATION="${2:?--duration needs seconds}"; shift 2 ;;
        --connections) CONNECTIONS="${2:?--connections needs a number}"; shift 2 ;;
        --threads) THREADS="${2:?--threads needs a number}"; shift 2 ;;
        --rate) RATE="${2:?--rate needs requests per second}"; shift 2 ;;
        --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift 2 ;;
        --path-mix) PATH_MIX="${2:?--path-mix needs PATH[:WEIGHT],...}"; shift 2 ;;
        --fault-cmd) FAULT_CMD="${2:?--fault-cmd needs a command}"; shift 2 ;;
        --fault-at) FAULT_AT="${2:?--fault-at needs seconds}"; shift 2 ;;
        --json) JSON="${2:?--json needs a file}"; shift 2 ;;
        --no-keepalive) WRK_HEADERS=(--header "Connection: close"); shift ;;
        --min-requests) MIN_REQUESTS="${2:?--min-requests needs a number}"; shift 2 ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) fatal "unknown argument '$1' (see --help)" ;;
        esac
    done
    [[ "$URL" =~ ^https?://[^/]+ ]] || fatal "--url expects http://HOST[:PORT][/PATH] or https://..., got '${URL}'"
    whole --duration "$DURATION"
    whole --connections "$CONNECTIONS"
    whole --threads "$THREADS"
    whole --timeout "$TIMEOUT"
    # wrk opens connections/threads per thread, rounded down: 5 over 2 threads would be 4.
    ((CONNECTIONS % THREADS == 0)) || fatal "--connections $CONNECTIONS is not a multiple of --threads $THREADS (wrk would open $((CONNECTIONS / THREADS * THREADS)))"
    [[ -z "$RATE" ]] || whole --rate "$RATE"
    [[ -z "$MIN_REQUESTS" ]] || whole --min-requests "$MIN_REQUESTS"
    [[ -z "$PATH_MIX" ]] || PATHS="$(expand_paths "$PATH_MIX")"
    if [[ -n "$FAULT_CMD" || -n "$FAULT_AT" ]]; then
        [[ -n "$FAULT_CMD" && -n "$FAULT_AT" ]] || fatal "--fault-cmd and --fault-at go together"
        [[ "$FAULT_AT" =~ ^(0|[1-9][0-9]*)(\.([0-9]))?$ ]] || fatal "--fault-at expects seconds (tenths allowed, as 1.5), got '$FAULT_AT'"
        FAULT_AT_MS=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[3]:-0} * 100))
        ((FAULT_AT_MS < DURATION * 1000)) || fatal "--fault-at $FAULT_AT is not before the end (--duration $DURATION)"
    fi
    if [[ -n "$JSON" ]]; then
        [[ -d "$(dirname "$JSON")" ]] || fatal "--json: no directory $(dirname "$JSON")"
    fi
    return 0
}

check_tools() {
    command -v wrk >/dev/null || fatal "wrk is not installed: apt-get install -y wrk (scripts/setup.sh installs it)"
    [[ -d "$REPO/node_modules/sucrase" ]] || fatal "$REPO/node_modules is missing; run npm ci in $REPO"
}

start_wrk() {
    info "wrk: $URL for ${DURATION}s, $CONNECTIONS connections, $THREADS threads, ${RATE:-unthrottled} req/s${PATH_MIX:+, paths $PATH_MIX}"
    T0_MS="$(now_ms)"
    BENCH_OUT="$TMP/figures" BENCH_T0_MS="$T0_MS" BENCH_RATE="$RATE" BENCH_THREADS="$THREADS" BENCH_PATHS="$PATHS" \
        wrk --threads "$THREADS" --connections "$CONNECTIONS" --duration "${DURATION}s" \
        --timeout "${TIMEOUT}s" "${WRK_HEADERS[@]}" --script "$REPO/scripts/bench/bench.lua" "$URL" \
        >"$TMP/wrk.out" 2>"$TMP/wrk.err" &
    WRK_PID=$!
}

# Runs the fault command in the background; it records "STARTED_MS ENDED_MS EXIT" itself.
start_fault() {
    info "fault started at $(since_start "$(now_ms)"): $FAULT_CMD"
    (
        started="$(now_ms)" status=0
        bash -c "$FAULT_CMD" </dev/null >"$TMP/fault.log" 2>&1 || status=$?
        printf '%s %s %s\n' "$started" "$(now_ms)" "$status" >"$TMP/fault.record"
    ) &
    FAULT_PID=$!
}

# Waits for wrk, starts the fault when it is due, and passes a stop on to wrk as SIGINT:
# wrk then prints its summary and runs done() (on SIGTERM it would just die). The SIGINT is
# sent again each second, because wrk ignores it until its threads are up.
watch_wrk() {
    local last_int=0 now
    while kill -0 "$WRK_PID" 2>/dev/null; do
        now="$(now_ms)"
        if [[ -n "$FAULT_CMD" && -z "$FAULT_PID" ]] && ((!STOP && now >= T0_MS + FAULT_AT_MS)); then
            start_fault
        fi
        if ((STOP && now - last_int >= 1000)); then
            kill -INT "$WRK_PID" 2>/dev/null || true
            last_int=$now
        fi
        sleep 0.1
    done
    local status=0
    wait "$WRK_PID" || status=$?
    WRK_PID=""
    if ((status != 0)) || [[ ! -s "$TMP/figures" ]]; then
        cat "$TMP/wrk.out" >&2
        fatal "wrk exited $status$([[ -s "$TMP/figures" ]] || printf ' without its figures'): $(cat "$TMP/wrk.err")"
    fi
}

# Sets FAULT_ARGS, the fault's record as scripts/bench/cli.ts takes it, once it has ended.
finish_fault() {
    FAULT_ARGS=()
    [[ -n "$FAULT_CMD" ]] || return 0
    FAULT_ARGS=(--fault-cmd "$FAULT_CMD")
    if [[ -z "$FAULT_PID" ]]; then
        info "the fault never ran: the stream stopped before it was due"
        return 0
    fi
    kill -0 "$FAULT_PID" 2>/dev/null && info "waiting for the fault command to end"
    # A signal cuts a wait short; wait on until the runner has ended.
    while kill -0 "$FAULT_PID" 2>/dev/null; do wait "$FAULT_PID" || true; done
    [[ -s "$TMP/fault.record" ]] || fatal "the fault command's runner ended without recording its exit"
    local started ended status
    read -r started ended status <"$TMP/fault.record"
    info "fault ended at $(since_start "$ended"), exit $status"
    if ((status != 0)); then
        info "the fault command's output:"
        sed 's/^/  | /' "$TMP/fault.log" >&2
    fi
    FAULT_ARGS+=(--fault-started-ms "$started" --fault-ended-ms "$ended" --fault-exit "$status")
}

report() {
    local args=(--figures "$TMP/figures" --url "$URL" --t0-ms "$T0_MS")
    ((!STOP)) || args+=(--stopped-early)
    [[ -z "$JSON" ]] || args+=(--json "$JSON")
    [[ -z "$MIN_REQUESTS" ]] || args+=(--min-requests "$MIN_REQUESTS")
    # sucrase only strips the types, as ts-node's transpile-only would, but without loading
    # the TypeScript compiler: measured here, 0.45 s of CPU against ts-node's 1.2 s, which
    # was most of a short run's time.
    node -r sucrase/register/ts "$REPO/scripts/bench/cli.ts" "${args[@]}" "${FAULT_ARGS[@]}"
}

main() {
    # Started with & from a script, bash ignores SIGINT and cannot trap it; come back with
    # SIGINT at its default, so the caller's SIGINT stops the run as it does from a terminal.
    if [[ "$(trap -p INT)" == "trap -- '' SIGINT" ]] && env --default-signal=INT true 2>/dev/null; then
        exec env --default-signal=INT bash "${BASH_SOURCE[0]}" "$@"
    fi
    parse_args "$@"
    check_tools
    TMP="$(mktemp -d -t pi-cluster-bench.XXXXXX)"
    trap cleanup EXIT
    trap 'STOP=1' INT TERM
    start_wrk
    watch_wrk
    ((!STOP)) || info "stopped early by a signal"
    finish_fault
    # The report is what a stop asks for; a second signal must not cut it short.
    trap '' INT TERM
    local status=0
    report || status=$?
    return "$status"
}

main "$@"
