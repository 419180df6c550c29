// systemd drop-ins for the services the stack runs but does not own the unit of (Debian's
// nginx and mariadb). Pure: service name in, drop-in text out.

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
