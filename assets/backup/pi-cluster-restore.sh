#!/usr/bin/env bash
# pi-cluster-restore: the database Pi's half of scripts/restore.sh. It never sees the age key:
# the operator's machine decrypts and streams each file in, one call per file.
#
# One restore at a time owns this Pi. A run (RUN, made by the operator: TIME-6 hex digits) first
# holds it, stages its files, then hands the plan to `apply`, which runs the restore as a
# transient systemd unit (pi-cluster-restore-RUN): the operator's SSH dropping does not stop it.
#
#   hold RUN WHO               takes this Pi's restore for RUN and prints "held RUN", or refuses
#                              (exit 3) naming the run that has it; then holds it while stdin brings
#                              a line at least every HEARTBEAT s. On EOF or silence it lets go and
#                              deletes the staging of a run that never reached apply.
#   stage-backup RUN NAME      stdin: a decrypted full or incremental (zstd xbstream); prints
#                              "binlog FILE POS", where the backup stops in the binlog
#   stage-binlog RUN NAME      stdin: a decrypted binlog (zstd)
#   stage-stream RUN NAME      stdin: a binlog stream file from the target (zstd; NAME stream-SERIES-FILE)
#   unstage RUN NAME...        drops staged files (found bad, or no longer in the plan)
#   apply RUN [TO]             stdin: the plan, staged names in apply order. Starts the apply and
#                              follows it (see attach). TO: 'YYYY-MM-DD HH:MM:SS' UTC, or none.
#   attach RUN                 follows RUN's apply until it ends; prints its log and result.
#                              Exit 0: restored; 1: it failed and was rolled back (or could not be:
#                              the message says); 3: it was interrupted (run `recover`).
#   status                     one line: idle [last RUN OUTCOME] | staging RUN WHO SINCE |
#                              applying RUN WHO SINCE PHASE | interrupted RUN WHO SINCE PHASE
#   recover                    an interrupted apply: rolled back, or finished when its replay was
#                              done; prints the outcome line
#   run RUN [TO]               the apply itself (the unit's command)
#
# The apply is a recorded sequence of phases (the journal, STAGE/journal), so each point where it
# can be interrupted (a crash, a power cut, a killed unit) has one defined outcome:
#   staged    the plan is recorded                       -> roll back (nothing changed)
#   prepared  full + incrementals prepared in staging     -> roll back (nothing changed)
#   incoming  moved into DATADIR.incoming, owned by MariaDB -> roll back (drop it)
#   stopping  MariaDB is being stopped                    -> roll back (start it again)
#   stopped   MariaDB stopped, checked: nothing works in DATADIR -> roll back
#   aside P   DATADIR is moved to P (written before the move) -> roll back (P back as DATADIR)
#   swapped   the restored data is DATADIR                -> roll back
#   isolated  MariaDB runs on it without networking       -> roll back
#   replayed  the binlogs are replayed                    -> finish (reopen)
#   reopening MariaDB restarting with networking          -> finish
#   done
# Roll back: MariaDB stopped (and checked), the restored data deleted, the data directory that was
# there before back in place, the isolation removed, MariaDB started on it. Finish: the isolation
# removed, MariaDB restarted with networking. While the binlogs are replayed MariaDB accepts no TCP
# connection (ISOLATION_CNF: skip-networking, a file rather than a runtime setting, so a reboot in
# the middle keeps the web servers off a half-restored database until recover has run).
#
# Reads (environment; the defaults are a Pi's):
#   STAGE          staging directory and run record   (/var/lib/pi-cluster-restore)
#   LOCK           mutex for the run record           (/run/lock/pi-cluster-restore.lock)
#   LOG_DIR        each run's log and result          (/var/log/pi-cluster-restore)
#   DATADIR        MariaDB's data directory           (/var/lib/mysql)
#   DB_SOCKET      MariaDB's socket                   (/run/mysqld/mysqld.sock)
#   DB_OWNER       owner of the data directory        (mysql:mysql)
#   STOP_CMD / START_CMD  how to stop and start MariaDB (systemctl stop|start mariadb)
#   RESET_CMD      run before each start: a restore's starts are no crash loop, so the unit's
#                  start limit must not count them (systemctl reset-failed mariadb; empty: none)
#   ISOLATION_CNF  option file that turns networking off during the replay
#                  (/etc/mysql/mariadb.conf.d/99-pi-cluster-restore.cnf)
#   START_TIMEOUT  seconds MariaDB may take to answer once started (120)
#   HEARTBEAT      seconds of silence after which a hold lets go (15)
#   RUNNER         systemd | detached (default: systemd when it is PID 1; detached is for tests)
#   BACKUP_STATE   the backup tool's state, cleared so the next backup is a full (/var/lib/pi-cluster-backup)
#   FULL_UNIT      the full backup's unit, started once the restore is done (pi-cluster-backup-full.service; empty: none)
set -euo pipefail

