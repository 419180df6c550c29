#!/usr/bin/env bash
# The restore under real faults, on this machine: a throwaway MariaDB (tests/backup/restore-lib.sh),
# real backups by the backup tool, scripts/restore.sh --here. Each case breaks something and
# checks what the database holds afterwards:
#   writer     a client keeps writing over TCP through the restore: every connection during the
#              binlog replay is refused, and no replayed row overwrites a row written after it
#   two        a second restore while one stages, and a third while it applies: both refused,
#              naming the first, which completes on its own staging
#   client     the operator's restore is killed (its whole process group) mid-apply: the apply
#              goes on; running restore.sh again follows it and reports its result
#   runner     the apply itself is killed mid-replay (as a power cut would): running restore.sh
#              again rolls it back (the old data directory, MariaDB with networking) and restores
#   nostop     MariaDB does not stop (SIGSTOPped): the restore refuses, the data directory stays
#   badfull    the newest full is truncated with a matching sha256 (issue 17's fault): skipped,
#              the previous full and its binlogs restore every acknowledged row
#   gap        a binlog in the middle is missing: refused, saying what would be lost; --to before
#              it, or --accept-gap, restores
#   stream     binlog names with a series and a stream file of the active binlog on the target:
#              the rows written after the last shipping are restored too
# What differs from a Pi: no systemd (the apply runs detached; the transient unit is the lab's).
# Usage: tests/backup/restore-faults.sh [CASE...]   (root; mariadbd, mariadb-backup, age, zstd)
set -euo pipefail
# shellcheck source=tests/backup/restore-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/restore-lib.sh"

rows() { sql app -e "SELECT COUNT(*) FROM notes"; }
add() { sql app -e "INSERT INTO notes (body) SELECT 'r' FROM seq_1_to_$1"; }

# phase_epoch LOG PHASE : when the apply reached PHASE (from its log).
phase_epoch() { sed -nE "s/^restore: phase: $2 .*epoch ([0-9.]+)\)$/\1/p" "$1" | tail -n1; }

# db_status : the DB Pi's half's status line.
db_status() { bash "$REPO/assets/backup/pi-cluster-restore.sh" status; }

# wait_for WHAT SECONDS CMD... : polls CMD until it succeeds.
wait_for() {
    local what=$1 end=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < end)) || fail "timed out waiting for $what"
        sleep 0.1
    done
}

setup() {
    info "a throwaway MariaDB $(mariadbd --version | awk '{print $3}') on port $PORT, with backups"
    new_db
    sql -e "CREATE DATABASE app; CREATE TABLE app.notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB;
        CREATE TABLE app.counter (id INT PRIMARY KEY, v INT NOT NULL, at DOUBLE) ENGINE=InnoDB; INSERT INTO app.counter VALUES (1, 0, 0);
        CREATE TABLE app.w (i INT PRIMARY KEY, at DOUBLE) ENGINE=InnoDB;
        CREATE USER 'writer'@'127.0.0.1' IDENTIFIED BY 'writer-pw'; GRANT SELECT, INSERT, UPDATE ON app.* TO 'writer'@'127.0.0.1'"
    printf '[client]\nuser=writer\npassword=writer-pw\nhost=127.0.0.1\nport=%s\nconnect-timeout=2\n' "$PORT" >"$BASE/writer.cnf"
    sql app -e "INSERT INTO notes (body) SELECT REPEAT(MD5(seq), 32) FROM seq_1_to_20000"
    backup full >/dev/null 2>&1
    add 100
    backup incremental >/dev/null 2>&1
    # A replay that takes a while: many small transactions, each rewriting the counter row with
    # an old value (the image a replay would put back over a newer write).
    local i
    {
        for ((i = 1; i <= 3000; i++)); do
            echo "UPDATE counter SET v = -$i WHERE id = 1; INSERT INTO notes (body) VALUES (REPEAT('u', 500));"
        done
    } | sql app
    backup ship-binlogs >/dev/null 2>&1
}

# writer LOG : every 50 ms, over TCP as the app would: the counter set to i and row i inserted;
# one line per attempt: EPOCH ok|refused i.
writer() {
    local i=0 out
    while [[ ! -e "$BASE/writer.stop" ]]; do
        i=$((i + 1))
        if out=$(mariadb --defaults-file="$BASE/writer.cnf" app -e "UPDATE counter SET v = $i, at = UNIX_TIMESTAMP(NOW(6)) WHERE id = 1; INSERT INTO w VALUES ($i, UNIX_TIMESTAMP(NOW(6)))" 2>&1); then
            echo "$EPOCHREALTIME ok $i"
        else
            echo "$EPOCHREALTIME refused $i ${out//$'\n'/ }"
        fi
        sleep 0.05
    done >"$1"
}

