#!/usr/bin/env bash
# Runs every test: the type check of the whole tree (tsc; the program itself runs
# under sucrase, which checks no types), unit tests of the stack (mocha + Pulumi mocks +
# real validators), the app's tests against a real MariaDB, the dashboard's unit tests,
# backup and restore against a real MariaDB (tests/backup/local.sh), the toolchain smoke
# test, bad config and the policy pack (policy/) through the real engine's preview, then the end-to-end tests on a lab
# it creates and always tears down. What needs no lab runs beside the lab suites, at the
# lowest CPU and I/O priority (machine_checks, engine_checks); with --unit, in front.
# Usage: scripts/test.sh [--unit]     (--unit skips the lab and the end-to-end tests)
# Run as root on a fresh machine: it installs what it needs (scripts/setup.sh).
# Reads: PULUMI_CONFIG_PASSPHRASE (default: the lab's, README "The lab")
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO
readonly LOGS="$REPO/test-output/logs"
PASSED=0
FAILED=0
SKIPPED=0
SUITES_FAILED=()

# "name wall cpu" per timed step, in run order, for the summary at the end.
TIMINGS=()
STEP_STARTED=0
STEP_CPU=0

info() { printf '\n== %s\n' "$*" >&2; }

# CPU seconds (user + sys) of every command this shell has waited for so far. `times`
# must run in this shell, not in a $(...) subshell, whose children are not this shell's.
# The files are per shell process: the machine checks' subshell times itself beside this one.
children_cpu() {
    times >"$LOGS/.times.$BASHPID"
    awk 'NR == 2 { for (i = 1; i <= NF; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } } END { printf "%.1f", s }' "$LOGS/.times.$BASHPID"
}

step_start() {
    local me=$BASHPID # not inside $(...), a subshell of its own
    STEP_STARTED=$SECONDS
    children_cpu >"$LOGS/.cpu.$me"
    STEP_CPU="$(<"$LOGS/.cpu.$me")"
}

# step_end NAME : records and prints how long the step since step_start took, in wall
# time and in CPU time (steadier on a busy machine).
step_end() {
    local wall=$((SECONDS - STEP_STARTED)) cpu me=$BASHPID
    children_cpu >"$LOGS/.cpu.$me"
    cpu="$(awk -v a="$(<"$LOGS/.cpu.$me")" -v b="$STEP_CPU" 'BEGIN { printf "%.1f", a - b }')"
    TIMINGS+=("$1 $wall $cpu")
    info "$1: ${wall} s, ${cpu} s CPU"
}

# timed NAME CMD... : runs CMD as a timed step; its status is the step's.
timed() {
    local name="$1" status=0
    shift
    step_start
    "$@" || status=$?
    step_end "$name"
    return "$status"
}

# print_timings : what each step cost, in run order. A "(bg)" row ran beside the steps before
# background-wait, from its start to its end; the budget is the total.
print_timings() {
    local t
    printf '\n%-16s %7s %9s\n' "step" "wall s" "CPU s"
    for t in "${TIMINGS[@]}"; do
        # shellcheck disable=SC2086 # "name wall cpu": three words
        printf '%-16s %7s %9s\n' $t
    done
    printf '%-16s %7s\n' "total" "$SECONDS"
}

# suite NAME DIR CMD... : runs a mocha suite, keeps its log and adds up its counts
# (mocha's "passing", "failing" and "pending", the last being skipped tests).
suite() {
    local name="$1" dir="$2" status=0 passed failed skipped
    shift 2
    info "$name"
    step_start
    (cd "$dir" && "$@") 2>&1 | tee "$LOGS/$name.log" || status=$?
    step_end "$name"
    passed=$(awk '/^ *[0-9]+ passing/ {s += $1} END {print s + 0}' "$LOGS/$name.log")
    failed=$(awk '/^ *[0-9]+ failing/ {s += $1} END {print s + 0}' "$LOGS/$name.log")
    skipped=$(awk '/^ *[0-9]+ pending/ {s += $1} END {print s + 0}' "$LOGS/$name.log")
    if ((status != 0 && failed == 0)); then failed=1; fi
    PASSED=$((PASSED + passed))
    FAILED=$((FAILED + failed))
    SKIPPED=$((SKIPPED + skipped))
    if ((status != 0)); then SUITES_FAILED+=("$name"); fi
    return 0
}

# check NAME CMD... : a command that is one test: it passes when it exits 0.
check() {
    local name="$1" status=0
    shift
    info "$name"
    step_start
    "$@" 2>&1 | tee "$LOGS/$name.log" || status=${PIPESTATUS[0]}
    step_end "$name"
    if ((status == 0)); then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        SUITES_FAILED+=("$name")
    fi
}