STAGE=${STAGE:-/var/lib/pi-cluster-restore}
LOCK=${LOCK:-/run/lock/pi-cluster-restore.lock}
LOG_DIR=${LOG_DIR:-/var/log/pi-cluster-restore}
DATADIR=${DATADIR:-/var/lib/mysql}
DB_SOCKET=${DB_SOCKET:-/run/mysqld/mysqld.sock}
DB_OWNER=${DB_OWNER:-mysql:mysql}
STOP_CMD=${STOP_CMD:-systemctl stop mariadb}
START_CMD=${START_CMD:-systemctl start mariadb}
RESET_CMD=${RESET_CMD-systemctl reset-failed mariadb}
ISOLATION_CNF=${ISOLATION_CNF:-/etc/mysql/mariadb.conf.d/99-pi-cluster-restore.cnf}
START_TIMEOUT=${START_TIMEOUT:-120}
HEARTBEAT=${HEARTBEAT:-15}
BACKUP_STATE=${BACKUP_STATE:-/var/lib/pi-cluster-backup}
FULL_UNIT=${FULL_UNIT-pi-cluster-backup-full.service}
# What the apply unit is given: a test's settings reach it as they reach this process.
readonly PASSED_ENV=(STAGE LOCK LOG_DIR DATADIR DB_SOCKET DB_OWNER STOP_CMD START_CMD RESET_CMD ISOLATION_CNF START_TIMEOUT BACKUP_STATE FULL_UNIT)
SELF=$(readlink -f "${BASH_SOURCE[0]}")
readonly SELF

log() { printf 'restore: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

safe_name() { [[ "$1" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad file name '$1'"; }
safe_run() { [[ "$1" =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$ ]] || die "bad run id '$1' (expected YYYYMMDDTHHMMSSZ-xxxxxx)"; }

# --- pure decisions ------------------------------------------------------------------

# recovery_action PHASE : what an interrupted apply whose journal ends at PHASE needs:
# rollback (the old data directory back), finish (the restore is complete but for reopening)
# or done (nothing).
recovery_action() {
    case "$1" in
    staged | prepared | incoming | stopping | stopped | aside | swapped | isolated) echo rollback ;;
    replayed | reopening) echo finish ;;
    done) echo "done" ;;
    *) return 1 ;;
    esac
}

