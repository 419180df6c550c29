#!/usr/bin/env bash
# Steps "drain" and "admit" of one web server, run on the load balancer. A web server is in
# nginx's round-robin through its own member file, MEMBERS_DIR/NODE.conf, which the site's
# upstream block includes.
#   drain  runs before anything on the web server restarts the app. It marks the server
#          `down`, reloads nginx and waits until the workers that held requests to it have
#          finished them. Then it starts a lease: if no admit follows within LEASE_SECONDS
#          (the release failed and was rolled back, or the `up` was interrupted), the lease
#          puts the server back as soon as its /health answers with the database reachable,
#          so a failed run never leaves a server out of the load balancer.
#   admit  runs once the app is healthy. It puts the server back (a cordoned one stays
#          `down`, in maintenance), reloads nginx, and waits until a request through the
#          load balancer is answered by that server: only then may the next server drain.
#   delete of admit (scale-in) takes the server out for good, and waits for its requests.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP           log prefix
#   MEMBERS_DIR    the member files' directory, which the site's upstream includes
#   LEASE_DIR      where a drain's lease runner goes (LEASE_DIR/lease-NODE.sh)
#   LEASE_UNIT_PREFIX  the lease's transient unit is this and NODE
#   ADMITTED_DIR   where admit records the rollout it admitted (ADMITTED_DIR/NODE.rollout)
#   MODE           drain or admit
#   NODE           the web server's name
#   SERVER         its address:port
#   HTTP_PORT      nginx's port on this Pi, for the probe through the load balancer
#   CORDONED       true when the server is in maintenance (kept out of the load balancer)
#   LEASE_SECONDS  how long a drain holds before the lease may put the server back
#   ROLLOUT        fingerprint of what the web server is to run and of its host key: a
#                  change re-runs this step, and admit records it, so a drain of a rollout
#                  that is already in service (a re-run) leaves the server serving
set -euo pipefail

# @vars

# @lib

readonly MEMBER="$MEMBERS_DIR/$NODE.conf"
readonly LEASE_UNIT="$LEASE_UNIT_PREFIX$NODE"
readonly RUNNER="$LEASE_DIR/lease-$NODE.sh"
readonly ADMITTED="$ADMITTED_DIR/$NODE.rollout"
# member_text up|down [WHY] : the member file's text, one line.
member_text() {
    if [[ "$1" == up ]]; then
        printf 'server %s max_fails=1 fail_timeout=10s; # %s\n' "$SERVER" "$NODE"
    else
        printf 'server %s down; # %s (%s)\n' "$SERVER" "$NODE" "$2"
    fi
}

# reload_nginx : checks the config, reloads, and waits for the requests the old workers held.
reload_nginx() {
    nginx -t -q || fatal "nginx -t rejected the config after changing $MEMBER"
    reload_nginx_settled
}

# served_by_lb : true once a request to /api/health through this nginx is answered by NODE.
served_by_lb() {
    local i body
    for ((i = 0; i < 80; i++)); do
        body=$(curl -s --max-time 2 "http://127.0.0.1:$HTTP_PORT/api/health" || true)
        [[ "$body" == *"\"node\":\"$NODE\""* ]] && return 0
        sleep 0.1
    done
    return 1
}

# lease_expire : what the lease runs. Puts a still-drained server back once it is healthy.
lease_expire() {
    local i
    for ((i = 0; i < 720; i++)); do
        if ! grep -q ' down; .*(drained)' "$MEMBER" 2>/dev/null; then
            info "lease of $NODE ended: it is not drained any more"
            return 0
        fi
        if curl -fsS --max-time 2 "http://$SERVER/health" 2>/dev/null | grep -q '"db":"up"'; then
            put_file "$(member_text up)" "$MEMBER" 0644 || true
            reload_nginx
            info "lease of $NODE ended: it is healthy, so it serves again"
            return 0
        fi
        sleep 5
    done
    fatal "lease of $NODE ended, but it was not healthy for an hour: it stays drained"
}

stop_lease() {
    systemctl stop "$LEASE_UNIT.timer" "$LEASE_UNIT.service" 2>/dev/null || true
    systemctl reset-failed "$LEASE_UNIT.timer" "$LEASE_UNIT.service" 2>/dev/null || true
    rm -f "$RUNNER"
}

