#!/usr/bin/env bash
# Helpers shared by every step script. The renderer inlines this file at the lib marker
# line, so each script sent to a Pi is self-contained.
# Reads:
#   STEP              the step's name, used as the log prefix
# and, set in every rendered script from components/constants.ts (LIB_VARS in
# components/render/shell.ts):
#   PENDING_DIR       where restarts a killed step still owes are recorded
#   TLS_RENEW_SCRIPT  the installed tls-renew.sh the renewal timer runs
#   TLS_RENEW_UNIT    the renewal's service and timer, without their suffix

info() { printf '[%s] %s\n' "${STEP:-pi-cluster}" "$*"; }
fatal() {
    printf '[%s] ERROR: %s\n' "${STEP:-pi-cluster}" "$*" >&2
    exit 1
}

# put_file TEXT DEST MODE [OWNER:GROUP]
# Installs DEST with TEXT, byte for byte, when its content, mode or owner differs. The new text
# is written beside DEST and renamed over it, so DEST is never half-written, whenever
# the step is killed.
# Returns 0 when it changed DEST and 1 when DEST was already right.
put_file() {
    local data="$1" dest="$2" mode="$3" owner="${4:-root:root}" tmp
    tmp=$(mktemp)
    printf '%s' "$data" >"$tmp"
    if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest" && [[ "$(stat -c '%a %U:%G' "$dest")" == "${mode#0} $owner" ]]; then
        rm -f "$tmp"
        return 1
    fi
    install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest.pi-cluster-new"
    mv -f "$dest.pi-cluster-new" "$dest"
    rm -f "$tmp"
    info "updated $dest"
}

# Restarts and reloads are owed from the moment a step starts changing what a service
# reads until the service has taken it in. The debt is a file, written before the first
# change, so a step killed in between (SSH drop, Ctrl-C, timeout) pays it on its next run
# instead of seeing "nothing changed" and skipping the restart. The debts live in PENDING_DIR.

# pending_begin NAME : records that NAME's restart may be owed. Returns 0 when a previous
# run left it owed (so the caller restarts whatever it finds), 1 otherwise.
pending_begin() {
    local mark="$PENDING_DIR/$1"
    install -d -m 0700 "$PENDING_DIR"
    if [[ -e "$mark" ]]; then
        info "an earlier run stopped before applying $1: applying it now"
        return 0
    fi
    : >"$mark"
    sync "$PENDING_DIR"
    return 1
}

# pending_done NAME : the service has taken in every change.
pending_done() { rm -f "$PENDING_DIR/$1"; }

# hold_point NAME : a fault-injection point for the tests. When the file
# /run/pi-cluster/hold/$STEP.NAME exists, the step says so (NAME.reached) and waits until
# the file is removed (at most 2 minutes); otherwise it does nothing.
hold_point() {
    local hold="/run/pi-cluster/hold/${STEP}.$1" i
    [[ -e "$hold" ]] || return 0
    : >"$hold.reached"
    info "held at $1 (remove $hold to go on)"
    for ((i = 0; i < 600; i++)); do
        [[ -e "$hold" ]] || return 0
        sleep 0.2
    done
}

# verify_unit FILE : systemd-analyze verify, failing also on what it only warns about: an
# unknown key or a bad value in FILE, which systemd would skip when it runs the unit.
verify_unit() {
    local out
    out=$(systemd-analyze verify "$1" 2>&1) || fatal "systemd-analyze verify rejected $1: $out"
    if grep -F "$1:" <<<"$out" >&2; then
        fatal "systemd-analyze verify warns about $1 (above): systemd would run it without those lines"
    fi
}

# remove_paths PATH... : deletes what exists, says what it removed.
remove_paths() {
    local p
    for p in "$@"; do
        if [[ -e "$p" || -L "$p" ]]; then
            rm -rf -- "$p"
            info "removed $p"
        fi
    done
}

is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# apt_install PKG... : installs the packages that are missing, and nothing else.
apt_install() {
    local missing=() p
    for p in "$@"; do
        is_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # Package lists older than an hour are refreshed; a fresh Pi has none at all.
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 -print -quit)" ]]; then
        info "refreshing package lists"
        apt-get -q -o DPkg::Lock::Timeout=600 update >/dev/null || fatal "apt-get update failed: check the Pi's network and /etc/apt/sources.list*"
    fi
    info "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        install --no-install-recommends "${missing[@]}" >/dev/null ||
        fatal "apt-get install ${missing[*]} failed: run it by hand on $(hostname) to see why"
}

