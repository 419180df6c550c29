#!/usr/bin/env bash
# Faults injected into real backups on this machine (issue 17): a throwaway mariadbd, the real
# tool on the "DB Pi" side, and the real receiver behind a real sshd on 127.0.0.1 (the DB
# Pi's own key, forced to `pi-cluster-backup receive` as on the target) writing into a tmpfs
# that plays the target's disk. Each case prints what it shows:
#   1. the target's disk full during a full: refused and reported, nothing committed, the
#      older backups intact;
#   2. mariadb-backup killed mid-full and 3. mid-incremental: nothing committed, status.json,
#      the retention and the restore plan as before, and the next run succeeds;
#   4. the link cut mid-shipping (the receiver's sshd session killed; then sshd itself, so
#      not even the abort arrives): nothing committed;
#   5. an existing name put again with the DB Pi's key: refused, the ledger and verify unchanged;
#   6. a committed file changed (its .sha256 too) or deleted: verify fails naming it;
#   7. a clock behind the newest backup: the run refuses to name a backup in the past;
#   8. a backup committed while verify reads the files: verify passes (the lab's fault suite
#      once saw it name such a file "committed, not pruned, and missing").
# What differs from a Pi: the receiver runs as root (not the pi-backup account), systemd is
# not running the tool (a failed run is its non-zero exit, which fails a oneshot unit), and
# the clock of case 7 is simulated by a newest backup one day ahead.
# Usage: tests/backup/faults.sh   (root; needs mariadbd, mariadb-backup, age, zstd, sshd, and
#   tmpfs mounts). Ports: TEST_BACKUP_PORT (MariaDB, default 3400), TEST_BACKUP_SSH_PORT (3401).
# Exits non-zero on the first check that fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOL="$REPO/assets/backup/pi-cluster-backup.sh"
# The tool's planners and its remote (its fail is the tool's: lib.sh's, sourced after, wins).
# shellcheck source=assets/backup/pi-cluster-backup.sh
source "$TOOL"
# shellcheck source=tests/backup/lib.sh
source "$REPO/tests/backup/lib.sh"
BASE=$(mktemp -d /tmp/pi-backup-faults.XXXXXX)
PORT=${TEST_BACKUP_PORT:-3400}
SSH_PORT=${TEST_BACKUP_SSH_PORT:-3401}
DATADIR="$BASE/data" DB_SOCKET="$BASE/mysqld.sock"
TARGET="$BASE/target" STATE="$BASE/state"
PATH="$PATH:/usr/sbin:/sbin"
SSHD_PID=""

cleanup() {
    stop_sshd || true
    stop_db || true
    mountpoint -q "$TARGET" && umount "$TARGET"
    [[ -n "${KEEP:-}" ]] || rm -rf "$BASE"
}
trap cleanup EXIT

# --- the target: a tmpfs behind a real sshd -----------------------------------------------

start_sshd() {
    install -d -m 0755 /run/sshd # sshd's privilege separation directory
    /usr/sbin/sshd -D -e -f "$BASE/sshd/config" 2>>"$BASE/sshd/log" &
    SSHD_PID=$!
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$SSH_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    cat "$BASE/sshd/log" >&2
    fail "sshd did not listen on $SSH_PORT"
}

stop_sshd() {
    [[ -n "$SSHD_PID" ]] || return 0
    local p
    for p in $(descendants "$SSHD_PID") "$SSHD_PID"; do kill -9 "$p" 2>/dev/null || true; done
    wait "$SSHD_PID" 2>/dev/null || true
    SSHD_PID=""
}

setup_target() {
    install -d -m 0700 "$TARGET" "$BASE/sshd" "$STATE/ssh"
    mount -t tmpfs -o size="$1",mode=0700 tmpfs "$TARGET"
    ssh-keygen -q -t ed25519 -N '' -f "$BASE/sshd/host_key"
    ssh-keygen -q -t ed25519 -N '' -C pi-cluster-backup@test -f "$STATE/ssh/id_ed25519"
    printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1-2 "$BASE/sshd/host_key.pub")" >"$STATE/ssh/known_hosts"
    # As components/render/backup.ts renders it, with the test's settings file.
    printf 'restrict,from="127.0.0.1",command="env BACKUP_ENV=%s bash %s receive" %s\n' "$BASE/target.env" "$TOOL" \
        "$(cut -d' ' -f1-2 "$STATE/ssh/id_ed25519.pub")" >"$BASE/sshd/authorized_keys"
    cat >"$BASE/sshd/config" <<EOF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $BASE/sshd/host_key
