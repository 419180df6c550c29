#!/usr/bin/env bash
# The restore's systemd parts, on the lab (the local tests have no systemd): converges the lab
# stack with backups, then
#   isolated   restore.sh runs the apply as a transient unit; a client on pi-web1 probing
#              pi-db:3306 over TCP is refused through the whole replay, and connects after
#   dropped    the operator's restore.sh is killed (its process group) mid-apply: the unit goes
#              on; restore.sh run again follows it to its end, and the database takes writes
#   replica    with a replica: it is stopped (STOP SLAVE) and reseed.<name> bumped
#   bare       pi-db wiped to a bare Pi (new disk, new host key): restore.sh end to end, timed
# Run it inside the lab session lock, on a lab that is up (lab/lab up [--replicas 1]):
#   flock -w 7200 /run/lock/pi-cluster-lab-session.lock bash -c \
#     'lab/lab down; lab/lab up --replicas 1; tests/backup/restore-lab.sh; lab/lab down'
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
# shellcheck source=/dev/null
source toolchain/env.sh
export PULUMI_BACKEND_URL="file://$REPO/.state/backend" PULUMI_CONFIG_PASSPHRASE=pi-cluster-lab
AGE_KEY=${PI_LAB_STATE:-/var/lib/pi-cluster-lab}/backup/age.key
OUT=$(mktemp -d /tmp/restore-lab.XXXXXX)
TARGET_DIR=/srv/pi-cluster-backups