# binlog_file NAME : the binlog file (like mariadb-bin.000042) a staged name holds, for the
# names binlog-TS-SEQ[-SERIES]-FILE.zst.age and stream-SERIES-FILE.
binlog_file() {
    local re_series='s[0-9]+x[0-9a-f]{8}'
    if [[ "$1" =~ ^binlog-[0-9]{8}T[0-9]{6}Z-[0-9]{4}-(${re_series}-)?(.+\.[0-9]+)\.zst\.age$ ]]; then
        echo "${BASH_REMATCH[2]}"
    elif [[ "$1" =~ ^stream-${re_series}-(.+\.[0-9]+)$ ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        return 1
    fi
}

# older_binlog STAGED FILE : whether the staged binlog STAGED holds a binlog of FILE's series
# (same base name) that comes before FILE.
older_binlog() {
    local staged file=$2 n
    staged=$(binlog_file "$1") || return 1
    [[ -n "$file" && "${staged%.*}" == "${file%.*}" && "${file##*.}" =~ ^[0-9]+$ ]] || return 1
    n=${staged##*.}
    ((10#$n < 10#${file##*.}))
}

# --- the run record ------------------------------------------------------------------

# The record lives in STAGE: run (RUN WHO SINCE), journal (one phase a line), alive (flocked by
# the hold), runner (the apply's pid), plan, to, and the staged files.
with_lock() {
    install -d -m 0755 "$(dirname "$LOCK")"
    (
        flock 9
        "$@"
    ) 9>"$LOCK"
}

current_run() { [[ -f "$STAGE/run" ]] && cut -d' ' -f1 "$STAGE/run"; }
last_phase() { [[ -f "$STAGE/journal" ]] && tail -n1 "$STAGE/journal" | cut -d' ' -f1; }

# journal PHASE [ARG] : records that the apply reached PHASE, durably before going on.
journal() {
    printf '%s\n' "$*" >>"$STAGE/journal"
    sync "$STAGE/journal"
    log "phase: $* (at ${SECONDS} s, epoch $EPOCHREALTIME)"
}

# systemd_runner : applies run as systemd units here (RUNNER, else systemd when it is PID 1).
systemd_runner() {
    case "${RUNNER:-}" in
    systemd) return 0 ;;
    detached) return 1 ;;
    *) [[ -d /run/systemd/system ]] ;;
    esac
}

# unit_pid RUN : the main pid of RUN's apply unit while the unit is up (nothing otherwise).
unit_pid() {
    local -A p=()
    local k v
    while IFS='=' read -r k v; do p[$k]=$v; done < <(systemctl show -p ActiveState -p MainPID "pi-cluster-restore-$1.service" 2>/dev/null)
    [[ "${p[ActiveState]:-}" =~ ^(active|activating|deactivating|reloading)$ && "${p[MainPID]:-0}" =~ ^[1-9][0-9]*$ ]] && echo "${p[MainPID]}"
}

# runner_pid : the pid of the current run's apply while it runs, or nothing. With systemd, the
# unit says: apply records the pid only once systemd-run has returned, and an operator's SSH
# dropping in between must not make a running apply look interrupted (a recover would then
# race it). Else the pid the apply (or the run itself) recorded, checked against its command line.
runner_pid() {
    local pid run
    run=$(current_run) || return 0
    if systemd_runner; then
        unit_pid "$run"
        return 0
    fi
    pid=$(cat "$STAGE/runner" 2>/dev/null) || return 0
    [[ -n "$pid" ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF " run $run" && echo "$pid"
    return 0
}

# runner_alive : the apply's process still runs.
runner_alive() { [[ -n "$(runner_pid)" ]]; }

# held : the operator's hold on the run is still there.
held() { [[ -f "$STAGE/alive" ]] && ! flock -n "$STAGE/alive" true; }

run_state() {
    if [[ ! -f "$STAGE/run" ]]; then
        echo idle
    elif [[ -f "$STAGE/journal" ]]; then
        if runner_alive; then echo applying; else echo interrupted; fi
    elif held; then
        echo staging
    else
        echo abandoned
    fi
}

status_line() {
    local state
    state=$(run_state)
    case "$state" in
    idle)
        local last
        last=$(find "$LOG_DIR" -maxdepth 1 -name '*.result' -printf '%T@ %f\n' 2>/dev/null | sort -n | tail -n1 | cut -d' ' -f2 || true)
        if [[ -n "$last" ]]; then echo "idle last ${last%.result} $(cat "$LOG_DIR/$last")"; else echo idle; fi
        ;;
    staging | abandoned) echo "$state $(cat "$STAGE/run")" ;;
    *) echo "$state $(cat "$STAGE/run") $(last_phase)" ;;
    esac
}

# result RUN OUTCOME MESSAGE : the run's outcome, for attach (and a later status).
result() {
    install -d -m 0755 "$LOG_DIR"
    printf '%s %s\n' "$2" "$3" >"$LOG_DIR/$1.result"
}

# --- hold and staging ----------------------------------------------------------------

take() {
    local run=$1 who=$2 state
    state=$(run_state)
    case "$state" in
    staging | applying) return 3 ;;
    interrupted) return 4 ;;
    esac
    [[ "$state" == abandoned ]] && log "dropping the staging of $(current_run), whose operator is gone"
    rm -rf "$STAGE"
    install -d -m 0700 "$STAGE" "$STAGE/backups" "$STAGE/binlogs" "$STAGE/stream"
    printf '%s %s %s\n' "$run" "$who" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STAGE/run"
    : >"$STAGE/alive"
}

hold() {
    local run=$1 who=${2//[^A-Za-z0-9@._:-]/_} rc=0
    safe_run "$run"
    # Not with_lock: the hold's own lock is taken before the mutex is let go, or another hold
    # could find the new run not held yet and take it for abandoned.
    install -d -m 0755 "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock 9
    take "$run" "$who" || rc=$?
    case "$rc" in
    0) ;;
    3)
        printf 'restore: another restore holds this database Pi: %s (%s)\n' "$(cat "$STAGE/run")" "$(run_state)" >&2
        exit 3
        ;;
    4)
        printf 'restore: the restore %s was interrupted in its apply (phase %s): recover it first\n' "$(current_run)" "$(last_phase)" >&2
        exit 4
        ;;
    *) exit "$rc" ;;
    esac
    exec 6>"$STAGE/alive"
    flock -n 6 || die "the hold of $run is held twice"
    exec 9>&-
    prune_logs
    echo "held $run"
    while IFS= read -r -t "$HEARTBEAT" _; do :; done
    # The operator is gone (or done). A run that reached apply is the apply's now.
    exec 6>&-
    with_lock let_go "$run"
}

let_go() {
    [[ "$(current_run)" == "$1" && ! -f "$STAGE/journal" ]] || return 0
    rm -rf "$STAGE"
    log "let go of $1: its staging is deleted"
}

prune_logs() {
    install -d -m 0755 "$LOG_DIR"
    find "$LOG_DIR" -maxdepth 1 -type f -printf '%f\n' | sed 's/\.[a-z]*$//' | sort -u | head -n -20 |
        while read -r r; do rm -f "$LOG_DIR/$r.log" "$LOG_DIR/$r.result"; done
}

# owns RUN : this command belongs to the run holding the staging, before any apply.
owns() {
    [[ "$(current_run 2>/dev/null)" == "$1" ]] || die "the restore $1 does not hold this database Pi (now: $(status_line))"
    [[ ! -f "$STAGE/journal" ]] || die "the restore $1 is already applying"
}

