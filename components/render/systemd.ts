// systemd drop-ins for the services the stack runs but does not own the unit of (Debian's
// nginx and mariadb), and the sandbox of the units it owns. Pure: service name in, drop-in
// text out.

/**
 * The sandbox both units the stack writes (the app's and the firewall's) share: no new
 * privileges, a read-only system without home directories, devices, kernel knobs, clock or
 * host name, no namespaces, realtime, set-id files or personality changes, and only the
 * system calls of an ordinary service (a call outside the set fails with EPERM instead of
 * killing the process). Each unit adds its capabilities, address families and what it writes.
 */
export const SANDBOX = `NoNewPrivileges=yes
UMask=0077
ProtectSystem=strict
ProtectHome=yes
PrivateMounts=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM`;

/** Where a service's pi-cluster drop-in goes. */
export function dropInPath(service: string): string {
    return `/etc/systemd/system/${service}.service.d/pi-cluster.conf`;
}

/**
 * Restart on any failure, 2 s apart, at most 5 times a minute (then systemd gives up and
 * the unit shows in `systemctl --failed`), and start only once the network is up: nginx
 * and MariaDB bind to the Pi's address.
 */
export function renderRestartDropIn(service: string): string {
    return `# Managed by pi-cluster; rendered by components/render/systemd.ts.
# ${service}: come back after a crash or a killed main process.
[Unit]
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Restart=on-failure
RestartSec=2
`;
}
