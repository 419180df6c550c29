// TLS on the Pis: where each Pi keeps its cluster CA and server certificate, and the
// systemd timer that renews the certificate. Pure: names in, unit text out.

/** A Pi's CA and server certificate: ca.key and server.key (0600) never leave it. */
export const TLS_DIR = "/etc/pi-cluster/tls";
/** The renewal job the timer runs: tls-renew.sh as the stack renders it. */
export const TLS_RENEW_SCRIPT = "/usr/local/lib/pi-cluster/tls-renew.sh";
export const TLS_RENEW_UNIT = "pi-cluster-tls-renew";
/** A server certificate is valid this long; the CA 20 years. */
export const TLS_CERT_DAYS = 365;
/** It is issued again once it expires within this many days (by the step and by the daily timer). */
export const TLS_RENEW_DAYS = 30;
/** The dashboard shows the expiry in red below this many days: a renewal that failed for two weeks. */
export const TLS_WARN_DAYS = 14;

/** The daily renewal: a oneshot run of the rendered tls-renew.sh as root (it writes TLS_DIR and reloads a service). */
export function renderRenewService(what: string): string {
    return `# Managed by pi-cluster; rendered by components/render/tls.ts.
[Unit]
Description=pi-cluster: renew ${what}'s TLS server certificate when it expires within ${TLS_RENEW_DAYS} days
After=network-online.target

[Service]
Type=oneshot
ExecStart=/bin/bash ${TLS_RENEW_SCRIPT} apply
NoNewPrivileges=yes
UMask=0077
PrivateTmp=yes
ProtectHome=yes
`;
}

/** Daily, at a random hour so the Pis do not renew at one moment; a missed run happens at boot. */
export function renderRenewTimer(): string {
    return `# Managed by pi-cluster; rendered by components/render/tls.ts.
[Unit]
Description=pi-cluster: daily TLS certificate renewal check

[Timer]
OnCalendar=daily
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`;
}