stage_backup() {
    owns "$1"
    safe_name "$2"
    local dir="$STAGE/backups/$2"
    rm -rf "$dir"
    install -d -m 0700 "$dir"
    if ! zstd -q -d | mbstream -x -C "$dir"; then
        rm -rf "$dir"
        die "$2: the stream does not unpack (truncated or corrupt)"
    fi
    # MariaDB 10.x names it xtrabackup_checkpoints, 11.x mariadb_backup_checkpoints.
    if [[ ! -f "$dir/xtrabackup_checkpoints" && ! -f "$dir/mariadb_backup_checkpoints" ]]; then
        rm -rf "$dir"
        die "$2: no mariadb_backup_checkpoints: not a complete mariadb-backup stream"
    fi
    echo "binlog $(binlog_info "$dir")"
}

stage_binlog() {
    local kind=$1
    owns "$2"
    safe_name "$3"
    local f="$STAGE/$kind/$3"
    if ! zstd -q -d >"$f"; then
        rm -f "$f"
        die "$3: does not decompress (truncated or corrupt)"
    fi
    # A stream file is cut wherever the stream was when it was read: mariadb-binlog drops an
    # event cut in half, but a file cut before its first event is no binlog at all.
    if [[ "$kind" == stream ]] && ! mariadb-binlog "$f" >/dev/null 2>&1; then
        rm -f "$f"
        die "$3: does not read as a binlog (cut before its first complete event)"
    fi
}

unstage() {
    owns "$1"
    shift
    local n
    for n in "$@"; do
        safe_name "$n"
        rm -rf "$STAGE/backups/$n" "$STAGE/binlogs/$n" "$STAGE/stream/$n"
    done
}

# staged_path NAME : where a staged name is.
staged_path() {
    case "$1" in
    binlog-*) echo "$STAGE/binlogs/$1" ;;
    stream-*) echo "$STAGE/stream/$1" ;;
    *) echo "$STAGE/backups/$1" ;;
    esac
}

# --- apply: start, follow, recover ---------------------------------------------------

begin_apply() {
    local run=$1 to=$2
    owns "$run"
    held || die "the restore $run does not hold this database Pi any more"
    printf '%s\n' "$to" >"$STAGE/to"
    journal staged
}

apply() {
    local run=$1 to=${2:-} n
    safe_run "$run"
    [[ -z "$to" || "$to" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] || die "TO: expected 'YYYY-MM-DD HH:MM:SS', got '$to'"
    owns "$run"
    grep -v '^$' >"$STAGE/plan" || true
    [[ "$(head -n1 "$STAGE/plan")" == full-* ]] || die "the plan does not start with a full backup"
    while read -r n; do
        safe_name "$n"
        [[ -e "$(staged_path "$n")" ]] || die "$n is in the plan but not staged"
    done <"$STAGE/plan"
    with_lock begin_apply "$run" "$to"
    install -d -m 0755 "$LOG_DIR"
    : >"$LOG_DIR/$run.log"
    local runner=detached
    systemd_runner && runner=systemd
    local pid
    if [[ "$runner" == systemd ]]; then
        local envs=() v
        for v in "${PASSED_ENV[@]}"; do envs+=(--setenv="$v=${!v}"); done
        # A system service: nothing of the operator's session (its SSH, its sudo) is its parent.
        systemd-run --quiet --collect --unit="pi-cluster-restore-$run" --description="pi-cluster restore $run" \
            --property=Type=exec "${envs[@]}" /usr/bin/env bash "$SELF" run "$run" 6>&- ||
            die "systemd-run could not start the apply"
        pid=$(systemctl show --property=MainPID --value "pi-cluster-restore-$run.service")
    else
        # Without this command's descriptors: an operator's pipe it kept open would outlive them.
        (
            for fd in /proc/self/fd/*; do
                fd=${fd##*/}
                ((fd <= 2)) || eval "exec $fd>&-" 2>/dev/null || true
            done
            exec setsid bash "$SELF" run "$run"
        ) </dev/null >/dev/null 2>&1 &
        pid=$!
    fi
    # Unless the run has recorded itself (or is already done).
    [[ -e "$STAGE/runner" ]] || printf '%s\n' "$pid" 2>/dev/null >"$STAGE/runner" || true
    # Until its exec, the process still shows this command's line.
    local i
    for ((i = 0; i < 100; i++)); do
        runner_alive || kill -0 "$pid" 2>/dev/null || break
        runner_alive && break
        sleep 0.02
    done
    log "applying $run (${runner} runner, pid $pid; the log: $LOG_DIR/$run.log)"
    attach "$run"
}