# print_failures : the first lines of each failure of each failed suite, so the end of
# the run (all a CI page may show) names every failure, not only the last suite's.
print_failures() {
    local name
    for name in "${SUITES_FAILED[@]}"; do
        printf '\n-- %s: first lines of each failure (whole log: test-output/logs/%s.log)\n' "$name" "$name"
        if grep -qE '^ *[0-9]+ failing' "$LOGS/$name.log"; then
            # mocha's report after "N failing": each "  N) title" and the lines after it.
            awk '/^ *[0-9]+ failing/ { on = 1 } on && /^ *[0-9]+\) / { n = 0; shown++ } on && shown && n++ < 12 { print }' "$LOGS/$name.log" | head -60
        else
            tail -n 15 "$LOGS/$name.log"
        fi
    done
}

# fresh_stack : an empty backend and stack config and bare hosts, for a suite that
# would otherwise inherit what a failed suite left half-done.
fresh_stack() {
    info "a fresh lab and stack (the suite before failed)"
    rm -rf "$REPO/.state/backend" "$REPO/Pulumi.lab.yaml"
    mkdir -p "$REPO/.state/backend"
    "$REPO/lab/lab" down
}

lab_down() {
    info "lab down"
    "$REPO/lab/lab" down || true
}

# Jobs run beside the checks: "name pid started" each, and whether the lab was brought up.
BACKGROUND=()
LAB_STARTED=0

# in_background NAME CMD... : starts CMD (a command or a function) niced by NICE (default 10),
# with IO_IDLE=1 in the idle I/O class, its output in the logs and its end time in
# test-output/logs/NAME.ended. wait_background collects it.
in_background() {
    local name="$1" level="${NICE:-10}" io_idle="${IO_IDLE:-0}"
    shift
    (
        status=0
        renice -n "$level" -p "$BASHPID" >/dev/null
        if ((io_idle)); then ionice -c 3 -p "$BASHPID"; fi
        "$@" || status=$?
        date +%s >"$LOGS/$name.ended"
        exit "$status"
    ) >"$LOGS/$name.log" 2>&1 &
    BACKGROUND+=("$name $! $(date +%s)")
    info "$name: started in the background (log: test-output/logs/$name.log)"
}

# wait_background [NAME...] : waits for the named background jobs (every one without a
# name), records how long each ran (from its start to its own end, as "NAME(bg)") and fails,
# naming it and its log's end, when one failed.
wait_background() {
    local job name pid started ended status failed=0 left=()
    for job in "${BACKGROUND[@]}"; do
        read -r name pid started <<<"$job"
        if (($#)) && [[ " $* " != *" $name "* ]]; then
            left+=("$job")
            continue
        fi
        status=0
        wait "$pid" || status=$?
        ended=$(cat "$LOGS/$name.ended" 2>/dev/null || date +%s)
        TIMINGS+=("$name(bg) $((ended - started)) -")
        if ((status != 0)); then
            printf '%s failed (exit %d); the end of its log:\n' "$name" "$status" >&2
            tail -n 20 "$LOGS/$name.log" >&2
            failed=1
        fi
    done
    BACKGROUND=("${left[@]}")
    return "$failed"
}

# kill_tree PID : SIGTERM to PID and every process under it, the deepest first.
kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
}

# on_exit : stops background jobs a failed or interrupted run left (the job's subshell and
# what it started), and the lab it started.
on_exit() {
    local job name pid started
    for job in "${BACKGROUND[@]}"; do
        read -r name pid started <<<"$job"
        kill_tree "$pid"
    done
    if ((LAB_STARTED)); then lab_down; fi
}

# machine_checks : the suites and checks that need neither the toolchain nor the lab.
# engine_checks : those that need the toolchain, and neither the lab nor the artifacts the
# policy suite builds. Each runs in a subshell of its own (beside the lab suites, or in front
# with --unit) and leaves its counts, failed suites and timings in test-output/logs/NAME.results
# for merge_results NAME.
# shellcheck disable=SC2030 # each job's own counters, by design: merge_results adds them up
machine_checks() (
    rm -f "$LOGS/checks.results"
    PASSED=0 FAILED=0 SKIPPED=0 SUITES_FAILED=() TIMINGS=()
    # The tests that measure request rates and times against a real wrk or nginx run in front
    # (unit-timed), never at idle priority: beside a busy lab, starved, 4 bench tests failed.
    suite unit "$REPO" npx mocha --ignore tests/unit/bench.test.ts --ignore tests/unit/render-nginx.test.ts 'tests/unit/**/*.test.ts'
    suite dashboard "$REPO/assets/dashboard" npm test
    check backup-local bash tests/backup/local.sh
    check backup-stream bash tests/backup/stream.sh
    # Promotion's database side against a real primary and two replicas on this machine (about 30 s).
    suite promote-local "$REPO" npx mocha --timeout 0 tests/promote/local.test.ts
    save_results checks
)

# app_checks : the app's suite, whose cases bound request times under a real MariaDB's power
# cut (a read within 8 s, every request within 2 s of the thaw): beside the lab's bring-up and
# the policy previews at full priority, never at idle priority (starved beside a converge, 8
# of 1,834 reads took over 8 s in CI).
# shellcheck disable=SC2030
app_checks() (
    rm -f "$LOGS/app-checks.results"
    PASSED=0 FAILED=0 SKIPPED=0 SUITES_FAILED=() TIMINGS=()
    suite app "$REPO/assets/app" npm test
    save_results app-checks
)

# shellcheck disable=SC2030
engine_checks() (
    rm -f "$LOGS/engine-checks.results"
    PASSED=0 FAILED=0 SKIPPED=0 SUITES_FAILED=() TIMINGS=()
    check toolchain-smoke bash toolchain/smoke.sh
    suite preview "$REPO" npx mocha --timeout 120000 tests/e2e/preview.test.ts
    save_results engine-checks
)

# save_results NAME : this (sub)shell's counts, failed suites and timings, for merge_results.
# shellcheck disable=SC2031 # the job's own counters
save_results() {
    local t name
    {
        printf 'counts %d %d %d\n' "$PASSED" "$FAILED" "$SKIPPED"
        for name in "${SUITES_FAILED[@]}"; do printf 'failed %s\n' "$name"; done
        for t in "${TIMINGS[@]}"; do printf 'timing %s\n' "$t"; done
    } >"$LOGS/$1.results"
}

# merge_results NAME [MARK] : adds a job's results to this shell's, its timing rows marked
# MARK (default "(bg)": it ran beside); no results file (the job died before writing it)
# counts as a failed suite named NAME.
# shellcheck disable=SC2031 # the job's counters reach this shell through the file
merge_results() {
    local kind a b c
    if [[ ! -f "$LOGS/$1.results" ]]; then
        FAILED=$((FAILED + 1))
        SUITES_FAILED+=("$1")
        return 0
    fi
    while read -r kind a b c; do
        case "$kind" in
            counts) PASSED=$((PASSED + a)) FAILED=$((FAILED + b)) SKIPPED=$((SKIPPED + c)) ;;
            failed) SUITES_FAILED+=("$a") ;;
            timing) TIMINGS+=("$a${2-(bg)} $b $c") ;;
        esac
    done <"$LOGS/$1.results"
}

