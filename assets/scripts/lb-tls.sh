#!/usr/bin/env bash
# Step "tls": the load balancer's HTTPS certificate, before the site that uses it.
#   generated  a cluster CA made here with openssl (its key, 0600 root, never leaves this
#              Pi) issues a certificate for the Pi's name and address, renewed by this step
#              and by a daily timer once it expires within 30 days.
#   supplied   the user's certificate chain and key (the key reaches the Pi inside this
#              script, on stdin, and is written 0600 root).
# Either way the expiry goes to STATUS_FILE (served as /tls.json for the dashboard), and
# stdout carries one JSON line and nothing else (see tls_step_output); the logs go to
# stderr. Run as root via `sudo bash -s -- apply|delete`.
# Reads:
#   STEP            log prefix
#   MODE            generated or supplied
#   TLS_DIR         where the CA and the server certificate live
#   STATUS_FILE     the expiry as JSON, for the dashboard
#   RENEW_TEXT       (generated) tls-renew.sh as rendered for this Pi
#   SERVICE_TEXT     (generated) the renewal's unit;  TIMER_TEXT  its daily timer
#   CERT_TEXT        (supplied) the certificate chain, server certificate first
#   KEY_TEXT         (supplied) its private key (secret)
set -euo pipefail

# @vars

# @lib

# last_certificate CHAIN OUT : the chain's last certificate (its issuer's, when the chain
# has one), the one a client is told to trust.
last_certificate() {
    awk '/-----BEGIN CERTIFICATE-----/ { block = "" } { block = block $0 "\n" } /-----END CERTIFICATE-----/ { last = block } END { printf "%s", last }' "$1" >"$2"
}

supplied() {
    local changed=0 trust
    tls_remove_renewal
    install -d -m 0755 "$TLS_DIR"
    put_file "$KEY_TEXT" "$TLS_DIR/server.key" 0600 && changed=1
    put_file "$CERT_TEXT" "$TLS_DIR/server.crt" 0644 && changed=1
    openssl x509 -noout -in "$TLS_DIR/server.crt" || fatal "$TLS_DIR/server.crt is no certificate: check pi-cluster:tlsCertificate"
    [[ "$(openssl x509 -noout -pubkey -in "$TLS_DIR/server.crt")" == "$(openssl pkey -pubout -in "$TLS_DIR/server.key")" ]] ||
        fatal "pi-cluster:tlsPrivateKey is not the key of pi-cluster:tlsCertificate's first certificate"
    if ((changed)) && systemctl is-active --quiet nginx && nginx -t -q; then
        systemctl reload nginx
        info "nginx reloaded with the supplied certificate"
    fi
    tls_write_status "$TLS_DIR/server.crt" "$STATUS_FILE" || true
    trust=$(mktemp)
    last_certificate "$TLS_DIR/server.crt" "$trust"
    tls_step_output "$trust" "$TLS_DIR/server.crt" >&3
    rm -f "$trust"
}

apply() {
    # stdout is the stack's output: everything else goes to stderr.
    exec 3>&1 1>&2
    command -v openssl >/dev/null || apt_install openssl
    case "$MODE" in
    generated) tls_generated 3 "$RENEW_TEXT" "$SERVICE_TEXT" "$TIMER_TEXT" "$TLS_DIR" ;;
    supplied) supplied ;;
    *) fatal "unknown MODE '$MODE': expected generated or supplied" ;;
    esac
}

delete() {
    tls_remove_renewal
    remove_paths "$TLS_DIR" "$STATUS_FILE"
}

# verify: generated, the CA, the certificate and their renewal; supplied, the certificate
# and its key (compared, never shown) as given.
verify() {
    case "$MODE" in
    generated) tls_expect_generated "$RENEW_TEXT" "$SERVICE_TEXT" "$TIMER_TEXT" ;;
    supplied)
        expect_file "$KEY_TEXT" "$TLS_DIR/server.key" 0600
        expect_file "$CERT_TEXT" "$TLS_DIR/server.crt" 0644
        ;;
    esac
}

main "$@" </dev/null