attach() {
    local run=$1 pid=""
    safe_run "$run"
    [[ "$(current_run 2>/dev/null)" == "$run" ]] && pid=$(runner_pid)
    if [[ -n "$pid" ]]; then
        # Follows the log as it is written; ends once the apply's process has.
        tail -n +1 -s 0.2 -f --pid="$pid" "$LOG_DIR/$run.log" >&2
    else
        cat "$LOG_DIR/$run.log" >&2 2>/dev/null || true
    fi
    local outcome
    outcome=$(cat "$LOG_DIR/$run.result" 2>/dev/null || true)
    case "$outcome" in
    ok*) log "result of $run: $outcome" ;;
    "")
        log "the apply of $run stopped with no result (killed, or the Pi lost power): it needs recover"
        exit 3
        ;;
    *)
        log "result of $run: $outcome"
        exit 1
        ;;
    esac
}

# recover : an interrupted apply rolled back or finished, under the lock (no hold can start meanwhile).
recover() {
    local state
    state=$(run_state)
    case "$state" in
    idle) echo "nothing to recover"; return 0 ;;
    staging | applying) die "the restore $(cat "$STAGE/run") is $state: not interrupted" ;;
    abandoned)
        rm -rf "$STAGE"
        echo "dropped an abandoned staging"
        return 0
        ;;
    esac
    local run phase action
    run=$(current_run)
    phase=$(last_phase)
    action=$(recovery_action "$phase") || die "unknown phase '$phase' in $STAGE/journal"
    exec 3>>"$LOG_DIR/$run.log"
    log "recovering $run, interrupted at $phase: $action" 2>&3
    case "$action" in
    rollback)
        if rollback 2>&3; then
            result "$run" rolled-back "interrupted at $phase; the data directory from before is back and MariaDB runs on it"
        else
            result "$run" failed "interrupted at $phase, and the rollback failed too (see $LOG_DIR/$run.log)"
            echo "failed $(cat "$LOG_DIR/$run.result")"
            return 1
        fi
        ;;
    finish)
        finish 2>&3 || {
            result "$run" failed "interrupted at $phase; finishing failed (see $LOG_DIR/$run.log)"
            echo "failed $(cat "$LOG_DIR/$run.result")"
            return 1
        }
        result "$run" ok "finished after an interruption at $phase"
        ;;
    done) result "$run" ok "done" ;;
    esac
    rm -rf "$STAGE"
    echo "$run $(cat "$LOG_DIR/$run.result")"
}

# --- the apply's steps ---------------------------------------------------------------

# db_ctl CMD : stops or starts MariaDB without the locks this process holds (a server started
# as a child would hold them for good).
db_ctl() { $1 6>&- 7>&- 8>&- 9>&-; }

# start_mariadb : MariaDB started. Its unit allows 5 starts a minute (the stack's drop-in),
# and a restore starts it twice (isolated, then reopened): two restores within a minute, or
# one after a crash, hit the limit and left MariaDB down at reopening (the fault suite, cases
# 6 and 7). Deliberate starts clear the count first.
start_mariadb() {
    if [[ -n "$RESET_CMD" ]]; then db_ctl "$RESET_CMD" 2>/dev/null || true; fi
    db_ctl "$START_CMD"
}

# datadir_users : pids of the processes working in DATADIR. mariadbd changes its working
# directory to its data directory, whoever started it, so this sees a server systemd lost track of.
datadir_users() {
    local real
    real=$(readlink -f "$DATADIR" 2>/dev/null) || return 0
    [[ -d "$real" ]] || return 0
    find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$real" -printf '%h ' 2>/dev/null | sed 's|/proc/||g' || true
}

stop_mariadb() {
    local users
    db_ctl "$STOP_CMD" || log "'$STOP_CMD' failed"
    users=$(datadir_users)
    [[ -z "$users" ]] || {
        log "MariaDB did not stop: process(es) $users still work in $DATADIR ($(tr '\0' ' ' <"/proc/${users%% *}/cmdline" 2>/dev/null | cut -c1-80))"
        return 1
    }
}

wait_mariadb() {
    local end=$((SECONDS + START_TIMEOUT))
    until mariadb-admin --user=root --socket="$DB_SOCKET" --connect-timeout=2 ping >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}

isolate() {
    install -d -m 0755 "$(dirname "$ISOLATION_CNF")"
    printf '# pi-cluster-restore %s: no TCP while the binlogs are replayed; removed when it ends.\n[mariadbd]\nskip-networking\n' "$1" >"$ISOLATION_CNF.tmp"
    chmod 0644 "$ISOLATION_CNF.tmp"
    mv -f "$ISOLATION_CNF.tmp" "$ISOLATION_CNF"
    sync "$ISOLATION_CNF"
}