# in_front NAME FUNCTION : runs FUNCTION now, its output to the terminal and NAME's log, and
# merges its results.
in_front() {
    "$2" 2>&1 | tee "$LOGS/$1.log" || true
    merge_results "$1" ""
}

# in_front_or_beside NAME FUNCTION : with --unit, runs FUNCTION now and merges its results;
# else starts it beside what follows, at the lowest CPU and I/O priority (the end of main
# merges it).
in_front_or_beside() {
    if ((unit_only)); then
        in_front "$1" "$2"
    else
        # A session of its own (setsid), so a scheduling group of its own: the kernel shares
        # the CPU between groups before it looks at nice, and in the run's own group the jobs
        # took half of the CPU from the lab's containers (each its own group) even at nice 19;
        # the job sets its group's nice to 19 (job_main).
        NICE=19 IO_IDLE=1 in_background "$1" setsid -w bash "$REPO/scripts/test.sh" --job "$2"
    fi
}

# job_main FUNCTION : `test.sh --job FUNCTION`, one of the jobs above alone, as
# in_front_or_beside starts it beside the lab suites: its scheduling group (its session's, see
# sched(7) "autogroup") at nice 19, so it takes only CPU that nothing else wants.
job_main() {
    case "$1" in
    machine_checks | engine_checks) ;;
    *) fatal_usage "--job: expected machine_checks or engine_checks, got '$1'" ;;
    esac
    cd "$REPO"
    mkdir -p "$LOGS"
    if [[ -w /proc/$$/autogroup ]]; then echo 19 >"/proc/$$/autogroup"; fi
    "$1"
}

fatal_usage() {
    printf 'test.sh: %s\n' "$1" >&2
    exit 2
}