PidFile $BASE/sshd/pid
AuthorizedKeysFile $BASE/sshd/authorized_keys
PermitRootLogin forced-commands-only
AllowUsers root
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
EOF
    cat >"$BASE/target.env" <<EOF
BACKUP_DIR=$TARGET
RETENTION_DAYS=30
MIN_FREE_MB=8
EOF
    start_sshd
}

# --- the DB Pi's side ------------------------------------------------------------------------

run_tool() { BACKUP_ENV="$BASE/db.env" bash "$TOOL" "$@"; }

# on_target COMMAND : one receiver command over ssh with the DB Pi's key, as the tool sends it.
# shellcheck source=/dev/null
on_target() { (source "$BASE/db.env" && remote "$@"); }

# descendants PID : every process below PID.
descendants() {
    local p
    for p in $(ps -o pid= --ppid "$1"); do
        echo "$p"
        descendants "$p"
    done
}

# named_below PID NAME : the processes called NAME below PID.
named_below() {
    local p
    for p in $(descendants "$1"); do
        [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == "$2" ]] && echo "$p"
    done
    return 0
}

# wait_partial GLOB BYTES : until a partial upload GLOB on the target holds BYTES (at most 2 min).
wait_partial() {
    local i
    for ((i = 0; i < 1200; i++)); do
        [[ -n "$(find "$TARGET" -maxdepth 1 -name ".$1.partial" -size +"$2"c 2>/dev/null)" ]] && return 0
        sleep 0.1
    done
    fail "no partial upload $1 of $2 bytes on the target"
}

# --- what a fault must not change ------------------------------------------------------------

committed_files() { find "$TARGET" -maxdepth 1 -type f -name '*.age' -printf '%f\n' | LC_ALL=C sort; }

# snapshot : what a restore, status.json and the retention would take for the backups:
# the committed files with their hashes, the newest of each kind in status.json, the restore
# plan to the latest point, and what retention would prune 40 days on.
snapshot() {
    local now
    now=$(date -u +%s)
    (cd "$TARGET" && committed_files | xargs -r sha256sum)
    on_target status | grep -oE '"(full|incremental|binlog)":(null|\{"name":"[^"]+")'
    echo "plan:"
    committed_files | plan_restore $((now + 86400))
    echo "prune:"
    committed_files | plan_prune $((now + 40 * 86400)) 30
}

# expect_unchanged BEFORE WHAT : the snapshot is BEFORE, no partial upload is left, verify passes.
expect_unchanged() {
    snapshot >"$BASE/after"
    diff "$1" "$BASE/after" >&2 || fail "$2 changed what a restore, status.json or the retention see (diff above)"
    [[ -z "$(find "$TARGET" -maxdepth 1 -name '.*.partial')" ]] || fail "$2 left a partial upload: $(ls -a "$TARGET")"
    BACKUP_ENV="$BASE/target.env" bash "$TOOL" verify 2>/dev/null || fail "verify failed after $2"
}

# expect_failed KIND RC LOG WHAT... : the run failed (non-zero), said WHAT in its log, recorded
# FAILED in last-KIND.json, and status.json lists the failure.
expect_failed() {
    local kind=$1 rc=$2 log=$3 w
    shift 3
    ((rc != 0)) || fail "the $kind run exited 0"
    for w in "$@"; do grep -qF -- "$w" "$log" || { cat "$log" >&2; fail "the $kind run did not say '$w'"; }; done
    grep -q '"outcome":"FAILED"' "$STATE/last-$kind.json" || fail "last-$kind.json does not say FAILED"
    on_target status | grep -q "\"failures\":\[.*\"kind\":\"$kind\"" || fail "status.json does not list the $kind failure"
}

