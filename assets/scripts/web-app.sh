#!/usr/bin/env bash
# Step "app": unpacks an app release, installs its settings (env file) and PM2 ecosystem, then (re)starts the app and waits until it is healthy. The load
# balancer has drained this server before the step runs (the drain step) and admits it
# again after (the admit step), so the restart is never seen by a client.
#
# A release that is not healthy within HEALTH_TIMEOUT seconds is rolled back: the previous
# release, env file and ecosystem come back, the app restarts on them, and the step fails
# naming this server with the tail of the app's log. The next web server is not touched.
# Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   NODE            this web server's name, for messages
#   ARTIFACT        uploaded tarball of the built app (dist/, package.json, node_modules/)
#   APP_DIR         install directory (current -> releases/<sha>)
#   APP_USER        the user PM2 runs as
#   APP_HOME        its home (PM2_HOME is APP_HOME/.pm2, with the app's logs)
#   APP_NAME        the app's name in PM2, which names its logs
#   APP_SERVICE     the app's systemd unit (PM2 under systemd)
#   SAVED_DIR       where the rollback point is kept (the release, env file and ecosystem before)
#   ENV_FILE        path of the settings env file;  ENV_TEXT its content
#   SECRETS_DIGEST  digest of the secrets the app-secrets step installs: a new one re-runs
#                   this step, which restarts the app (that step left the restart owed)
#   ECOSYSTEM_FILE  path of the ecosystem; ECOSYSTEM_TEXT its content
#   DB_CA_FILE      the database's CA, which the app checks MariaDB's certificate against;
#                   DB_CA_TEXT its content (public)
#   PORT            the app's port, for the health check
#   HEALTH_TIMEOUT  seconds a started app has to answer /health with the database reachable
set -euo pipefail

# @vars

# @lib


app_log_tail() {
    local f
    # PM2 names them <app>-error-<instance>.log and <app>-out-<instance>.log.
    for f in "$APP_HOME/.pm2/logs/$APP_NAME"-error*.log "$APP_HOME/.pm2/logs/$APP_NAME"-out*.log; do
        [[ -f "$f" ]] && { echo "--- tail of $f"; tail -n 15 "$f"; }
    done
    echo "--- journalctl -u $APP_SERVICE"
    journalctl -u "$APP_SERVICE" -n 10 --no-pager 2>/dev/null || true
}

# stage_previous : copies what runs now (release, env file, ecosystem) aside; keep_previous
# makes that the rollback point once this run has changed something.
stage_previous() {
    rm -rf "$SAVED_DIR.new"
    install -d -m 0700 "$SAVED_DIR.new"
    readlink "$APP_DIR/current" >"$SAVED_DIR.new/release" 2>/dev/null || true
    [[ -f "$ENV_FILE" ]] && cp -p "$ENV_FILE" "$SAVED_DIR.new/env"
    [[ -f "$ECOSYSTEM_FILE" ]] && cp -p "$ECOSYSTEM_FILE" "$SAVED_DIR.new/ecosystem"
    return 0
}

keep_previous() {
    rm -rf "$SAVED_DIR"
    mv "$SAVED_DIR.new" "$SAVED_DIR"
}

# rollback : puts the saved release and files back and restarts on them.
# Returns 1 when there is nothing to go back to, or when that is not healthy either.
rollback() {
    local release
    release=$(cat "$SAVED_DIR/release" 2>/dev/null || true)
    [[ -n "$release" && -d "$release" && -f "$SAVED_DIR/env" ]] || return 1
    ln -sfn "$release" "$APP_DIR/current.new"
    mv -T "$APP_DIR/current.new" "$APP_DIR/current"
    cp -p "$SAVED_DIR/env" "$ENV_FILE"
    [[ -f "$SAVED_DIR/ecosystem" ]] && cp -p "$SAVED_DIR/ecosystem" "$ECOSYSTEM_FILE"
    info "rolling back to release $(basename "$release")"
    systemctl restart "$APP_SERVICE"
    wait_app_healthy "$PORT" "$HEALTH_TIMEOUT"
}

apply() {
    local changed=0 resumed=0 log
    # Only a change of SECRETS_DIGEST matters: it makes the engine run this step.
    : "$SECRETS_DIGEST"
    pending_begin app-restart && changed=1 resumed=1
    stage_previous
    unpack_release "$ARTIFACT" "$APP_DIR" && changed=1
    prune_uploads "$ARTIFACT"
    put_file "$ENV_TEXT" "$ENV_FILE" 0640 "root:$APP_USER" && changed=1
    put_file "$ECOSYSTEM_TEXT" "$ECOSYSTEM_FILE" 0644 && changed=1
    put_file "$DB_CA_TEXT" "$DB_CA_FILE" 0644 && changed=1
    # The rollback point is what ran before this change; a run that resumes one stopped
    # half-way keeps the point that run saved.
    if ((changed && !resumed)); then keep_previous; else rm -rf "$SAVED_DIR.new"; fi
    hold_point written
    systemctl is-enabled --quiet "$APP_SERVICE" || systemctl enable --quiet "$APP_SERVICE"
    if ! systemctl is-active --quiet "$APP_SERVICE"; then
        systemctl start "$APP_SERVICE"
        info "app started"
    elif ((changed)); then
        # The server is drained: a restart (a new PM2 daemon environment, the new env file)
        # costs no request, where a reload of one instance is a restart anyway.
        systemctl restart "$APP_SERVICE"
        info "app restarted"
    else
        info "app unchanged"
    fi
    if wait_app_healthy "$PORT" "$HEALTH_TIMEOUT"; then
        pending_done app-restart
        return 0
    fi
    log=$(app_log_tail 2>&1)
    if ((changed)) && rollback; then
        pending_done app-restart
        fatal "$NODE: the new release did not answer /health with the database reachable within ${HEALTH_TIMEOUT}s; rolled back to the previous release, which is healthy. The rollout stops here; servers after $NODE keep the old release.
$log"
    fi
    fatal "$NODE: the app is not healthy within ${HEALTH_TIMEOUT}s and there is no healthy release to roll back to; see $APP_DIR/current.
$log"
}

delete() {
    systemctl disable --now --quiet "$APP_SERVICE" 2>/dev/null || true
    remove_paths "$ENV_FILE" "$ECOSYSTEM_FILE" "$DB_CA_FILE" "$APP_DIR" "$SAVED_DIR" "$SAVED_DIR.new"
}

# verify: the release shipped, its settings and ecosystem as
# rendered, the service running and enabled, and the app healthy with its database.
verify() {
    expect_release "$ARTIFACT" "$APP_DIR"
    expect_file "$ENV_TEXT" "$ENV_FILE" 0640 "root:$APP_USER"
    expect_file "$ECOSYSTEM_TEXT" "$ECOSYSTEM_FILE" 0644
    expect_service "$APP_SERVICE"
    app_healthy "$PORT" || drift "the app on port $PORT: /health does not answer 200 with the database reachable"
}

main "$@" </dev/null