info() { printf '\n== %s\n' "$*" >&2; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
on() { lab/lab ssh "$@"; }
phase_epoch() { sed -nE "s/^restore: phase: $2 .*epoch ([0-9.]+)\)$/\1/p" "$1" | tail -n1; }
restore() { bash scripts/restore.sh --identity "$AGE_KEY" --stack lab; }

converge() {
    info "converging the lab stack (binlogs shipped every 10 s)"
    mkdir -p .state/backend
    pulumi stack select --create lab >/dev/null
    pulumi config set --path pi-cluster:backup.binlogShipSeconds 10
    local t0=$SECONDS
    pulumi up --yes --skip-preview --non-interactive --stack lab >"$OUT/up.log" 2>&1 || { tail -n 40 "$OUT/up.log"; fail "pulumi up failed"; }
    echo "converged in $((SECONDS - t0)) s"
    DB_ADDR=$(pulumi config get --path pi-cluster:database.address)
}

# load : writes that make the replay last: many small transactions, shipped.
load() {
    on pi-db "sudo mariadb -e 'CREATE DATABASE IF NOT EXISTS restorelab; CREATE TABLE IF NOT EXISTS restorelab.t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT) ENGINE=InnoDB'"
    on pi-db "for i in \$(seq 1 4000); do echo \"INSERT INTO restorelab.t (v) VALUES (REPEAT('x', 300));\"; done | sudo mariadb"
    on pi-db "sudo systemctl start pi-cluster-backup-ship-binlogs.service"
}

wait_full() {
    local i
    for ((i = 0; i < 120; i++)); do
        on pi-lb "sudo ls $TARGET_DIR" 2>/dev/null | grep -q '^full-' && return 0
        sleep 2
    done
    fail "no full backup on the target"
}

rows() { on pi-db "sudo mariadb -N -e 'SELECT COUNT(*) FROM restorelab.t'"; }

case_isolated() {
    info "isolated: a TCP client on pi-web1 through a restore run as a transient unit"
    load
    local want
    want=$(rows)
    # One attempt every 0.1 s: EPOCH ok|refused.
    on pi-web1 "rm -f /tmp/probe.stop; while [ ! -e /tmp/probe.stop ]; do if timeout 1 bash -c 'exec 3<>/dev/tcp/$DB_ADDR/3306' 2>/dev/null; then echo \"\$EPOCHREALTIME ok\"; else echo \"\$EPOCHREALTIME refused\"; fi; sleep 0.1; done >/tmp/probe.log 2>&1 &"
    local t0=$SECONDS
    restore >"$OUT/isolated.log" 2>&1 || { cat "$OUT/isolated.log"; fail "the restore failed"; }
    echo "restore: $((SECONDS - t0)) s end to end"
    sleep 2
    on pi-web1 "touch /tmp/probe.stop"
    on pi-web1 "cat /tmp/probe.log" >"$OUT/probe.log"
    grep -q 'systemd runner' "$OUT/isolated.log" || fail "the apply did not run as a transient unit"
    local a b during ok_during
    a=$(phase_epoch "$OUT/isolated.log" isolated)
    b=$(phase_epoch "$OUT/isolated.log" replayed)
    during=$(awk -v a="$a" -v b="$b" '$1 >= a && $1 <= b' "$OUT/probe.log" | wc -l)
    ok_during=$(awk -v a="$a" -v b="$b" '$1 >= a && $1 <= b && $2 == "ok"' "$OUT/probe.log" | wc -l)
    echo "replay $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b - a }') s: $during TCP attempt(s) from pi-web1, $ok_during connected"
    ((during >= 3)) || fail "only $during attempt(s) during the replay"
    ((ok_during == 0)) || fail "$ok_during TCP connection(s) during the replay"
    tail -n 3 "$OUT/probe.log" | grep -q ' ok$' || fail "pi-web1 cannot connect after the restore"
    [[ "$(rows)" == "$want" ]] || fail "$(rows) rows, expected $want"
    grep -E 'phase:|done in|restored in' "$OUT/isolated.log" | sed 's/, epoch [0-9.]*//'
}

case_dropped() {
    info "dropped: the operator's restore killed mid-apply, then run again"
    local want run rc=0
    want=$(rows)
    setsid bash scripts/restore.sh --identity "$AGE_KEY" --stack lab >"$OUT/dropped.log" 2>&1 &
    local pg=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q 'phase: stopping' "$OUT/dropped.log" && break
        sleep 0.2
    done
    grep -q 'phase: stopping' "$OUT/dropped.log" || { cat "$OUT/dropped.log"; fail "the apply did not start"; }
    kill -KILL -- "-$pg"
    run=$(sed -nE 's/.*run ([0-9TZ]+-[0-9a-f]+) holds.*/\1/p' "$OUT/dropped.log")
    echo "killed the operator at: $(grep 'phase:' "$OUT/dropped.log" | tail -n1 | sed 's/, epoch [0-9.]*//')"
    on pi-db "systemctl is-active pi-cluster-restore-$run.service" || echo "(the unit already ended)"
    restore >"$OUT/dropped-rerun.log" 2>&1 || rc=$?
    cat "$OUT/dropped-rerun.log"
    ((rc == 0)) || fail "the re-run exited $rc"
    grep -Eq 'is applying on the DB Pi: following it|ended while this machine was away' "$OUT/dropped-rerun.log" || fail "the re-run did not follow the apply"
    [[ "$(rows)" == "$want" ]] || fail "$(rows) rows, expected $want"
    on pi-db "sudo mariadb -e 'INSERT INTO restorelab.t (v) VALUES (\"after\")'" || fail "the database takes no write"
    echo "the unit finished without its operator; the re-run reported it; the database takes writes"
}

case_replica() {
    local replica
    replica=$(pulumi config get --path 'pi-cluster:dbReplicas[0].name' 2>/dev/null || true)
    [[ -n "$replica" ]] || { echo "(no replica in the stack: replica case skipped)"; return 0; }
    info "replica: $replica stopped and marked for a reseed"
    grep -q "$replica: replication stopped" "$OUT/isolated.log" || fail "the restore did not stop replication on $replica"
    on "$replica" "sudo mariadb -e 'SHOW SLAVE STATUS\\G'" | grep -E 'Slave_(IO|SQL)_Running:' | tee "$OUT/replica.txt"
    grep -q 'Slave_IO_Running: Yes' "$OUT/replica.txt" && fail "$replica still replicates"
    local n
    n=$(pulumi config get --path "pi-cluster:reseed.$replica")
    ((n >= 2)) || fail "reseed.$replica is $n after two restores"
    echo "reseed.$replica = $n; next: $(grep -m1 'next:' "$OUT/isolated.log")"
}

case_bare() {
    info "bare: pi-db wiped (new disk, new host key), then restore.sh"
    lab/lab reset pi-db >/dev/null
    local t0=$SECONDS
    restore >"$OUT/bare.log" 2>&1 || { cat "$OUT/bare.log"; fail "the restore onto a bare Pi failed"; }
    local secs=$((SECONDS - t0))
    grep -E 'phase:|done in|restored in|installing' "$OUT/bare.log" | sed 's/, epoch [0-9.]*//'
    echo "RESULT: restore onto a bare pi-db: $secs s end to end (the drill's bound: 60 s)"
}

main() {
    converge
    wait_full
    case_isolated
    case_dropped
    case_replica
    case_bare
    info "all lab restore cases passed (logs: $OUT)"
}

main "$@"