shows() { printf '%s\n' "SHOWS: $*"; }

# --- the cases -------------------------------------------------------------------------------

case_disk_full() {
    info "1. the target's disk fills during a full"
    snapshot >"$BASE/before"
    local rc=0 pid least free
    least=$(df -B1 --output=avail "$TARGET" | tail -n1)
    run_tool full >"$BASE/log" 2>&1 &
    pid=$!
    # The target's free space, sampled while the full streams in.
    while kill -0 "$pid" 2>/dev/null; do
        free=$(df -B1 --output=avail "$TARGET" | tail -n1)
        ((free < least)) && least=$free
        sleep 0.05
    done
    wait "$pid" || rc=$?
    expect_failed full "$rc" "$BASE/log" "refused after" "backup.target.minFreeMb (8 MB)" "not committed"
    expect_unchanged "$BASE/before" "the refused full"
    ((least >= 8 * 1048576)) || fail "the target's free space dropped to $least bytes, below the 8 MB reserve"
    shows "exit $rc; $(grep -oE 'ERROR: put .*refused after [0-9]+ MB' "$BASE/log" | head -n1)"
    shows "the least free space seen while it ran: $least bytes (reserve 8 MB = 8388608 bytes)"
    shows "status.json: $(on_target status | grep -oE '"failures":\[\{[^]]{0,150}')..."
    shows "nothing committed, the partial removed; the older backups, status.json's newest, the restore plan and the retention as before; verify passes"
    on_target report full OK >/dev/null
}

# kill_mid KIND GLOB : KIND runs, and mariadb-backup is killed once GLOB holds 20 MB on the target.
kill_mid() {
    local kind=$1 glob=$2 rc=0 pid victim
    snapshot >"$BASE/before"
    run_tool "$kind" >"$BASE/log" 2>&1 &
    pid=$!
    wait_partial "$glob" 20000000
    victim=$(named_below "$pid" mariadb-backup)
    [[ -n "$victim" ]] || fail "mariadb-backup had already finished: no fault injected (more data needed)"
    kill -9 "$victim"
    wait "$pid" || rc=$?
    expect_failed "$kind" "$rc" "$BASE/log" "not committed" "mariadb-backup exited 137"
    expect_unchanged "$BASE/before" "the killed $kind"
    shows "exit $rc; $(grep -oE 'pi-cluster-backup: ERROR: .*' "$BASE/log" | cut -c1-240)"
    shows "nothing committed, no partial left; status.json's newest, the restore plan and the retention as before; verify passes"
    rc=0
    run_tool "$kind" >"$BASE/log" 2>&1 || rc=$?
    ((rc == 0)) || { cat "$BASE/log" >&2; fail "the $kind after the killed one failed"; }
    shows "the next $kind succeeded: $(grep -oE "$kind backup .* done in [0-9]+ s" "$BASE/log")"
}

