#!/usr/bin/env bash
# Renewal of this Pi's TLS server certificate from its cluster CA (made here if missing).
# The TLS step runs it once, then pi-cluster-tls-renew.timer daily, from the copy the step
# installs. A certificate that still holds (right CA, key, names, more than RENEW_DAYS
# left) is left alone; a new one is taken in by SERVICE without a restart.
# Run as root: `bash tls-renew.sh apply`.
# Reads:
#   STEP            log prefix
#   TLS_DIR         ca.key, ca.crt, server.key, server.crt
#   CA_NAME         the CA's common name
#   SERVER_NAME     the certificate's DNS name (the Pi's name)
#   SERVER_ADDRESS  its IP address: the one clients dial
#   CERT_DAYS       validity of a new certificate;  RENEW_DAYS  renewal window
#   KEY_OWNER       owner:group of server.key (the service reads it)
#   SERVICE         nginx (reload) or mariadb (FLUSH SSL)
#   STATUS_FILE     where the expiry goes as JSON for the dashboard; empty for none
set -euo pipefail

# @vars

# @lib

take_in() {
    case "$SERVICE" in
    nginx)
        if systemctl is-active --quiet nginx && nginx -t -q; then
            systemctl reload nginx
            info "nginx reloaded with the new certificate"
        fi
        ;;
    mariadb)
        # Only once its config names this certificate: before that (the first run, ahead of
        # the mariadb step) the restart for the new config takes it in.
        if systemctl is-active --quiet mariadb &&
            [[ "$(mariadb_sql -e 'SELECT @@ssl_cert')" == "$TLS_DIR/server.crt" ]]; then
            mariadb_sql -e "FLUSH SSL"
            info "mariadb took in the new certificate (FLUSH SSL)"
        fi
        ;;
    *) fatal "unknown SERVICE '$SERVICE': expected nginx or mariadb" ;;
    esac
}

apply() {
    tls_make_ca "$TLS_DIR" "$CA_NAME" || true
    if tls_server_cert "$TLS_DIR" "$SERVER_NAME" "$SERVER_ADDRESS" "$CERT_DAYS" "$RENEW_DAYS" "$KEY_OWNER"; then
        take_in
    fi
    if [[ -n "$STATUS_FILE" ]]; then
        tls_write_status "$TLS_DIR/server.crt" "$STATUS_FILE" || true
    fi
}

delete() { :; }

# verify: the CA's key is here and private, and the server certificate is this CA's, for
# this Pi's name and address, and not due for renewal.
verify() {
    if [[ ! -s "$TLS_DIR/ca.key" ]]; then
        drift "$TLS_DIR/ca.key: missing (a new CA would be made: clients must trust it again)"
    elif [[ "$(stat -c '%a %U' "$TLS_DIR/ca.key")" != "600 root" ]]; then
        drift "$TLS_DIR/ca.key: mode and owner are $(stat -c '%a %U' "$TLS_DIR/ca.key"), expected 600 root"
    fi
    tls_server_cert_ok "$TLS_DIR" "$SERVER_NAME" "$SERVER_ADDRESS" "$RENEW_DAYS" ||
        drift "$TLS_DIR/server.crt: not a certificate of this Pi's CA for $SERVER_NAME ($SERVER_ADDRESS) valid for more than $RENEW_DAYS days"
}

main "$@" </dev/null