start_lease() {
    install -d -m 0755 "$(dirname "$RUNNER")"
    {
        printf '#!/usr/bin/env bash\n# The drain lease of %s, written by pi-cluster (lb-member.sh).\nset -euo pipefail\n' "$NODE"
        declare -p STEP NODE SERVER MEMBER HTTP_PORT
        declare -f info fatal put_file member_text reload_nginx reload_nginx_settled lease_expire
        printf 'lease_expire\n'
    } >"$RUNNER.new"
    chmod 0700 "$RUNNER.new"
    mv -f "$RUNNER.new" "$RUNNER"
    systemd-run --quiet --unit "$LEASE_UNIT" --on-active="${LEASE_SECONDS}s" \
        --timer-property=AccuracySec=1s --description "pi-cluster: put $NODE back in the load balancer" \
        /bin/bash "$RUNNER"
    info "lease started: $NODE comes back on its own ${LEASE_SECONDS}s from now, once healthy, unless admitted first"
}

drain() {
    if [[ ! -f "$MEMBER" ]]; then
        info "$NODE is not in the load balancer yet"
        return 0
    fi
    if [[ "$(cat "$ADMITTED" 2>/dev/null)" == "$ROLLOUT" && "$CORDONED" != true ]]; then
        info "$NODE already serves rollout $ROLLOUT: nothing to drain for"
        return 0
    fi
    stop_lease
    local changed=0
    pending_begin "nginx-$NODE" && changed=1
    if grep -q ' down;' "$MEMBER"; then
        info "$NODE is already out of the load balancer"
    else
        put_file "$(member_text down drained)" "$MEMBER" 0644 && changed=1
    fi
    ((changed)) && reload_nginx
    pending_done "nginx-$NODE"
    info "$NODE drained: no new requests reach it, and the ones in flight have finished"
    [[ "$CORDONED" == true ]] || start_lease
}

admit() {
    stop_lease
    install -d -m 0755 "$MEMBERS_DIR"
    local changed=0
    pending_begin "nginx-$NODE" && changed=1
    if [[ "$CORDONED" == true ]]; then
        put_file "$(member_text down maintenance)" "$MEMBER" 0644 && changed=1
        ((changed)) && reload_nginx
        pending_done "nginx-$NODE"
        info "$NODE is cordoned: installed, and out of the load balancer"
        return 0
    fi
    put_file "$(member_text up)" "$MEMBER" 0644 && changed=1
    ((changed)) && reload_nginx
    pending_done "nginx-$NODE"
    served_by_lb || fatal "$NODE is in the upstream, but no request through the load balancer reached it; see /var/log/nginx/error.log on $(hostname)"
    install -d -m 0755 "$(dirname "$ADMITTED")"
    put_file "$ROLLOUT" "$ADMITTED" 0644 || true
    info "$NODE serves through the load balancer"
}

apply() {
    command -v nginx >/dev/null || fatal "nginx is missing: the nginx step installs it"
    info "$MODE $NODE (rollout $ROLLOUT)"
    case "$MODE" in
    drain) drain ;;
    admit) admit ;;
    *) fatal "MODE is '$MODE': expected drain or admit" ;;
    esac
}

delete() {
    stop_lease
    [[ "$MODE" == admit ]] || return 0
    rm -f "$ADMITTED"
    [[ -f "$MEMBER" ]] || return 0
    rm -f "$MEMBER"
    if systemctl is-active --quiet nginx; then reload_nginx; fi
    info "$NODE left the load balancer"
}

# verify: after its admit, the server is in the round-robin (or out, in maintenance, when
# cordoned) with the rollout it was admitted for. A drain's effect ends at its admit, so
# the drain step checks nothing of its own.
verify() {
    [[ "$MODE" == admit ]] || return 0
    if [[ "$CORDONED" == true ]]; then
        expect_file "$(member_text down maintenance)" "$MEMBER" 0644
        return 0
    fi
    expect_file "$(member_text up)" "$MEMBER" 0644
    [[ "$(cat "$ADMITTED" 2>/dev/null)" == "$ROLLOUT" ]] || drift "$ADMITTED: not rollout $ROLLOUT"
}

main "$@" </dev/null