case_writer() {
    info "writer: a client writes over TCP through the whole restore"
    rm -f "$BASE/writer.stop"
    writer "$BASE/writer.log" &
    local wpid=$!
    wait_for "the writer's first write" 20 grep -q ' ok ' "$BASE/writer.log"
    restore >"$BASE/restore.log" 2>&1 || { cat "$BASE/restore.log"; fail "the restore failed"; }
    # Writes after the restore, then stop.
    local n
    n=$(grep -c ' ok ' "$BASE/writer.log")
    wait_for "writes after the restore" 30 bash -c "(( \$(grep -c ' ok ' '$BASE/writer.log') > $n + 10 ))"
    touch "$BASE/writer.stop"
    wait "$wpid"
    local t_iso t_rep t_done
    t_iso=$(phase_epoch "$BASE/restore.log" isolated)
    t_rep=$(phase_epoch "$BASE/restore.log" replayed)
    t_done=$(phase_epoch "$BASE/restore.log" "done")
    [[ -n "$t_iso" && -n "$t_rep" && -n "$t_done" ]] || { cat "$BASE/restore.log"; fail "no phase times in the restore's log"; }
    # Attempts made while the replay ran: every one refused, and there must be some.
    local during ok_during
    during=$(awk -v a="$t_iso" -v b="$t_rep" '$1 >= a && $1 <= b' "$BASE/writer.log" | wc -l)
    ok_during=$(awk -v a="$t_iso" -v b="$t_rep" '$1 >= a && $1 <= b && $2 == "ok"' "$BASE/writer.log" | wc -l)
    echo "replay: $(awk -v a="$t_iso" -v b="$t_rep" 'BEGIN { printf "%.2f", b - a }') s; writer attempts during it: $during, acknowledged: $ok_during"
    ((during >= 3)) || fail "only $during write attempt(s) during the replay: too short to prove anything"
    ((ok_during == 0)) || fail "$ok_during write(s) were acknowledged while the binlogs were replayed"
    awk -v a="$t_iso" -v b="$t_rep" '$1 >= a && $1 <= b' "$BASE/writer.log" | grep -v -q "Can't connect" &&
        fail "a write during the replay failed for another reason than a refused connection: $(awk -v a="$t_iso" -v b="$t_rep" '$1 >= a && $1 <= b' "$BASE/writer.log" | grep -v "Can't connect" | head -n1)"
    # The counter holds the last acknowledged write, not a replayed image; every acknowledged
    # write is there: those before the stop too (the restore to the latest point replays the
    # tail from the data directory it set aside, which holds them all).
    local last v missing
    last=$(awk '$2 == "ok" { i = $3 } END { print i }' "$BASE/writer.log")
    v=$(sql app -e "SELECT v FROM counter WHERE id = 1")
    [[ "$v" == "$last" ]] || fail "the counter is $v, the last acknowledged write set it to $last"
    missing=0
    while read -r i; do
        [[ "$(sql app -e "SELECT COUNT(*) FROM w WHERE i = $i")" == 1 ]] || missing=$((missing + 1))
    done < <(awk '$2 == "ok" { print $3 }' "$BASE/writer.log")
    ((missing == 0)) || fail "$missing acknowledged write(s) are missing (before, during or after the restore)"
    echo "acknowledged: $(grep -c ' ok ' "$BASE/writer.log") in all, $(awk -v d="$t_done" '$2 == "ok" && $1 > d' "$BASE/writer.log" | wc -l) after the restore; every one present; the counter is the last one ($v)"
}

# refused_naming RUN WHICH : a restore started now is refused (exit 3), naming RUN.
refused_naming() {
    local rc=0
    restore >"$BASE/$2.log" 2>&1 || rc=$?
    cat "$BASE/$2.log"
    ((rc == 3)) || fail "the $2 restore exited $rc, expected 3 (refused)"
    grep -q "$1" "$BASE/$2.log" || fail "the refusal does not name the restore $1 that holds the DB Pi"
}