main() {
    local unit_only=0
    [[ "${1:-}" == "--unit" ]] && unit_only=1
    cd "$REPO"
    mkdir -p "$LOGS"
    trap on_exit EXIT
    timed setup bash scripts/setup.sh --no-toolchain
    # The Pulumi toolchain (on a machine without it, a build of about 15 min on 2 cores) and
    # the lab's base image (about 1.5 min of debootstrap) are needed only from the toolchain
    # smoke test on: both run beside the checks before it, which need neither. Where they
    # exist already, each is a check of seconds.
    in_background toolchain bash toolchain/ensure.sh
    if ((!unit_only)); then in_background lab-image lab/lab image; fi

    # The type check of the whole tree, once: mocha runs the tests, and Pulumi the program
    # (under sucrase, Pulumi.yaml), transpile-only.
    check typecheck npx tsc --noEmit
    # The backup target's and the DB Pi's tools, shipped as they are (the rendered step scripts
    # are checked in the unit suite): a lint, as the type check, not a unit test of seconds.
    check shellcheck-tools shellcheck assets/backup/pi-cluster-backup.sh assets/backup/pi-cluster-restore.sh assets/backup/pi-cluster-binlog-stream.sh
    # Beside everything after, at the lowest priority: they need neither the toolchain nor the
    # lab, about 220 s of CPU that the toolchain build and the lab suites' waits leave idle
    # (in front, they held the lab suites up by about 4.5 min).
    suite unit-timed "$REPO" npx mocha tests/unit/bench.test.ts tests/unit/render-nginx.test.ts
    in_front_or_beside checks machine_checks
    # At full priority beside the lab's bring-up and the policy suite (about 72 s alone), which
    # leave a core free; merged after the policy suite, before the lab suites.
    if ((unit_only)); then
        in_front app-checks app_checks
    else
        NICE=0 in_background app-checks app_checks
    fi
    if ((!unit_only)); then
        # The lab needs its image, not the toolchain: on a machine still building the
        # toolchain, the lab comes up and is checked beside that build.
        timed lab-image-wait wait_background lab-image || { echo "cannot continue without the lab image (see above)" >&2; exit 1; }
        # A fresh lab and stack: hosts left by an earlier run (even a killed one) are not
        # bare, and lab/lab up writes the stack config of the hosts it starts.
        rm -rf "$REPO/.state/backend" "$REPO/Pulumi.lab.yaml"
        mkdir -p "$REPO/.state/backend"
        LAB_STARTED=1
        info "lab down, then up"
        timed lab-down lab/lab down
        timed lab-up lab/lab up
        suite lab-e2e "$REPO" npx mocha --timeout 0 tests/e2e/lab.test.ts
    fi
    timed background-wait wait_background toolchain lab-image || { echo "cannot continue without the toolchain (see above)" >&2; exit 1; }
    # shellcheck source=/dev/null
    source toolchain/env.sh || { echo "toolchain: cannot continue (see above)" >&2; exit 1; }
    # The toolchain's own smoke test and bad config through the engine, beside the rest as the
    # checks above (in front, about 45 s).
    in_front_or_beside engine-checks engine_checks
    # The policy pack through the real engine: a production config passes, one it must refuse
    # fails the preview. Its first preview builds the artifacts (.build/) the lab suites reuse.
    suite policy "$REPO" npx mocha --timeout 900000 tests/e2e/policy.test.ts
    if ((!unit_only)); then
        # Before the lab suites, whose converges would starve it.
        timed app-checks-wait wait_background app-checks || true
        merge_results app-checks
    fi

    if ((!unit_only)); then
        export PULUMI_BACKEND_URL="file://$REPO/.state/backend"
        export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE:-pi-cluster-lab}"
        # The one end-to-end path: the real engine against the lab, converged once and
        # shared by every case (tests/e2e/cluster.test.ts).
        suite cluster-e2e "$REPO" npx mocha --timeout 0 --bail tests/e2e/cluster.test.ts
        # Read replicas (issue 12): the cluster suite ends by destroying its stack, so this
        # one converges the same lab again, with the replica hosts added (about 2 minutes).
        # After a failed cluster suite its stack is half-done (it bails at the first
        # failure): the replica suite starts from nothing instead, so it still tells.
        if [[ " ${SUITES_FAILED[*]} " == *" cluster-e2e "* ]]; then fresh_stack; fi
        E2E_FIGURES_FILE=replica-figures.json suite replica-e2e "$REPO" npx mocha --timeout 0 --bail tests/e2e/replicas.test.ts
        # The data paths under faults (issue 17): on the lab the replica suite leaves converged
        # (its promoted database), so no converge of its own.
        E2E_FIGURES_FILE=fault-figures.json suite faults-e2e "$REPO" npx mocha --timeout 0 tests/e2e/faults.test.ts
    fi

    if ((!unit_only)); then
        timed checks-wait wait_background checks engine-checks || true
        merge_results checks
        merge_results engine-checks
    fi
    print_failures
    print_timings
    printf '\n'
    ((${#SUITES_FAILED[@]} == 0)) || printf 'failed suites: %s\n' "${SUITES_FAILED[*]}"
    printf 'tests: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
    ((FAILED == 0))
}

if [[ "${1:-}" == --job ]]; then
    job_main "${2:-}"
else
    main "$@"
fi