case_link_cut() {
    info "4. the link cut mid-shipping: the receiver's sshd session killed"
    snapshot >"$BASE/before"
    local rc=0 pid
    local -a session
    run_tool full >"$BASE/log" 2>&1 &
    pid=$!
    wait_partial 'full-*' 20000000
    # The per-connection sshd processes: the put's (status and series are done by now).
    mapfile -t session < <(ps -o pid= --ppid "$SSHD_PID" | tr -d ' ')
    ((${#session[@]})) || fail "no sshd session to cut"
    kill -9 "${session[@]}"
    wait "$pid" || rc=$?
    expect_failed full "$rc" "$BASE/log" "not committed" "put exited 255"
    expect_unchanged "$BASE/before" "the cut link"
    shows "exit $rc; $(grep -oE 'pi-cluster-backup: ERROR: .*' "$BASE/log" | cut -c1-240); the abort removed the partial"

    info "4b. the link cut and the target gone: even the abort does not arrive"
    rc=0
    run_tool full >"$BASE/log" 2>&1 &
    pid=$!
    wait_partial 'full-*' 20000000
    stop_sshd
    wait "$pid" || rc=$?
    ((rc != 0)) || fail "the full exited 0 with the target gone"
    grep -q "not committed" "$BASE/log" || { cat "$BASE/log" >&2; fail "the full did not say it was not committed"; }
    local partial
    partial=$(find "$TARGET" -maxdepth 1 -name '.full-*.partial' -printf '%f %s bytes\n')
    start_sshd
    snapshot >"$BASE/after"
    diff "$BASE/before" "$BASE/after" >&2 || fail "the cut link with the target gone changed what a restore, status.json or the retention see"
    shows "exit $rc; left on the target only the hidden $partial, which no restore, status or retention lists (prune deletes it after a day)"
    find "$TARGET" -maxdepth 1 -name '.full-*.partial' -delete
    rc=0
    run_tool full >"$BASE/log" 2>&1 || rc=$?
    ((rc == 0)) || { cat "$BASE/log" >&2; fail "the full after the cut link failed"; }
    shows "the next full succeeded: $(grep -oE "full backup .* done in [0-9]+ s" "$BASE/log")"
}

case_overwrite() {
    info "5. an existing backup put again with the DB Pi's key"
    local name ledger file rc=0
    name=$(committed_files | grep '^full-' | head -n1)
    ledger=$(sha256sum <"$TARGET/.ledger")
    file=$(sha256sum <"$TARGET/$name")
    head -c 100000 /dev/urandom | on_target put "$name" >"$BASE/log" 2>&1 || rc=$?
    ((rc != 0)) || fail "put of the existing $name was accepted"
    grep -q "never replaces one" "$BASE/log" || { cat "$BASE/log" >&2; fail "the refusal did not say why"; }
    on_target commit "$name" "$(printf '%064d' 0)" >>"$BASE/log" 2>&1 && fail "commit over the existing $name was accepted"
    on_target abort "$name" >>"$BASE/log" 2>&1 || true
    [[ "$(sha256sum <"$TARGET/.ledger")" == "$ledger" ]] || fail "the ledger changed"
    [[ "$(sha256sum <"$TARGET/$name")" == "$file" && -f "$TARGET/$name.sha256" ]] || fail "$name changed"
    BACKUP_ENV="$BASE/target.env" bash "$TOOL" verify 2>/dev/null || fail "verify failed after the refused overwrite"
    shows "put, commit and abort of $name: $(grep -oE 'ERROR: .*' "$BASE/log" | paste -sd'|')"
    shows "the file, the ledger and verify unchanged"
    on_target report full OK >/dev/null
}

case_tampered() {
    info "6. a committed file changed after its commit (and its .sha256 rewritten to match), another deleted"
    local changed gone rc=0
    changed=$(committed_files | grep '^binlog-' | head -n1)
    gone=$(committed_files | grep '^inc-' | head -n1)
    printf 'X' | dd of="$TARGET/$changed" bs=1 seek=100 conv=notrunc status=none
    (cd "$TARGET" && sha256sum "$changed" >"$changed.sha256")
    rm -f "$TARGET/$gone" "$TARGET/$gone.sha256"
    BACKUP_ENV="$BASE/target.env" bash "$TOOL" verify >"$BASE/log" 2>&1 || rc=$?
    ((rc != 0)) || fail "verify passed a changed file"
    grep -qF "$changed: sha256" "$BASE/log" || { cat "$BASE/log" >&2; fail "verify did not name $changed"; }
    grep -qF "$gone: committed, not pruned, and missing" "$BASE/log" || { cat "$BASE/log" >&2; fail "verify did not name the deleted $gone"; }
    on_target status | grep -qF "\"bad\":[\"$changed\"" || on_target status | grep -qF "\"$changed\"" || fail "status.json does not list $changed as bad"
    sed 's/^/  /' "$BASE/log"
    shows "verify exit $rc, naming both; status.json's verify lists them"
}

case_verify_race() {
    info "8. a backup committed while verify reads the files"
    local shim="$BASE/shim" added
    mkdir -p "$shim"
    insert 3
    committed_files >"$BASE/before-verify"
    # verify's first xargs (the sha256 of the files it listed) first ships the new binlog: a
    # commit between verify's listing and its reading of the ledger, every time.
    cat >"$shim/xargs" <<EOF
#!/usr/bin/env bash
if [[ ! -e "$shim/shipped" ]]; then
    touch "$shim/shipped"
    PATH="$PATH" BACKUP_ENV="$BASE/db.env" bash "$TOOL" ship-binlogs </dev/null >"$shim/log" 2>&1 || { cat "$shim/log" >&2; exit 99; }
fi
PATH="$PATH" exec xargs "\$@"
EOF
    chmod +x "$shim/xargs"
    PATH="$shim:$PATH" BACKUP_ENV="$BASE/target.env" bash "$TOOL" verify >"$BASE/log" 2>&1 || { cat "$BASE/log" >&2; fail "verify failed with a commit during its reading"; }
    added=$(committed_files | comm -13 "$BASE/before-verify" -)
    [[ -n "$added" ]] || { cat "$shim/log" >&2; fail "no backup was committed during verify: the case proves nothing"; }
    BACKUP_ENV="$BASE/target.env" bash "$TOOL" verify 2>/dev/null || fail "the next verify failed"
    shows "$added committed while verify read the files; verify passed, and passed again"
}

case_clock() {
    info "7. the clock behind the newest backup (a Pi with no RTC, booted before time sync)"
    local rc=0 ahead
    ahead=$(date -u -d '+1 day' +%Y%m%dT%H%M%SZ)
    cp "$STATE/newest" "$BASE/newest.real"
    echo "$ahead" >"$STATE/newest"
    run_tool ship-binlogs >"$BASE/log" 2>&1 || rc=$?
    expect_failed binlog "$rc" "$BASE/log" "before the newest backup ($ahead): refusing to name a backup in the past"
    cp "$BASE/newest.real" "$STATE/newest"
    shows "exit $rc; $(grep -oE 'pi-cluster-backup: ERROR: .*' "$BASE/log")"
}

main() {
    info "a throwaway MariaDB $(mariadbd --version | awk '{print $3}') on $PORT, the target a 96 MB tmpfs behind sshd on $SSH_PORT"
    new_db
    setup_target 96m
    age-keygen -o "$BASE/identity" 2>/dev/null
    cat >"$BASE/db.env" <<EOF
TARGET_HOST=127.0.0.1
TARGET_PORT=$SSH_PORT
TARGET_USER=root
AGE_RECIPIENT=$(age-keygen -y "$BASE/identity")
STATE_DIR=$STATE
DB_SOCKET=$DB_SOCKET
DATADIR=$DATADIR
WAIT_TARGET_SECONDS=1
EOF
    sql -e "CREATE DATABASE app; CREATE TABLE app.notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT) ENGINE=InnoDB"
    insert 20
    run_tool full 2>&1 | tail -n 1
    insert 20
    run_tool incremental 2>&1 | tail -n 1
    insert 20
    run_tool ship-binlogs 2>/dev/null
    committed_files

    info "bulk: 200,000 rows of 1 KB random data (as in the issue)"
    local t0=$SECONDS
    sql -e "CREATE TABLE app.bulk (id INT PRIMARY KEY, body VARBINARY(1024)) ENGINE=InnoDB"
    sql app -e "INSERT INTO bulk SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_200000"
    echo "$((SECONDS - t0)) s; data directory $(du -sm "$DATADIR" | cut -f1) MB"

    case_disk_full
    mount -o remount,size=2g "$TARGET"

    info "2. mariadb-backup killed mid-full"
    kill_mid full 'full-*'
    info "3. mariadb-backup killed mid-incremental (100,000 rows changed since the full)"
    sql -e "UPDATE app.bulk SET body = RANDOM_BYTES(1024) WHERE id <= 100000"
    kill_mid incremental 'inc-*'

    case_link_cut
    insert 5
    run_tool ship-binlogs 2>/dev/null
    case_overwrite
    case_verify_race
    case_clock
    case_tampered
    info "what the target holds beside the backups"
    find "$TARGET" -mindepth 1 -maxdepth 1 -not -name '*.age' -not -name '*.age.sha256' -printf '%f\n' | LC_ALL=C sort | paste -sd' '
    info "all fault cases passed"
}

main "$@"