case_two() {
    info "two: a second restore while the first stages, a third while it applies"
    local want
    want=$(rows)
    setsid bash -c 'exec "$@"' _ bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here >"$BASE/first.log" 2>&1 &
    local first=$!
    wait_for "the first restore's hold" 30 grep -q 'holds the DB Pi' "$BASE/first.log"
    local run
    run=$(sed -nE 's/.*run ([0-9TZ]+-[0-9a-f]+) holds.*/\1/p' "$BASE/first.log")
    refused_naming "$run" second
    wait_for "the first restore's apply" 60 grep -q 'phase: staged' "$BASE/first.log"
    refused_naming "$run" third
    wait "$first" || { cat "$BASE/first.log"; fail "the first restore failed"; }
    [[ "$(rows)" == "$want" ]] || fail "after the first restore: $(rows) rows, expected $want"
    echo "the first restore completed on its own staging: $(rows) rows"
}

# restore_in_group LOG : a restore in a process group of its own, as an operator's terminal runs
# it; its pid (the group's id) in PG.
restore_in_group() {
    setsid bash "$REPO/scripts/restore.sh" --identity "$BASE/identity" --from "$BASE/target" --here >"$1" 2>&1 &
    PG=$!
}

# rerun LOG WANT : restore.sh run again succeeds; WANT rows, and MariaDB takes TCP connections.
rerun() {
    local rc=0
    restore >"$1" 2>&1 || rc=$?
    cat "$1"
    ((rc == 0)) || fail "the re-run exited $rc"
    [[ "$(rows)" == "$2" ]] || fail "after the re-run: $(rows) rows, expected $2"
    mariadb --defaults-file="$BASE/writer.cnf" app -e 'SELECT 1' >/dev/null || fail "no TCP connection after the re-run"
}

case_client() {
    info "client: the operator's restore killed mid-apply, then run again"
    local want
    want=$(rows)
    restore_in_group "$BASE/killed.log"
    wait_for "the apply to start" 60 grep -q 'phase: stopping' "$BASE/killed.log"
    kill -KILL -- "-$PG"
    echo "killed the operator's process group at: $(grep 'phase:' "$BASE/killed.log" | tail -n1)"
    rerun "$BASE/rerun.log" "$want"
    grep -Eq 'is applying on the DB Pi: following it|ended while this machine was away' "$BASE/rerun.log" || fail "the re-run did not follow the running apply"
    grep -q 'holds the DB Pi' "$BASE/rerun.log" && fail "the re-run started a restore of its own"
    echo "the apply finished without its operator; the re-run reported it: $(rows) rows, TCP open"
}

case_runner() {
    info "runner: the apply killed mid-replay, then restore.sh run again"
    local want runner
    want=$(rows)
    restore_in_group "$BASE/cut.log"
    wait_for "the replay" 60 grep -q 'phase: isolated' "$BASE/cut.log"
    runner=$(cat "$STAGE/runner")
    # The apply and what it runs (its replay's client) die at once, as in a power cut; so does
    # its operator.
    kill -KILL -- "-$runner" "-$PG" 2>/dev/null || true
    echo "killed the apply at: $(tail -n1 "$STAGE/journal")"
    [[ -e "$ISOLATION_CNF" ]] || fail "no isolation while the apply was cut"
    rerun "$BASE/after-cut.log" "$want"
    grep -q 'rolled-back interrupted at isolated' "$BASE/after-cut.log" || fail "the re-run did not roll the interrupted apply back"
    [[ ! -e "$ISOLATION_CNF" ]] || fail "the isolation file is left"
    echo "rolled back, then restored: $(rows) rows, TCP open"
}

case_nostop() {
    info "nostop: MariaDB does not stop"
    local want pid inode rc=0
    want=$(rows)
    pid=$(cat "$BASE/mysqld.pid")
    inode=$(stat -c %i "$DATADIR")
    local asides
    asides=$(find "$BASE" -maxdepth 1 -name 'data.before-restore-*' | wc -l)
    kill -STOP "$pid"
    STOP_WAIT=3 restore >"$BASE/nostop.log" 2>&1 || rc=$?
    cat "$BASE/nostop.log"
    ((rc == 1)) || fail "the restore exited $rc, expected 1"
    grep -q "MariaDB did not stop: process(es) $pid" "$BASE/nostop.log" || fail "no clear refusal naming the running server"
    grep -q 'not moving the data directory while MariaDB runs' "$BASE/nostop.log" || fail "the refusal does not say the data directory stays"
    [[ "$(stat -c %i "$DATADIR")" == "$inode" ]] || fail "the data directory was moved"
    [[ "$(find "$BASE" -maxdepth 1 -name 'data.before-restore-*' | wc -l)" == "$asides" ]] || fail "a data directory was moved aside"
    [[ ! -e "$DATADIR.incoming" && ! -e "$STAGE" ]] || fail "the refused restore left its staging"
    kill -CONT "$pid"
    # The stop it ignored takes effect now; the data directory is intact.
    wait_for "the server to end" 30 bash -c "! kill -0 $pid 2>/dev/null"
    start_db || fail "MariaDB does not start again"
    [[ "$(rows)" == "$want" ]] || fail "$(rows) rows after the refusal, expected $want"
    echo "refused, the data directory untouched ($want rows)"
}

