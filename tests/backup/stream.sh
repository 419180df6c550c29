#!/usr/bin/env bash
# The binlog stream for real, on this machine: a throwaway MariaDB primary with TLS and the
# binlog settings the stack renders, the stream's account with exactly the grant the
# database's stream-source step makes, and the real assets/backup/pi-cluster-binlog-stream.sh
# kept running by a loop that restarts it as systemd does (Restart=on-failure, RestartSec=2).
#   1. lag: WRITES acknowledged writes, each timed from its acknowledgement to the moment its
#      last byte is in the stream file; prints p50/p99/max and fails above 1 s;
#   2. the primary killed (-9) under a writer: the acknowledged writes the copy held at that
#      instant, then, once the primary is back and the stream resumed, every one of them,
#      exactly once, with no GTID missing or repeated;
#   3. the stream killed (-9) under a writer: it resumes without a gap or a duplicate;
#   4. a copy goes once its file is committed as an encrypted binlog backup;
#   5. the database's numbering reset (RESET MASTER, as a restore's new incarnation): the
#      stream stops and says why, and follows the new series into its own directory.
# What differs from a Pi: no systemd (the loop stands in), the target is a local directory.
# Usage: tests/backup/stream.sh [WRITES]   (needs mariadbd, mariadb-binlog, openssl, jq, node; run as root)
# Ports: 3430-3439 (the first free one). Exits non-zero on the first check that fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOL="$REPO/assets/backup/pi-cluster-binlog-stream.sh"
WRITES=${1:-300}
BASE=$(mktemp -d /tmp/pi-stream-test.XXXXXX)
free_port() {
    local p
    for ((p = 3430; p < 3440; p++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    echo "no free port in 3430-3439" >&2
    return 1
}
PORT=${TEST_STREAM_PORT:-$(free_port)}
DATADIR="$BASE/data"
SOCK="$BASE/mysqld.sock"
TARGET="$BASE/target"
PATH="$PATH:/usr/sbin:/sbin"
export BACKUP_ENV="$BASE/backup.env" STREAM_ENV="$BASE/stream.env"

info() { printf '\n== %s\n' "$*" >&2; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

SUPERVISOR=""
cleanup() {
    [[ -z "$SUPERVISOR" ]] || { touch "$BASE/stop"; kill_stream; kill "$SUPERVISOR" 2>/dev/null; wait "$SUPERVISOR" 2>/dev/null; } || true
    stop_db -9 || true
    [[ -n "${KEEP:-}" ]] || rm -rf "$BASE"
}
trap cleanup EXIT

start_db() {
    setsid mariadbd --no-defaults --user=root --datadir="$DATADIR" --socket="$SOCK" --pid-file="$BASE/mysqld.pid" \
        --log-error="$BASE/error.log" --port="$PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=32M \
        --log-bin="$DATADIR/mariadb-bin" --binlog-format=ROW --server-id=1 --gtid-strict-mode=ON --sync-binlog=1 \
        --ssl-ca="$BASE/ca.crt" --ssl-cert="$BASE/server.crt" --ssl-key="$BASE/server.key" \
        </dev/null >/dev/null 2>&1 &
    for _ in $(seq 1 120); do
        mariadb-admin --no-defaults --socket="$SOCK" -uroot ping >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    tail -n 20 "$BASE/error.log" >&2
    fail "mariadbd did not start"
}

# stop_db [-9] : stops the primary (killed outright with -9).
stop_db() {
    [[ -f "$BASE/mysqld.pid" ]] || return 0
    local pid
    pid=$(cat "$BASE/mysqld.pid")
    kill "${1:--TERM}" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$BASE/mysqld.pid"
}

sql() { mariadb --no-defaults --socket="$SOCK" -uroot -N -B "$@"; }

# The stream as the service runs it, in its own process group (systemd's cgroup), started
# again 2 s after it ends until $BASE/stop exists.
supervise() {
    while [[ ! -f "$BASE/stop" ]]; do
        setsid bash "$TOOL" run 2>>"$BASE/stream.log" &
        echo $! >"$BASE/stream.pid"
        wait $! || true
        sleep 2
    done
}

# kill_stream : kill -9 of the service's whole process group, as systemd does after its main process dies.
kill_stream() {
    local pid
    pid=$(cat "$BASE/stream.pid" 2>/dev/null) || return 0
    kill -9 -- "-$pid" 2>/dev/null || true
}

status_field() { jq -r ".$1" "$TARGET/.stream.json" 2>/dev/null; }

# wait_caught_up SECONDS : until the stream is up and its copy holds every byte of the primary's binlog.
wait_caught_up() {
    local deadline=$((SECONDS + $1)) at file pos
    while ((SECONDS < deadline)); do
        at=$(sql -e 'SHOW MASTER STATUS' | cut -f1,2)
        file=${at%%$'\t'*} pos=${at##*$'\t'}
        if [[ "$(status_field state)" == up && -f "$STREAM/$file" ]] && (($(stat -c %s "$STREAM/$file") >= pos)); then
            return 0
        fi
        sleep 0.2
    done
    cat "$TARGET/.stream.json" >&2 || true
    tail -n 20 "$BASE/stream.log" >&2
    fail "the stream did not catch up within $1 s"
}

# copies DIR : the copies in DIR in file-number order.
copies() { find "$1" -maxdepth 1 -type f -name 'mariadb-bin.[0-9]*' | sort -t. -k2,2n; }

decode() {
    local -a files
    mapfile -t files < <(copies "$1")
    ((${#files[@]})) || return 0
    mariadb-binlog --no-defaults -v --base64-output=decode-rows "${files[@]}" 2>/dev/null || true
}

# ids_in DIR : the id of every row inserted into app.t that the copies in DIR hold, in order.
ids_in() {
    decode "$1" | awk '/^### INSERT INTO `app`\.`t`$/ { want = 1; next } want && /^###   @1=/ { sub(/^###   @1=/, ""); print; want = 0 }'
}

# check_gtids DIR : every GTID the copies hold is the one after the last: none missing, none twice.
check_gtids() {
    decode "$1" | grep -oE 'GTID [0-9]+-[0-9]+-[0-9]+' | awk -F- '
        NR > 1 && $3 != last + 1 { printf "GTID sequence %d follows %d\n", $3, last; bad = 1 }
        { last = $3 } END { printf "%d GTIDs, contiguous\n", NR; exit bad }' || fail "the copies skip or repeat a transaction"
}

# check_acked FILE DIR : every id in FILE (acknowledged writes) is in DIR's copies exactly once.
check_acked() {
    local missing dups
    missing=$(comm -23 <(sort -u "$1") <(ids_in "$2" | sort -u) | wc -l)
    dups=$(ids_in "$2" | sort | uniq -d | wc -l)
    echo "$(wc -l <"$1") acknowledged, $missing missing, $dups written twice"
    ((missing == 0 && dups == 0)) || fail "acknowledged writes are missing from the stream or there twice"
}

# writer FIRST FILE : inserts ids FIRST, FIRST+1, ... in one client session, appending each
# acknowledged id to FILE, until a write fails or $BASE/stop-writer exists. A write is
# acknowledged when the answer to the SELECT after it arrives.
writer() {
    local i=$1 line
    coproc W { mariadb --no-defaults --socket="$SOCK" -uroot -N -B --unbuffered app 2>/dev/null; }
    while [[ ! -f "$BASE/stop-writer" ]]; do
        { printf 'INSERT INTO t (id, v) VALUES (%d, 1); SELECT %d;\n' "$i" "$i" >&"${W[1]}"; } 2>/dev/null || return 0
        read -r -t 10 line <&"${W[0]}" || return 0
        [[ "$line" == "$i" ]] || return 0
        echo "$i" >>"$2"
        i=$((i + 1))
    done
    eval "exec ${W[1]}>&-"
}

setup() {
    info "a throwaway MariaDB $(mariadbd --version | awk '{print $3}') with TLS and the binlog on, port $PORT"
    (
        cd "$BASE"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=db 2>/dev/null
        printf 'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext 2>/dev/null
        # A CA that did not sign the server's certificate: the stream must refuse it.
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other-ca.crt -days 2 -subj /CN=other 2>/dev/null
    )
    install -d -m 0700 "$DATADIR" "$TARGET" "$BASE/run"
    mariadb-install-db --no-defaults --datadir="$DATADIR" --user=root --auth-root-authentication-method=socket --skip-test-db >"$BASE/install.log" 2>&1
    start_db
    local password series
    password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    # The grant assets/scripts/db-stream-source.sh makes.
    sql -e "CREATE USER pi_binlog@'127.0.0.1' IDENTIFIED BY '$password' REQUIRE SSL; GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO pi_binlog@'127.0.0.1';
            CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
    (umask 077 && printf '[client]\npassword=%s\n' "$password" >"$BASE/client.cnf")
    series="s1x$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$series" >"$TARGET/.series"
    STREAM="$TARGET/stream/$series"
    printf 'BACKUP_DIR=%s\nRETENTION_DAYS=30\n' "$TARGET" >"$BACKUP_ENV"
    printf 'DB_HOST=127.0.0.1\nDB_PORT=%s\nDB_USER=pi_binlog\nDB_CA=%s\nDB_CLIENT_CNF=%s\nSERVER_ID=4026466425\nMAX_LAG_SECONDS=5\nSTALL_SECONDS=10\nRUN_DIR=%s\n' \
        "$PORT" "$BASE/ca.crt" "$BASE/client.cnf" "$BASE/run" >"$STREAM_ENV"

    info "the account: TLS required, the server's certificate checked, nothing but the binlog"
    local as=(mariadb --defaults-extra-file="$BASE/client.cnf" -N -B --host=127.0.0.1 --port="$PORT" --user=pi_binlog)
    "${as[@]}" --skip-ssl -e 'SELECT 1' 2>/dev/null && fail "the stream's account connected without TLS"
    "${as[@]}" --ssl-ca="$BASE/other-ca.crt" --ssl-verify-server-cert -e 'SELECT 1' 2>/dev/null && fail "a certificate from another CA was accepted"
    "${as[@]}" --ssl-ca="$BASE/ca.crt" --ssl-verify-server-cert -e 'SELECT COUNT(*) FROM app.t' 2>/dev/null && fail "the stream's account can read the app's data"
    "${as[@]}" --ssl-ca="$BASE/ca.crt" --ssl-verify-server-cert -e 'SHOW MASTER STATUS' >/dev/null || fail "the stream's account cannot read the binlog position"
    echo "refused without TLS, refused with another CA, refused the app's data; reads the binlog position"

    supervise &
    SUPERVISOR=$!
    wait_caught_up 20
    [[ "$(stat -c %a "$TARGET/.stream.json") $(stat -c %a "$(copies "$STREAM" | tail -n1)")" == "600 600" ]] || fail "the status or a copy is not 0600"
    cat "$TARGET/.stream.json"
}

# 1. From acknowledgement to the copy, per write: one client session (so no client start is
# timed), each INSERT followed by SHOW MASTER STATUS, whose answer is the acknowledgement
# (its time taken by bash itself, no fork); a watcher (node, on inotify) notes when each
# copy grows. A write has reached the stream when its copy holds the position after it.
measure_lag() {
    info "lag over $WRITES acknowledged writes (acknowledgement -> last byte in the stream file)"
    local i file pos
    # shellcheck disable=SC2016 # JavaScript, not shell
    node -e '
        const fs = require("fs");
        const [dir, stop] = process.argv.slice(1);
        const us = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
        const seen = new Map();
        const look = (name) => {
            let size;
            try { size = fs.statSync(`${dir}/${name}`).size; } catch { return; }
            if (seen.get(name) !== size) { seen.set(name, size); fs.writeSync(1, `${us()} ${name} ${size}\n`); }
        };
        for (const f of fs.readdirSync(dir)) look(f);
        fs.watch(dir, (_, name) => name && look(name));
        setInterval(() => fs.existsSync(stop) && process.exit(0), 100);
    ' "$STREAM" "$BASE/stop-watcher" >"$BASE/grown" &
    local watcher=$!
    sleep 0.5
    coproc DB { mariadb --no-defaults --socket="$SOCK" -uroot -N -B --unbuffered app; }
    for ((i = 1; i <= WRITES; i++)); do
        printf 'INSERT INTO t (id, v) VALUES (%d, 0); SHOW MASTER STATUS;\n' "$i" >&"${DB[1]}"
        read -r -t 10 file pos _ <&"${DB[0]}" || fail "no answer to write $i"
        printf '%s %s %s\n' "${EPOCHREALTIME/./}" "$file" "$pos" >>"$BASE/acked"
        # Writes a few milliseconds apart, as an app's are, not back to back.
        sleep "0.00$((RANDOM % 10))"
    done
    eval "exec ${DB[1]}>&-"
    wait "$DB_PID" 2>/dev/null || true
    sleep 1
    touch "$BASE/stop-watcher"
    wait "$watcher"
    # Per write: the first time its copy held its position, less the acknowledgement (at
    # least 0: it may be there before bash reads the answer).
    local -a sorted
    mapfile -t sorted < <(awk 'NR == FNR { t[NR] = $1; f[NR] = $2; s[NR] = $3; n = NR; next }
        { lag = -1; for (i = 1; i <= n; i++) if (f[i] == $2 && s[i] >= $3) { lag = t[i] - $1; break }
          if (lag < 0 && i > n) { print "never"; next } print (lag < 0 ? 0 : lag) }' "$BASE/grown" "$BASE/acked" | sort -n)
    [[ "${sorted[-1]}" != never ]] || fail "$(grep -c never <(printf '%s\n' "${sorted[@]}")) write(s) never reached the stream"
    local n=${#sorted[@]} p50 p99 max
    p50=${sorted[$((n / 2))]} p99=${sorted[$(((n * 99 + 99) / 100 - 1))]} max=${sorted[$((n - 1))]}
    printf 'stream lag over %d writes: p50 %d.%03d ms, p99 %d.%03d ms, max %d.%03d ms\n' "$n" $((p50 / 1000)) $((p50 % 1000)) $((p99 / 1000)) $((p99 % 1000)) $((max / 1000)) $((max % 1000))
    ((max < 1000000)) || fail "a write took $((max / 1000)) ms to reach the stream (bound: 1000 ms)"
    [[ "$(ids_in "$STREAM" | wc -l)" == "$WRITES" ]] || fail "the copy holds $(ids_in "$STREAM" | wc -l) of the $WRITES writes"
}

# 2. kill -9 of the primary under a writer.
primary_killed() {
    info "the primary killed (-9) under a writer"
    rm -f "$BASE/stop-writer"
    writer 100001 "$BASE/acked-kill" &
    local w=$!
    sleep 3
    stop_db -9
    cp -a "$STREAM" "$BASE/at-kill"
    wait "$w"
    local acked held
    acked=$(wc -l <"$BASE/acked-kill")
    held=$(comm -12 <(sort -u "$BASE/acked-kill") <(ids_in "$BASE/at-kill" | sort -u) | wc -l)
    echo "at the instant of the kill: $acked acknowledged, $held of them in the stream, $((acked - held)) only on the dead primary's disk"
    sleep 3
    [[ "$(status_field state)" == down ]] || fail "the status says '$(status_field state)' while the primary is dead"
    echo "status while it is dead: $(status_field message)"
    start_db
    wait_caught_up 30
    echo -n "after the primary came back and the stream resumed: "
    check_acked "$BASE/acked-kill" "$STREAM"
    check_gtids "$STREAM"
}

# 3. kill -9 of the stream under a writer.
stream_killed() {
    info "the stream killed (-9) under a writer"
    rm -f "$BASE/stop-writer"
    writer 200001 "$BASE/acked-stream" &
    local w=$!
    sleep 1.5
    kill_stream
    sleep 4
    touch "$BASE/stop-writer"
    wait "$w"
    wait_caught_up 30
    echo -n "after the stream restarted: "
    check_acked "$BASE/acked-stream" "$STREAM"
    check_gtids "$STREAM"
    grep -c 'streaming 127.0.0.1' "$BASE/stream.log" | sed 's/^/stream starts so far: /'
}

# 4. A committed binlog backup takes its copy's place.
tidy_committed() {
    info "a copy goes once its file is committed as an encrypted binlog backup"
    local first series
    first=$(basename "$(copies "$STREAM" | head -n1)")
    series=$(basename "$STREAM")
    # Committed as the receiver commits: the file, then its .sha256.
    : >"$TARGET/binlog-20260101T000000Z-0000-$series-$first.zst.age"
    bash "$TOOL" tidy
    [[ -e "$STREAM/$first" ]] || fail "$first went before its backup's commit was complete (no .sha256 yet)"
    : >"$TARGET/binlog-20260101T000000Z-0000-$series-$first.zst.age.sha256"
    bash "$TOOL" tidy
    [[ ! -e "$STREAM/$first" ]] || fail "$first is still there after its backup was committed"
    [[ -n "$(copies "$STREAM")" ]] || fail "tidy deleted copies that are not committed"
    echo "$first deleted, $(copies "$STREAM" | wc -l) newer copies kept"
    wait_caught_up 10
}

# 5. A new incarnation of the database: its numbering restarts.
new_incarnation() {
    info "the primary's binlog reset (a new incarnation): the stream waits for its series"
    sql -e 'RESET MASTER'
    sql app -e "INSERT INTO t (id, v) VALUES (300001, 2)"
    local deadline=$((SECONDS + 15))
    until [[ "$(status_field state)" == down && "$(status_field message)" == *"waiting for its new series"* ]]; do
        ((SECONDS < deadline)) || fail "the stream did not notice the reset: $(cat "$TARGET/.stream.json")"
        sleep 0.5
    done
    echo "status: $(status_field message)"
    local old=$STREAM series
    series="s1x$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$series" >"$TARGET/.series"
    STREAM="$TARGET/stream/$series"
    wait_caught_up 20
    [[ "$(ids_in "$STREAM")" == 300001 ]] || fail "the new series' copy holds '$(ids_in "$STREAM" | tr '\n' ' ')', expected only 300001"
    ! ids_in "$old" | grep -qx 300001 || fail "the new incarnation's write landed in the old series"
    echo "the new series streams into its own directory; the old one's copies are kept"
}

main() {
    setup
    measure_lag
    primary_killed
    stream_killed
    tidy_committed
    new_incarnation
    info "all stream checks passed"
}

main
