// TLS on the Pis: where each Pi keeps its cluster CA and server certificate, and the
// systemd timer that renews the certificate. Pure: names in, unit and script text out.
import { FileText, fileText, renderScript } from "./shell";
import { TLS_DIR, TLS_RENEW_SCRIPT } from "../constants";

/** A server certificate is valid this long; the CA 20 years. */
export const TLS_CERT_DAYS = 365;
/** It is issued again once it expires within this many days (by the step and by the daily timer). */
export const TLS_RENEW_DAYS = 30;

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

export interface TlsRenewalArgs {
    /** The TLS step's name; the renewal logs as `<step>-renew`. */
    step: string;
    /** The Pi's name (the certificate's DNS name, and the CA's). */
    name: string;
    /** Its address (the certificate's IP address). */
    address: string;
    /** Who reads server.key: root (nginx's master) or mysql. */
    keyOwner: "root:root" | "mysql:mysql";
    /** What takes a new certificate in. */
    service: "nginx" | "mariadb";
    /** Where the expiry goes for the dashboard; "" for none. */
    statusFile: string;
}

/** A TLS step's renewal variables: tls-renew.sh rendered for this Pi, its unit and its timer. */
export function tlsRenewalVars(a: TlsRenewalArgs): { RENEW_TEXT: FileText; SERVICE_TEXT: FileText; TIMER_TEXT: FileText } {
    const script = renderScript("tls-renew", {
        STEP: `${a.step}-renew`,
        TLS_DIR,
        CA_NAME: `pi-cluster CA (${a.name})`,
        SERVER_NAME: a.name,
        SERVER_ADDRESS: a.address,
        CERT_DAYS: TLS_CERT_DAYS,
        RENEW_DAYS: TLS_RENEW_DAYS,
        KEY_OWNER: a.keyOwner,
        SERVICE: a.service,
        STATUS_FILE: a.statusFile,
    });
    return { RENEW_TEXT: fileText(script), SERVICE_TEXT: fileText(renderRenewService(a.service)), TIMER_TEXT: fileText(renderRenewTimer()) };
}

/** What a TLS step prints on stdout (tls_step_output in assets/scripts/lib.sh). */
export interface TlsStepOutput {
    caCertificate: string;
    certificateExpiry: string;
}

/** Reads a TLS step's stdout; anything but its one JSON line fails with what it got. */
export function parseTlsStepOutput(stdout: string, step: string): TlsStepOutput {
    try {
        const o = JSON.parse(stdout) as TlsStepOutput;
        if (typeof o.caCertificate === "string" && typeof o.certificateExpiry === "string") return o;
    } catch {
        // Reported below.
    }
    throw new Error(`${step}: expected one JSON line {caCertificate, certificateExpiry} on stdout, got ${JSON.stringify(stdout.slice(0, 200))}`);
}