# rollback : from any phase before `replayed`, the data directory from before back, MariaDB on it.
rollback() {
    local aside
    aside=$(grep '^aside ' "$STAGE/journal" | tail -n1 | cut -d' ' -f2-)
    if [[ -n "$aside" && -e "$aside" ]]; then
        stop_mariadb || {
            log "cannot roll back while MariaDB runs on the restored data"
            return 1
        }
        rm -rf "$DATADIR"
        mv "$aside" "$DATADIR"
        log "moved $aside back to $DATADIR"
    fi
    rm -rf "$DATADIR.incoming"
    if [[ -e "$ISOLATION_CNF" ]]; then
        # A server still up without networking must restart to take TCP again.
        [[ -z "$(datadir_users)" ]] || stop_mariadb || return 1
        rm -f "$ISOLATION_CNF"
    fi
    if [[ -n "$(datadir_users)" ]]; then
        log "rolled back: MariaDB never stopped, it runs on its data directory as before"
        return 0
    fi
    start_mariadb || {
        log "MariaDB does not start on the data directory from before"
        return 1
    }
    wait_mariadb || {
        log "MariaDB does not answer on $DB_SOCKET after the rollback"
        return 1
    }
    log "rolled back: MariaDB runs on the data directory from before the restore"
}

# finish : from `replayed` on, MariaDB restarted with networking and the backups told to start over.
finish() {
    journal reopening
    stop_mariadb || return 1
    rm -f "$ISOLATION_CNF"
    # The next backup starts a new chain on the restored data, and the restored server's
    # binlogs are a new series: nothing of the old series is "already shipped".
    rm -rf "$BACKUP_STATE/lsn" "$BACKUP_STATE/chain" "$BACKUP_STATE/shipped" "$BACKUP_STATE/flushed-at" "$BACKUP_STATE/series"
    start_mariadb || return 1
    wait_mariadb || {
        log "MariaDB does not answer on $DB_SOCKET with networking back"
        return 1
    }
    journal "done"
    log "MariaDB runs on the restored data, with networking"
    # A new full at once: until it exists, a restore would start from the old full and
    # replay binlogs past the point this restore stopped at.
    if [[ -n "$FULL_UNIT" ]] && systemctl cat "$FULL_UNIT" >/dev/null 2>&1; then
        systemctl start --no-block "$FULL_UNIT"
        log "started a full backup of the restored data ($FULL_UNIT)"
    else
        log "no backup unit here yet: the stack's backup step takes the first full when it runs"
    fi
}

# binlog_info DIR : "file position" where the backup in DIR stops.
binlog_info() {
    local f
    for f in "$1/mariadb_backup_binlog_info" "$1/xtrabackup_binlog_info"; do
        [[ -f "$f" ]] && { cut -f1,2 "$f"; return; }
    done
}

prepare() {
    local full=$1 inc
    mariadb-backup --prepare --target-dir="$STAGE/backups/$full" >"$STAGE/prepare.log" 2>&1 || {
        log "preparing $full failed (see $STAGE/prepare.log)"
        return 1
    }
    while read -r inc; do
        mariadb-backup --prepare --target-dir="$STAGE/backups/$full" --incremental-dir="$STAGE/backups/$inc" >>"$STAGE/prepare.log" 2>&1 || {
            log "applying $inc failed (see $STAGE/prepare.log)"
            return 1
        }
    done < <(grep '^inc-' "$STAGE/plan")
}

# run RUN : the apply, phase by phase; on a failure, rolled back before it exits.
run() {
    local run=$1 t0=$SECONDS full last info to
    safe_run "$run"
    exec >>"$LOG_DIR/$run.log" 2>&1 </dev/null
    cd /
    [[ "$(current_run)" == "$run" && "$(last_phase)" == staged ]] || die "$run is not staged for apply"
    # Its own pid, should the apply that started it be gone before it recorded it.
    printf '%s\n' "$$" >"$STAGE/runner"
    to=$(cat "$STAGE/to")
    full=$(head -n1 "$STAGE/plan")
    # Global: the trap runs after this function has returned.
    RUNNING=$run
    trap 'failed_run "$RUNNING" "$?"' EXIT
    prepare "$full"
    journal prepared
    last="$STAGE/backups/$(grep '^inc-' "$STAGE/plan" | tail -n1 || true)"
    [[ "$last" != "$STAGE/backups/" ]] || last="$STAGE/backups/$full"
    info=$(binlog_info "$last")
    [[ -n "$info" ]] || info=$(binlog_info "$STAGE/backups/$full")
    log "prepared $full and $(grep -c '^inc-' "$STAGE/plan" || true) incremental(s) in $((SECONDS - t0)) s"
    rm -rf "$DATADIR.incoming"
    # Moved, not copied: the staged copy goes anyway, and a Pi then needs room for the data once.
    mariadb-backup --move-back --target-dir="$STAGE/backups/$full" --datadir="$DATADIR.incoming" >>"$STAGE/prepare.log" 2>&1 || {
        log "move-back failed (see $STAGE/prepare.log)"
        return 1
    }
    chown -R "$DB_OWNER" "$DATADIR.incoming"
    journal incoming

    # The backup timers keep running: hold their locks until the restore is done (a shipper
    # that ran in between would take the new server's binlogs for the old ones it shipped).
    if [[ -d "$BACKUP_STATE" ]]; then
        exec 7>"$BACKUP_STATE/backup.lock" 8>"$BACKUP_STATE/ship.lock"
        flock 7
        flock 8
    fi
    journal stopping
    stop_mariadb || {
        log "not moving the data directory while MariaDB runs: stop it (systemctl stop mariadb; check it is gone), then run the restore again"
        return 1
    }
    journal stopped
    [[ -e "$DATADIR" ]] || install -d -m 0755 -o "${DB_OWNER%%:*}" -g "${DB_OWNER##*:}" "$DATADIR"
    local aside
    aside="$DATADIR.before-restore-$(date -u +%Y%m%d%H%M%S)"
    journal aside "$aside"
    mv "$DATADIR" "$aside"
    mv "$DATADIR.incoming" "$DATADIR"
    journal swapped
    log "kept what was in $DATADIR as $aside"

    isolate "$run"
    start_mariadb || {
        log "MariaDB does not start on the restored data"
        return 1
    }
    wait_mariadb || {
        log "MariaDB does not answer on the restored data"
        return 1
    }
    journal isolated
    replay "$info" "$to" "$aside"
    journal replayed
    finish
    trap - EXIT
    result "$run" ok "restored${to:+ to $to UTC} in $((SECONDS - t0)) s"
    rm -rf "$STAGE"
    log "done in $((SECONDS - t0)) s"
}