# apt_purge PKG... : removes the packages that are installed.
apt_purge() {
    local present=() p
    for p in "$@"; do
        if is_installed "$p"; then present+=("$p"); fi
    done
    ((${#present[@]})) || return 0
    info "removing ${present[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 remove "${present[@]}" >/dev/null
}

# purge_service_package UNIT PACKAGE : stops and disables UNIT, then purges PACKAGE with its
# configuration files and what it alone pulled in, so nothing of it is left.
purge_service_package() {
    systemctl disable --now --quiet "$1" 2>/dev/null || true
    is_installed "$2" || return 0
    DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 purge --autoremove "$2" >/dev/null
    info "purged $2"
}

# wait_http_ok URL UNIT SECONDS : URL answers with a 2xx within SECONDS of UNIT's (re)start, or
# the step fails pointing at UNIT's journal (at once when UNIT has failed).
wait_http_ok() {
    local url="$1" unit="$2" i
    for ((i = 0; i < $3 * 5; i++)); do
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        systemctl is-failed --quiet "$unit" && break
        sleep 0.2
    done
    fatal "$unit does not answer $url: journalctl -u $unit on $(hostname) says why"
}

# wait_config_loaded METRICS_URL UNIT GAUGE : the server's own GAUGE (on its /metrics) reads 1
# within 10 s: it took its config in (a reload that fails keeps the old config running).
wait_config_loaded() {
    local i
    for ((i = 0; i < 50; i++)); do
        curl -fsS --max-time 2 "$1" 2>/dev/null | grep -qx "$3 1" && return 0
        sleep 0.2
    done
    fatal "$2 did not load its config ($3 is not 1): journalctl -u $2 on $(hostname) says why"
}

# settle_service UNIT RESTART RELOAD : restarts UNIT when RESTART is 1 or it is not running,
# else reloads it when RELOAD is 1; either way it starts at boot.
settle_service() {
    if (($2)) || ! systemctl is-active --quiet "$1"; then
        systemctl restart "$1"
        info "restarted $1"
    elif (($3)); then
        systemctl reload "$1"
        info "reloaded $1"
    fi
    systemctl is-enabled --quiet "$1" 2>/dev/null || systemctl enable --quiet "$1"
}

# unpack_release TARBALL DIR : unpacks TARBALL into DIR/releases/<sha> once, points
# DIR/current at it atomically and keeps it and the release it replaced.
# Returns 0 when current moved and 1 when it already pointed there.
unpack_release() {
    local tarball="$1" dir="$2" sha target
    [[ -f "$tarball" ]] || fatal "artifact $tarball is missing: the copy step did not run"
    sha=$(sha256sum "$tarball" | cut -c1-16)
    target="$dir/releases/$sha"
    if [[ ! -d "$target" ]]; then
        rm -rf "$target.partial"
        mkdir -p "$target.partial"
        tar -xzf "$tarball" -C "$target.partial" --no-same-owner
        mv "$target.partial" "$target"
    fi
    if [[ "$(readlink "$dir/current" 2>/dev/null)" == "$target" ]]; then
        return 1
    fi
    local previous
    previous=$(readlink "$dir/current" 2>/dev/null || true)
    ln -sfn "$target" "$dir/current.new"
    mv -T "$dir/current.new" "$dir/current"
    info "switched $dir/current to release $sha"
    # Keep the new release and the one it replaced (a rollback needs it); drop the rest.
    find "$dir/releases" -mindepth 1 -maxdepth 1 -type d ! -path "$target" ! -path "${previous:-/nonexistent}" -exec rm -rf -- {} +
}

# prune_uploads ARTIFACT : deletes older uploads of the same kind (same name up to the
# last "-"), keeping ARTIFACT so the step can run again.
prune_uploads() {
    local artifact="$1" dir kind
    dir=$(dirname "$artifact")
    kind=$(basename "$artifact")
    kind=${kind%-*}
    find "$dir" -maxdepth 1 -type f -name "$kind-*" ! -path "$artifact" -delete
}

# reload_nginx_settled : reloads nginx, then waits (at most 30 s) until every worker that
# ran before the reload has exited: those are the ones that may still hold requests to a
# server just taken out. In-flight API requests end within nginx's proxy_read_timeout.
reload_nginx_settled() {
    local master old pid deadline
    master=$(cat /run/nginx.pid 2>/dev/null || true)
    old=$([[ -n "$master" ]] && pgrep -P "$master" || true)
    systemctl reload nginx
    deadline=$((SECONDS + 30))
    for pid in $old; do
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                info "nginx workers still finishing requests after 30s; going on"
                return 0
            fi
            sleep 0.1
        done
    done
}

# app_healthy PORT : true when the app on this Pi answers /health with 200 and reaches its
# database. Uses node (every web server has it) so that no HTTP client is assumed.
app_healthy() {
    node -e '
        const http = require("http");
        const req = http.get({ host: "127.0.0.1", port: Number(process.argv[1]), path: "/health", timeout: 2000 }, (res) => {
            let b = ""; res.on("data", (c) => (b += c));
            res.on("end", () => {
                let db = "";
                try { db = JSON.parse(b).db; } catch { /* not JSON: unhealthy */ }
                process.exit(res.statusCode === 200 && db === "up" ? 0 : 1);
            });
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", () => process.exit(1));' "$1" 2>/dev/null
}

# wait_app_healthy PORT SECONDS : waits until app_healthy; returns 1 when SECONDS pass first.
wait_app_healthy() {
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        if app_healthy "$1"; then
            info "healthy: /health answers 200 and the database is reachable"
            return 0
        fi
        sleep 1
    done
    return 1
}

# mariadb_sql ARGS... : the mariadb client as root over the unix socket, tab-separated, no headers.
mariadb_sql() { mariadb --protocol=socket -N -B "$@"; }

# sql_quote TEXT : a SQL string literal.
sql_quote() {
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\'\'}"
}

# An account that may do one thing from one address (a replica's replication, the backup
# target's binlog stream): its password, TLS required, exactly PRIVILEGES on *.*.
only_grant() { printf 'GRANT %s ON *.* TO `%s`@`%s` REQUIRE SSL' "$3" "$1" "$2"; }

# grants_of USER HOST : the account's grants without its password hash; nothing when it is missing.
grants_of() {
    mariadb_sql -e "SHOW GRANTS FOR $(sql_quote "$1")@$(sql_quote "$2")" 2>/dev/null | sed -e "s/ IDENTIFIED BY PASSWORD '[^']*'//" || true
}

# grant_only USER HOST PASSWORD PRIVILEGES : makes the account so, whatever it had (the
# password goes to MariaDB on stdin).
grant_only() {
    local q stmts
    q="$(sql_quote "$1")@$(sql_quote "$2")"
    stmts="CREATE USER IF NOT EXISTS $q IDENTIFIED BY $(sql_quote "$3") REQUIRE SSL;
ALTER USER $q IDENTIFIED BY $(sql_quote "$3") REQUIRE SSL;"
    if [[ "$(grants_of "$1" "$2")" != "$(only_grant "$1" "$2" "$4")" ]]; then
        stmts+="
REVOKE ALL PRIVILEGES, GRANT OPTION FROM $q;
GRANT $4 ON *.* TO $q;"
        info "$1@$2: granted $4 and nothing else"
    fi
    mariadb_sql <<<"$stmts"
}

# expect_grant USER HOST PASSWORD PRIVILEGES : verify's side of grant_only.
expect_grant() {
    local grants
    grants=$(grants_of "$1" "$2")
    if [[ -z "$grants" ]]; then
        drift "user $1@$2: missing"
        return 0
    fi
    [[ "$grants" == "$(only_grant "$1" "$2" "$4")" ]] || drift "user $1@$2: grants are '${grants//$'\n'/; }', expected $4 only, TLS required"
    [[ "$(mariadb_sql <<<"SELECT authentication_string = PASSWORD($(sql_quote "$3")) FROM mysql.user WHERE User = $(sql_quote "$1") AND Host = $(sql_quote "$2");")" == 1 ]] ||
        drift "user $1@$2: its password is not the stack's"
}

# --- A cluster CA per Pi (load balancer, database), made with openssl where it is used.
# Its key is made on the Pi and never leaves it: the stack only ever sees certificates.
# Certificates are ECDSA P-256: every TLS 1.2 and 1.3 client takes them, and a Pi signs
# them in milliseconds.

# tls_openssl_conf FILE EXT... : an openssl config with one section [ext] of the given lines.
tls_openssl_conf() {
    local file="$1"
    shift
    {
        printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\n'
        printf '%s\n' "$@"
    } >"$file"
}

# tls_make_ca DIR NAME : DIR/ca.key (0600 root) and the self-signed DIR/ca.crt, 20 years,
# made once. Returns 0 when it made them, 1 when they were there.
tls_make_ca() {
    local dir="$1" name="$2" conf
    install -d -m 0755 "$dir"
    [[ -s "$dir/ca.key" && -s "$dir/ca.crt" ]] && return 1
    conf=$(mktemp)
    tls_openssl_conf "$conf" "basicConstraints = critical, CA:TRUE, pathlen:0" "keyUsage = critical, keyCertSign, cRLSign" \
        "subjectKeyIdentifier = hash"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key.new")
    openssl req -x509 -new -config "$conf" -extensions ext -key "$dir/ca.key.new" -sha256 -days 7300 \
        -subj "/CN=$name" -out "$dir/ca.crt.new"
    rm -f "$conf"
    chmod 0644 "$dir/ca.crt.new"
    mv -f "$dir/ca.key.new" "$dir/ca.key"
    mv -f "$dir/ca.crt.new" "$dir/ca.crt"
    info "made the cluster CA \"$name\" in $dir (its key stays on this Pi)"
}

# tls_server_cert_ok DIR NAME ADDRESS RENEW_DAYS : true when DIR/server.crt is signed by
# DIR/ca.crt, matches DIR/server.key, names exactly NAME and ADDRESS, and is valid for more
# than RENEW_DAYS.
tls_server_cert_ok() {
    local dir="$1" name="$2" address="$3" days="$4"
    [[ -s "$dir/server.crt" && -s "$dir/server.key" ]] || return 1
    openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1 || return 1
    openssl x509 -checkend $((days * 86400)) -noout -in "$dir/server.crt" >/dev/null || return 1
    [[ "$(openssl x509 -noout -ext subjectAltName -in "$dir/server.crt" | tail -n +2 | tr -d ' ')" == "DNS:$name,IPAddress:$address" ]] || return 1
    [[ "$(openssl x509 -noout -pubkey -in "$dir/server.crt")" == "$(openssl pkey -pubout -in "$dir/server.key")" ]]
}

# tls_server_cert DIR NAME ADDRESS DAYS RENEW_DAYS [OWNER:GROUP] : DIR/server.key (0600,
# OWNER) and DIR/server.crt for NAME and ADDRESS (both in subjectAltName: clients check
# the address they dial), signed by DIR's CA for DAYS days. Issued again only when
# tls_server_cert_ok fails. Returns 0 when it issued one, 1 when the old one holds.
tls_server_cert() {
    local dir="$1" name="$2" address="$3" days="$4" renew="$5" owner="${6:-root:root}" conf
    tls_server_cert_ok "$dir" "$name" "$address" "$renew" && return 1
    conf=$(mktemp)
    tls_openssl_conf "$conf" "basicConstraints = critical, CA:FALSE" "keyUsage = critical, digitalSignature" \
        "extendedKeyUsage = serverAuth" "subjectAltName = DNS:$name, IP:$address" \
        "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key.new")
    openssl req -new -config "$conf" -key "$dir/server.key.new" -subj "/CN=$name" |
        openssl x509 -req -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
            -sha256 -days "$days" -extfile "$conf" -extensions ext -out "$dir/server.crt.new" 2>/dev/null
    rm -f "$conf"
    chown "$owner" "$dir/server.key.new"
    chmod 0644 "$dir/server.crt.new"
    mv -f "$dir/server.key.new" "$dir/server.key"
    mv -f "$dir/server.crt.new" "$dir/server.crt"
    info "issued a server certificate for $name ($address), valid until $(tls_not_after "$dir/server.crt")"
}

# tls_not_after CERT : the certificate's expiry in ISO 8601 UTC, such as 2027-11-27T09:00:00Z.
tls_not_after() {
    local end
    # Explicit: callers run this inside "$(...)", where errexit does not hold.
    end=$(openssl x509 -enddate -noout -in "$1") || return 1
    date -u -d "${end#notAfter=}" +%Y-%m-%dT%H:%M:%SZ
}

# tls_write_status CERT FILE : FILE (0644, served as /tls.json) says when CERT expires.
# Returns 0 when it changed FILE.
tls_write_status() {
    # Each value is taken on its own line: a failure inside "$(...)" in a command's
    # arguments would not stop the script.
    local expiry
    expiry=$(tls_not_after "$1")
    put_file "{\"certificateExpiry\":\"$expiry\"}"$'\n' "$2" 0644
}

# json_text FILE : the file's text as a JSON string. For PEM, whose only characters that
# JSON escapes are line ends.
json_text() {
    awk 'BEGIN { ORS = ""; print "\"" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); print $0 "\\n" } END { print "\"" }' "$1"
}

# tls_step_output CA_CERT SERVER_CERT : the one line a TLS step prints on stdout, which the
# stack reads into outputs: {"caCertificate":"<PEM>","certificateExpiry":"<ISO 8601>"}. The
# same files give the same line, so a run that changes nothing changes no output.
tls_step_output() {
    local ca expiry
    ca=$(json_text "$1")
    expiry=$(tls_not_after "$2")
    printf '{"caCertificate":%s,"certificateExpiry":"%s"}\n' "$ca" "$expiry"
}

# tls_install_renewal RENEW_TEXT SERVICE_TEXT TIMER_TEXT : the renewal script and its daily
# timer (TLS_RENEW_* in components/render/tls.ts), enabled.
tls_install_renewal() {
    local changed=0
    put_file "$1" "$TLS_RENEW_SCRIPT" 0700 && changed=1
    put_file "$2" "/etc/systemd/system/$TLS_RENEW_UNIT.service" 0644 && changed=1
    put_file "$3" "/etc/systemd/system/$TLS_RENEW_UNIT.timer" 0644 && changed=1
    if ((changed)); then
        verify_unit "/etc/systemd/system/$TLS_RENEW_UNIT.service"
        verify_unit "/etc/systemd/system/$TLS_RENEW_UNIT.timer"
        systemctl daemon-reload
    fi
    systemctl is-enabled --quiet "$TLS_RENEW_UNIT.timer" || systemctl enable --quiet "$TLS_RENEW_UNIT.timer"
    systemctl is-active --quiet "$TLS_RENEW_UNIT.timer" || systemctl start "$TLS_RENEW_UNIT.timer"
}

# tls_generated STEP_FD RENEW_TEXT SERVICE_TEXT TIMER_TEXT TLS_DIR : the generated-certificate
# step of a Pi. The renewal script makes the CA and the certificate: the code the daily
# timer runs is the code this step runs. Then the step's JSON line goes to fd STEP_FD.
tls_generated() {
    tls_install_renewal "$2" "$3" "$4"
    bash "$TLS_RENEW_SCRIPT" apply
    tls_step_output "$5/ca.crt" "$5/server.crt" >&"$1"
}

# tls_expect_generated RENEW_TEXT SERVICE_TEXT TIMER_TEXT : verify of a generated-certificate
# step: the renewal script, unit and timer as rendered, the timer running, and the rendered
# renewal script's own verify (the CA and the certificate).
tls_expect_generated() {
    local status=0
    expect_file "$1" "$TLS_RENEW_SCRIPT" 0700
    expect_file "$2" "/etc/systemd/system/$TLS_RENEW_UNIT.service" 0644
    expect_file "$3" "/etc/systemd/system/$TLS_RENEW_UNIT.timer" 0644
    expect_service "$TLS_RENEW_UNIT.timer"
    bash -s -- verify <<<"$1" || status=$?
    ((status == 0)) || DRIFTS=$((DRIFTS + 1))
}

# tls_remove_renewal : the timer, its unit and script gone.
tls_remove_renewal() {
    systemctl disable --now --quiet "$TLS_RENEW_UNIT.timer" 2>/dev/null || true
    remove_paths "/etc/systemd/system/$TLS_RENEW_UNIT.timer" "/etc/systemd/system/$TLS_RENEW_UNIT.service" \
        "$TLS_RENEW_SCRIPT"
    systemctl daemon-reload
}

# Drift checks, for the "verify" action (scripts/verify.sh). Each compares one thing the
# step manages with what the step was rendered to install, changes nothing, and prints one
# "DRIFT" line for each difference. Secrets (0600 files) are compared, never printed.
DRIFTS=0
drift() {
    printf 'DRIFT %s\n' "$*"
    DRIFTS=$((DRIFTS + 1))
}

# expect_file TEXT DEST MODE [OWNER:GROUP] : DEST holds TEXT, with that mode and owner. The
# diff of a changed file is shown only when the file is world-readable: the others hold secrets.
expect_file() {
    local data="$1" dest="$2" mode="$3" owner="${4:-root:root}" have
    if [[ ! -f "$dest" ]]; then
        drift "$dest: missing"
        return 0
    fi
    if ! cmp -s <(printf '%s' "$data") "$dest"; then
        drift "$dest: content differs from the rendered file"
        if (((8#${mode#0} & 4) != 0)); then
            diff -u --label "rendered" --label "$dest" <(printf '%s' "$data") "$dest" | head -n 40 | sed 's/^/    /' || true
        fi
    fi
    have=$(stat -c '%a %U:%G' "$dest")
    [[ "$have" == "${mode#0} $owner" ]] || drift "$dest: mode and owner are $have, expected ${mode#0} $owner"
}

# expect_packages PKG... : each is installed.
expect_packages() {
    local p
    for p in "$@"; do
        is_installed "$p" || drift "package $p: not installed"
    done
}

# expect_service UNIT : active (a oneshot that stays: active too) and enabled at boot.
expect_service() {
    local state
    state=$(systemctl is-active "$1" 2>/dev/null || true)
    [[ "$state" == active ]] || drift "service $1: ${state:-unknown}, expected active"
    state=$(systemctl is-enabled "$1" 2>/dev/null || true)
    [[ "$state" == enabled ]] || drift "service $1: ${state:-not installed} at boot, expected enabled"
}

# expect_release TARBALL DIR : DIR/current is TARBALL's release, unpacked (see unpack_release).
expect_release() {
    local tarball="$1" dir="$2" sha
    if [[ ! -f "$tarball" ]]; then
        drift "$tarball: missing (the upload is gone)"
        return 0
    fi
    sha=$(sha256sum "$tarball" | cut -c1-16)
    [[ "$(readlink "$dir/current" 2>/dev/null)" == "$dir/releases/$sha" ]] ||
        drift "$dir/current: points at '$(readlink "$dir/current" 2>/dev/null)', expected $dir/releases/$sha"
    [[ -d "$dir/releases/$sha" ]] || drift "$dir/releases/$sha: missing"
}

# main ACTION : every step script defines apply, delete and verify. Pulumi runs "apply" on
# create and update, and "delete" on delete; scripts/verify.sh runs "verify", which only
# reads, and exits 3 when anything drifted.
main() {
    case "${1:-apply}" in
    apply) apply ;;
    delete) delete ;;
    verify)
        verify
        if ((DRIFTS)); then
            info "$DRIFTS difference(s) from the desired state"
            exit 3
        fi
        info "as desired"
        ;;
    *) fatal "unknown action '${1}': expected apply, delete or verify" ;;
    esac
}