case_badfull() {
    info "badfull: the newest full is truncated, its sha256 made to match"
    # The full a restore starts on the DB Pi (FULL_UNIT; none here): the previous good one.
    backup full >/dev/null 2>&1
    add 50
    backup ship-binlogs >/dev/null 2>&1
    backup full >/dev/null 2>&1
    add 70
    backup ship-binlogs >/dev/null 2>&1
    local want newest rc=0
    want=$(rows)
    newest=$(find "$BASE/target" -name 'full-*.age' -printf '%f\n' | sort | tail -n1)
    truncate -s -4096 "$BASE/target/$newest"
    (cd "$BASE/target" && sha256sum "$newest" >"$newest.sha256")
    stop_db
    rm -rf "$DATADIR"
    restore >"$BASE/badfull.log" 2>&1 || rc=$?
    cat "$BASE/badfull.log"
    ((rc == 0)) || fail "the restore exited $rc"
    grep -q "skipping $newest: age refuses it" "$BASE/badfull.log" || fail "the bad full was not reported as skipped, with why"
    [[ "$(rows)" == "$want" ]] || fail "$(rows) rows, expected $want"
    rm -f "$BASE/target/$newest" "$BASE/target/$newest.sha256"
    echo "fell back to the previous full and its binlogs: $want rows, as acknowledged"
}