failed_run() {
    local run=$1 rc=$2 phase action
    trap - EXIT
    phase=$(last_phase)
    action=$(recovery_action "$phase")
    log "the apply failed at phase $phase (exit $rc): $action"
    if [[ "$action" == finish ]]; then
        if finish; then
            result "$run" ok "restored (finishing needed a second try)"
            rm -rf "$STAGE"
            exit 0
        fi
        result "$run" failed "the restore is in place but MariaDB did not come back with networking (see $LOG_DIR/$run.log); run recover"
        exit 1
    fi
    if rollback; then
        result "$run" rolled-back "failed at phase $phase; the data directory from before is back and MariaDB runs on it (see $LOG_DIR/$run.log)"
        rm -rf "$STAGE"
    else
        result "$run" failed "failed at phase $phase, and the rollback failed too (see $LOG_DIR/$run.log)"
    fi
    exit 1
}

# plan_series : the binlog series of the planned full (from its name), or nothing (legacy).
plan_series() {
    [[ "$(head -n1 "$STAGE/plan")" =~ -(s[0-9]+x[0-9a-f]{8})\.xb\.zst\.age$ ]] && echo "${BASH_REMATCH[1]}"
}

# local_binlogs ASIDE : "FILE PATH" for each binlog in the data directory set aside, in order,
# when the restore is to the latest point and that directory is the plan's own binlog series
# (the backup tool's series file on this Pi says so). Its binlogs are then the most complete
# copy of the tail: every write it acknowledged is in them (sync_binlog = 1), and nothing was
# written after the stop, while the target's copies (shipped, or streamed) can miss the last
# events before it. So a restore to the latest point of a database that still runs loses no
# write it acknowledged. Prints nothing otherwise (a wiped Pi, another series, a --to).
local_binlogs() {
    local aside=$1 series line
    series=$(plan_series) || return 0
    [[ -n "$aside" && -f "$aside/mariadb-bin.index" ]] || return 0
    [[ "$(cat "$BACKUP_STATE/series" 2>/dev/null)" == "$series" ]] || return 0
    while read -r line; do
        # Relative (./mariadb-bin.000042) or absolute, the index names the old path: its base name counts.
        line=${line##*/}
        [[ "$line" =~ ^mariadb-bin\.[0-9]+$ && -f "$aside/$line" ]] && echo "$line $aside/$line"
    done <"$aside/mariadb-bin.index"
}

# with_local_tail ASIDE FILE PATH... : the staged binlogs (as FILE PATH pairs, in order) with
# each one the data directory set aside holds replaced by its own copy, and its later ones
# appended (see local_binlogs). FILE is where the backup stops when nothing is staged.
with_local_tail() {
    local aside=$1 backup_file=$2 f p last="" from
    shift 2
    local -A local_copy=()
    while read -r f p; do local_copy[$f]=$p; done < <(local_binlogs "$aside")
    while (($#)); do
        echo "${local_copy[$1]:-$2}"
        last=$1
        shift 2
    done
    # Its binlogs after the last staged one; with none staged, from the backup's own file on.
    if [[ -n "$last" ]]; then
        from=$((10#${last##*.} + 1))
    elif [[ -n "$backup_file" && -n "${local_copy[$backup_file]:-}" ]]; then
        last=$backup_file from=$((10#${backup_file##*.}))
    else
        return 0
    fi
    while read -r f p; do
        [[ "${f%.*}" == "${last%.*}" ]] && ((10#${f##*.} >= from)) && echo "$p"
    done < <(local_binlogs "$aside")
}

# replay "FILE POS" TO [ASIDE] : applies the planned binlogs from FILE at POS on, up to TO;
# to the latest point, with the tail the data directory set aside (ASIDE) still holds.
replay() {
    local file=${1%%[[:space:]]*} pos=${1##*[[:space:]]} to=$2 aside=${3:-} n first=""
    local -a files=() pairs=()
    # The planned binlogs are in file order. The one to start from is the first that is the
    # backup's binlog file. Those of an earlier file are inside the backup already: an
    # incremental taken after the last shipping stops in the binlog that was active then,
    # which no shipped file holds yet. Only a later file without the backup's own is a gap.
    while read -r n; do
        if [[ -z "$first" ]]; then
            if [[ -n "$file" && "$(binlog_file "$n")" == "$file" ]]; then
                first=$n
            elif older_binlog "$n" "$file"; then
                continue
            else
                log "binlog $n was staged but none holds $file, where the backup stops: a gap in the shipped binlogs; restore with --to before it or without binlogs"
                return 1
            fi
        fi
        pairs+=("$(binlog_file "$n")" "$(staged_path "$n")")
    done < <(grep -E '^(binlog|stream)-' "$STAGE/plan")
    if [[ -z "$to" ]]; then
        mapfile -t files < <(with_local_tail "$aside" "$file" "${pairs[@]}")
        [[ -z "$aside" || " ${files[*]} " != *" $aside/"* ]] || log "the tail comes from $aside's own binlogs: they hold every write it acknowledged"
    else
        for ((n = 1; n < ${#pairs[@]}; n += 2)); do files+=("${pairs[n]}"); done
    fi
    if ((${#files[@]} == 0)); then
        log "no binlog after the backup (${file:-none} at ${pos:-?}): restored to the backup's own point"
        return 0
    fi
    local opts=(--start-position="$pos")
    [[ -n "$to" ]] && opts+=(--stop-datetime="$to")
    # mariadb-binlog reads --stop-datetime in its time zone; --to is UTC. The replay is not
    # written to the binlog again: those events are already shipped, and a later restore
    # from the same full would apply them twice. The next full backup holds them instead.
    #
    # The position mariadb-backup records can be a few transactions behind the pages and redo
    # log it copied (seen with 11.8: rows committed a second after the recorded position were
    # in the backup). The binlog is row-based with full images, so the replay runs in
    # IDEMPOTENT mode: a row that is already there is written again with the same image, a
    # delete of a row that is gone is skipped, and the overlap cannot fail or differ. No client
    # writes meanwhile (no networking), so no replayed image overwrites a newer row.
    #
    # Nor does each replayed commit wait for its redo log to reach the disk
    # (innodb_flush_log_at_trx_commit=2): a replay that a crash cuts short is rolled back as a
    # whole, so those flushes buy nothing, and on an SD card they are most of its time. The
    # restart that reopens MariaDB takes the configured value back.
    #
    # A large transaction is one BINLOG statement of its row events' size: the replay's session
    # and client take packets up to 1 GB, MariaDB's limit (the default 16 MB failed a 32 MB
    # insert with "server has gone away"). The restart takes the configured value back too.
    local db=(mariadb --user=root --socket="$DB_SOCKET")
    "${db[@]}" -e "SET GLOBAL slave_exec_mode = 'IDEMPOTENT'; SET GLOBAL innodb_flush_log_at_trx_commit = 2; SET GLOBAL max_allowed_packet = 1073741824" || return 1
    local status=0
    {
        echo 'SET SESSION sql_log_bin = 0;'
        TZ=UTC mariadb-binlog "${opts[@]}" "${files[@]}"
    } | "${db[@]}" --max-allowed-packet=1G || status=$?
    "${db[@]}" -e "SET GLOBAL slave_exec_mode = 'STRICT'" || log "could not set slave_exec_mode back to STRICT"
    ((status == 0)) || {
        log "replaying the binlogs failed"
        return 1
    }
    log "replayed ${#files[@]} binlog file(s) from $file:$pos${to:+ up to $to UTC}"
}

main() {
    umask 077
    local cmd=${1:-}
    shift || true
    case "$cmd" in
    hold) hold "${1:?RUN}" "${2:-unknown}" ;;
    stage-backup) stage_backup "${1:?RUN}" "${2:?NAME}" ;;
    stage-binlog) stage_binlog binlogs "${1:?RUN}" "${2:?NAME}" ;;
    stage-stream) stage_binlog stream "${1:?RUN}" "${2:?NAME}" ;;
    unstage) unstage "${1:?RUN}" "${@:2}" ;;
    apply) apply "${1:?RUN}" "${2:-}" ;;
    attach) attach "${1:?RUN}" ;;
    status) with_lock status_line ;;
    recover) install -d -m 0755 "$LOG_DIR" && with_lock recover ;;
    run) run "${1:?RUN}" ;;
    *) die "usage: pi-cluster-restore hold RUN WHO | stage-backup|stage-binlog|stage-stream RUN NAME | unstage RUN NAME... | apply RUN [TO] | attach RUN | status | recover | run RUN" ;;
    esac
}

# Sourced by the tests for the pure functions; run as a command otherwise.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
