#!/usr/bin/env bash
# Step "tls": the database's own cluster CA and server certificate, before MariaDB's config
# names them. The CA's key (0600 root) never leaves this Pi; the server key is 0600 mysql,
# which reads it. The certificate names the Pi and its address (the web servers check the
# name), and is renewed by this step and by a daily timer once it expires within 30 days;
# MariaDB takes a new one in with FLUSH SSL, no restart.
# stdout carries one JSON line and nothing else (see tls_step_output): the web servers get
# its CA. The logs go to stderr. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP         log prefix
#   TLS_DIR      where the CA and the server certificate live
#   RENEW_TEXT    tls-renew.sh as rendered for this Pi
#   SERVICE_TEXT  the renewal's unit;  TIMER_TEXT  its daily timer
set -euo pipefail

# @vars

# @lib

apply() {
    # stdout is the stack's output: everything else goes to stderr.
    exec 3>&1 1>&2
    # The server key belongs to the mysql user, which the package makes.
    apt_install mariadb-server openssl
    tls_generated 3 "$RENEW_TEXT" "$SERVICE_TEXT" "$TIMER_TEXT" "$TLS_DIR"
}

delete() {
    tls_remove_renewal
    remove_paths "$TLS_DIR"
}

# verify: the CA, the certificate and their renewal, as the step left them.
verify() {
    tls_expect_generated "$RENEW_TEXT" "$SERVICE_TEXT" "$TIMER_TEXT"
}

main "$@" </dev/null