case_gap() {
    info "gap: a binlog in the middle is missing, then the first after the backup"
    # A restored server starts a new binlog numbering: its first full (the DB Pi's restore
    # starts one) begins the chain.
    backup full >/dev/null 2>&1
    # Where that full stops in the binlog: the file active when it ended (nothing was written since).
    local start_file
    start_file=$(sql -e 'SHOW MASTER STATUS' | cut -f1)
    local i
    for i in 1 2 3; do
        add 10
        backup ship-binlogs >/dev/null 2>&1
    done
    local want_all mid rc=0 file
    want_all=$(rows)
    local -a logs
    mapfile -t logs < <(find "$BASE/target" -name 'binlog-*.age' -newer "$(find "$BASE/target" -name 'full-*.age' | sort | tail -n1)" -printf '%f\n' | sort)
    ((${#logs[@]} >= 3)) || fail "expected 3 or more shipped binlogs, got ${#logs[@]}"
    mid=${logs[-2]}
    file=$(sed -E 's/^binlog-[0-9TZ]+-[0-9]{4}-(s[0-9]+x[0-9a-f]{8}-)?(.*)\.zst\.age$/\2/' <<<"$mid")
    mv "$BASE/target/$mid" "$BASE/gap.$mid"
    restore >"$BASE/gap.log" 2>&1 || rc=$?
    cat "$BASE/gap.log"
    ((rc == 1)) || fail "the restore exited $rc, expected 1 (refused)"
    grep -q 'accept losing those writes with --accept-gap' "$BASE/gap.log" || fail "the refusal does not say how to go on"
    grep -q "$file is missing" "$BASE/gap.log" || fail "the refusal does not name the missing binlog $file"
    grep -q 'phase:' "$BASE/gap.log" && fail "the refused restore went as far as the apply"
    [[ "$(rows)" == "$want_all" ]] || fail "a refused restore changed the data"
    rc=0
    restore --accept-gap >"$BASE/gap2.log" 2>&1 || rc=$?
    ((rc == 0)) || { cat "$BASE/gap2.log"; fail "--accept-gap exited $rc"; }
    # The database here is not lost: its data directory's own binlogs, kept aside by the swap,
    # continue the plan past the gap and hold every acknowledged write.
    local got
    got=$(rows)
    grep -q "the tail comes from .*'s own binlogs" "$BASE/gap2.log" || fail "--accept-gap did not take the tail from the old data directory's binlogs"
    [[ "$got" == "$want_all" ]] || fail "--accept-gap restored $got rows, expected all $want_all (the old data directory's binlogs fill the gap)"
    mv "$BASE/gap.$mid" "$BASE/target/$mid"
    echo "refused; with --accept-gap, the old data directory's own binlogs filled the gap: $got of $want_all rows"

    # The first binlog after the backup missing: only the staged backup knows where it stops.
    local first
    first=$(find "$BASE/target" -name "binlog-*-$start_file.zst.age" -newer "$(find "$BASE/target" -name 'full-*.age' | sort | tail -n1)" -printf '%f\n' | sort | head -n1)
    [[ -n "$first" ]] || fail "no shipped $start_file after the full"
    file=$start_file
    mv "$BASE/target/$first" "$BASE/gap.$first"
    rc=0
    restore >"$BASE/gap3.log" 2>&1 || rc=$?
    cat "$BASE/gap3.log"
    ((rc == 1)) || fail "the restore without the first binlog exited $rc, expected 1 (refused)"
    grep -q "$file is missing" "$BASE/gap3.log" || fail "the refusal does not name the missing first binlog $file"
    grep -q 'phase:' "$BASE/gap3.log" && fail "the refused restore went as far as the apply"
    mv "$BASE/gap.$first" "$BASE/target/$first"
    restore >/dev/null 2>&1 || fail "the restore with the binlogs back failed"
    [[ "$(rows)" == "$want_all" ]] || fail "with the binlogs back: $(rows) rows, expected $want_all"
    echo "the missing first binlog was refused before the apply; with it back: $want_all rows"
}

case_stream() {
    info "stream: series names and the stream of the active binlog"
    # The backup tool names the series; names without one (from before it did) are given its
    # series here, as it would have, with their hashes recorded again.
    local series n m active rc=0
    backup full >/dev/null 2>&1
    series=$(find "$BASE/target" -maxdepth 1 -name 'full-*-s*.xb.zst.age' -printf '%f\n' | sort | tail -n1 | sed -E 's/^.*-(s[0-9]+x[0-9a-f]{8})\.xb\.zst\.age$/\1/')
    [[ -n "$series" ]] || fail "the full has no series in its name"
    add 20
    backup ship-binlogs >/dev/null 2>&1
    while read -r n; do
        case "$n" in
        *-s[0-9]*x*) continue ;;
        full-*) m="${n%.xb.zst.age}-$series.xb.zst.age" ;;
        inc-*) m="${n%.xb.zst.age}-$series.xb.zst.age" ;;
        binlog-*) m=$(sed -E "s/^(binlog-[0-9TZ]+-[0-9]{4})-(.*)$/\1-$series-\2/" <<<"$n") ;;
        esac
        mv "$BASE/target/$n" "$BASE/target/$m"
        rm -f "$BASE/target/$n.sha256"
        (cd "$BASE/target" && sha256sum "$m" >"$m.sha256")
    done < <(find "$BASE/target" -maxdepth 1 -name '*.age' -printf '%f\n')
    add 33
    local want
    want=$(rows)
    # What the stream holds: the active binlog, as mariadb-binlog --raw copies it.
    active=$(sql -e 'SHOW MASTER STATUS' | cut -f1)
    install -d -m 0700 "$BASE/target/stream/$series"
    cp "$DATADIR/$active" "$BASE/target/stream/$series/$active"
    stop_db
    rm -rf "$DATADIR"
    restore >"$BASE/stream.log" 2>&1 || rc=$?
    cat "$BASE/stream.log"
    ((rc == 0)) || fail "the restore exited $rc"
    grep -q "stream tail: 1 file(s) of $series" "$BASE/stream.log" || fail "the stream file was not staged"
    [[ "$(rows)" == "$want" ]] || fail "$(rows) rows, expected $want (the 33 written after the last shipping come from the stream)"
    echo "restored with the stream tail: $want rows, the 33 written after the last shipping included"
}

main() {
    local cases=("$@")
    ((${#cases[@]})) || cases=(writer two client runner nostop badfull gap stream)
    lib_init faults
    setup
    local c t0
    for c in "${cases[@]}"; do
        t0=$SECONDS
        "case_$c"
        echo "($c: $((SECONDS - t0)) s)"
    done
    info "all restore fault cases passed: ${cases[*]}"
}

main "$@"
