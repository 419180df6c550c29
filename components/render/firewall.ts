// The seed's security groups as nftables rules. Pure: topology in, ruleset text out.
import { SANDBOX } from "./systemd";
import { APP_METRICS_PORT, FIREWALL_INCLUDE_DIR, FIREWALL_RULESET, NODE_EXPORTER_PORT } from "../constants";

export type Role = "lb" | "web" | "db" | "replica";

/** The load balancer keeps 443 open for HTTPS, whatever httpPort is. */
export const HTTPS_PORT = 443;

/** One inbound allowance. `from` is a list of IPv4 addresses/CIDRs, or "any". */
export interface InboundRule {
    port: number;
    from: string[] | "any";
    comment: string;
}

/** One outbound allowance to cluster peers. */
export interface OutboundRule {
    port: number;
    to: string[];
    comment: string;
}


export interface FirewallSpec {
    role: Role;
    /** SSH is accepted only from these (pi-cluster:adminCidrs); they need not contain the hosts. */
    adminCidrs: string[];
    sshPort: number;
    inbound: InboundRule[];
    outbound: OutboundRule[];
    /** Include the input rules in FIREWALL_INCLUDE_DIR (owned by other steps). Default false. */
    includeDir?: boolean;
    /**
     * Addresses cut off both ways, before any accept, established connections included: a
     * web server's fence against a lost database during a promotion (scripts/promote). The
     * stack never renders one, so the next `up` lifts it. Default none.
     */
    fence?: string[];
}

export interface Topology {
    /** Who may reach SSH on every Pi. */
    adminCidrs: string[];
    lbAddress: string;
    webAddresses: string[];
    dbAddress: string;
    /** The database's read replicas. Default none. */
    replicaAddresses?: string[];
    /** The database's SSH port, which the replicas' seeding streams reach. Default 22. */
    dbSshPort?: number;
    appPort: number;
    dbPort: number;
    httpPort: number;
    /** Where the database ships its backups over SSH, when backups are on. */
    backupTarget?: { address: string; sshPort: number };
    /** The backup target's address when it streams the binlog (backup.stream): it reaches the database's MariaDB. */
    streamTarget?: string;
    /** The Prometheus host when monitoring is on: it scrapes every Pi's node exporter, and the web servers' app metrics. */
    monitoring?: { address: string };
}

/**
 * The rules each role gets, straight from the seed's security groups:
 * LB 80/443 from anywhere; web the app port from the LB only; DB 3306 from the web
 * servers only; SSH from the admin networks everywhere. No Pi opens SSH to another: every
 * step, the LB's drain and admit included, runs from the machine that runs pulumi.
 */
export function roleFirewall(role: Role, t: Topology, sshPort = 22): FirewallSpec {
    const spec = roleRules(role, t, sshPort);
    if (!t.monitoring) return spec;
    // Every Pi's metrics go to the Prometheus host and nowhere else; it reaches every Pi, and
    // each web server's app metrics.
    const prometheus = t.monitoring.address;
    const all = [t.lbAddress, ...t.webAddresses, t.dbAddress, ...(t.replicaAddresses ?? [])];
    const others = (addresses: string[]) => addresses.filter((a) => a !== prometheus);
    return {
        ...spec,
        inbound: [
            ...spec.inbound,
            { port: NODE_EXPORTER_PORT, from: [prometheus], comment: "node metrics to prometheus only" },
            ...(role === "web" ? [{ port: APP_METRICS_PORT, from: [prometheus], comment: "app metrics to prometheus only" }] : []),
        ],
        outbound:
            prometheus === addressOf(role, t)
                ? [
                      ...spec.outbound,
                      { port: NODE_EXPORTER_PORT, to: others(all), comment: "prometheus scrapes every pi" },
                      { port: APP_METRICS_PORT, to: others(t.webAddresses), comment: "prometheus scrapes the apps" },
                  ]
                : spec.outbound,
    };
}

/** A role's own address, when the role has one Pi (the LB and the database). */
function addressOf(role: Role, t: Topology): string | undefined {
    return role === "lb" ? t.lbAddress : role === "db" ? t.dbAddress : undefined;
}

function roleRules(role: Role, t: Topology, sshPort: number): FirewallSpec {
    if (t.adminCidrs.length === 0) throw new Error("roleFirewall: adminCidrs must not be empty, or SSH would be closed to everyone");
    const base = { role, adminCidrs: t.adminCidrs, sshPort };
    const replicas = [...(t.replicaAddresses ?? [])].sort();
    switch (role) {
        case "lb":
            return {
                ...base,
                inbound: [
                    { port: t.httpPort, from: "any", comment: "http from anywhere" },
                    { port: HTTPS_PORT, from: "any", comment: "https from anywhere" },
                ],
                outbound: [
                    { port: t.appPort, to: t.webAddresses, comment: "proxy to the web servers" },
                    // As the backup target, it streams the binlog; the database's rule for it
                    // is the stream's own step's file (renderStreamClient).
                    ...(t.streamTarget === t.lbAddress ? [{ port: t.dbPort, to: [t.dbAddress], comment: "the binlog stream from the database" }] : []),
                ],
            };
        case "web":
            return {
                ...base,
                inbound: [{ port: t.appPort, from: [t.lbAddress], comment: "app from the load balancer only" }],
                outbound: [
                    { port: t.dbPort, to: [t.dbAddress], comment: "mariadb on the database" },
                    { port: t.dbPort, to: replicas, comment: "mariadb on the read replicas" },
                ],
            };
        case "db":
            // 3306 from the web servers is in DB_CLIENTS_FILE, written by the database's
            // app-db step together with the grants (see renderDbClients).
            // The backups go out over SSH to the target, and nothing else does. The target
            // lets the database in on its SSH port, as every Pi is in the management network.
            // A replica is seeded over SSH (its account runs mariadb-backup, nothing else);
            // its 3306 rule is its own step's file in FIREWALL_INCLUDE_DIR, with its grant.
            return {
                ...base,
                inbound: [{ port: sshPort, from: replicas, comment: "seeding streams to the read replicas (ssh)" }],
                outbound: t.backupTarget ? [{ port: t.backupTarget.sshPort, to: [t.backupTarget.address], comment: "backups to the backup target (ssh)" }] : [],
                includeDir: true,
            };
        case "replica":
            // Reads from the web servers; replication and its seed from the database.
            return {
                ...base,
                inbound: [{ port: t.dbPort, from: [...t.webAddresses].sort(), comment: "mariadb from the web servers only" }],
                outbound: [
                    { port: t.dbPort, to: [t.dbAddress], comment: "replication from the database" },
                    { port: t.dbSshPort ?? 22, to: [t.dbAddress], comment: "the seeding stream from the database (ssh)" },
                ],
            };
    }
}

function set(items: (string | number)[]): string {
    return items.length === 1 ? String(items[0]) : `{ ${items.join(", ")} }`;
}

/**
 * Renders the ruleset. It owns only `table inet pi_cluster` and replaces it in one
 * transaction, so it never touches other tables and never leaves the Pi half-filtered.
 */
export function renderFirewall(spec: FirewallSpec): string {
    const input = spec.inbound
        .filter((r) => r.from === "any" || r.from.length > 0)
        .map((r) =>
            r.from === "any"
                ? `        tcp dport ${r.port} accept comment "${r.comment}"`
                : `        ip saddr ${set(r.from)} tcp dport ${r.port} accept comment "${r.comment}"`,
        );
    const output = spec.outbound
        .filter((r) => r.to.length > 0)
        .map((r) => `        ip daddr ${set(r.to)} tcp dport ${r.port} accept comment "${r.comment}"`);
    return `#!/usr/sbin/nft -f
# Managed by pi-cluster (role: ${spec.role}); rendered by components/render/firewall.ts.
# Everything not accepted below is dropped.
table inet pi_cluster
delete table inet pi_cluster
table inet pi_cluster {
    chain input {
        type filter hook input priority filter; policy drop;
        iifname "lo" accept
${fenceLines(spec.fence, "saddr")}        # Before the conntrack rules: when this ruleset is first loaded, conntrack picks up
        # the deploying SSH session mid-stream, cannot know its window scaling, and would
        # call its packets invalid (the session then hangs).
        ip saddr ${set(spec.adminCidrs)} tcp dport ${spec.sshPort} accept comment "ssh from the admin networks"
        ct state established,related accept
        ct state invalid drop
        meta l4proto { icmp, ipv6-icmp } accept comment "ping, path MTU discovery, IPv6 neighbours"
${[...input, ...(spec.includeDir ? [`        include "${FIREWALL_INCLUDE_DIR}/*.nft"`] : [])].join("\n")}
    }

    chain forward {
        type filter hook forward priority filter; policy drop;
    }

    chain output {
        type filter hook output priority filter; policy drop;
        oifname "lo" accept
${fenceLines(spec.fence, "daddr")}        ip daddr ${set(spec.adminCidrs)} tcp sport ${spec.sshPort} accept comment "ssh replies, as above"
        ct state established,related accept
        meta l4proto { icmp, ipv6-icmp } accept
        udp dport { 53, 67, 123, 547 } accept comment "dns, dhcp, ntp, dhcpv6"
        tcp dport { 53, 80, 443 } accept comment "dns, package mirrors"
${output.join("\n")}
    }
}
`.replace(/\n\n(?=\s*})/g, "\n");
}

// A reset, not a silent drop, on the way out: the app's connection attempts fail at once
// instead of hanging until their timeout.
function fenceLines(fence: string[] | undefined, dir: "saddr" | "daddr"): string {
    if (!fence || fence.length === 0) return "";
    const comment = `comment "fence: the database before a promotion"`;
    return dir === "saddr"
        ? `        ip saddr ${set(fence)} drop ${comment}\n`
        : `        ip daddr ${set(fence)} meta l4proto tcp reject with tcp reset ${comment}\n        ip daddr ${set(fence)} drop ${comment}\n`;
}

/**
 * The database's input rule for its clients: 3306 from the web servers only. The app-db
 * step owns it with the grants, so both follow a scale-in only after the load balancer.
 */
export function renderDbClients(webAddresses: string[], dbPort: number): string {
    const header = "# Managed by pi-cluster; rendered by components/render/firewall.ts (renderDbClients).\n";
    if (webAddresses.length === 0) return header;
    return `${header}ip saddr ${set([...webAddresses].sort())} tcp dport ${dbPort} accept comment "mariadb from the web servers only"\n`;
}

/** The database's input rule for one replica's replication connection, owned by that replica's source step. */
export function replicaClientFile(name: string): string {
    return `${FIREWALL_INCLUDE_DIR}/replica-${name}.nft`;
}

export function renderReplicaClient(address: string, dbPort: number): string {
    return `# Managed by pi-cluster; rendered by components/render/firewall.ts (renderReplicaClient).
ip saddr ${address} tcp dport ${dbPort} accept comment "replication to this read replica"
`;
}

/**
 * The unit that loads the ruleset at boot, before the network comes up, in the sandbox of
 * components/render/systemd.ts (as Debian's own nftables.service sandboxes nft this early).
 * Left off, as they do not fit: PrivateNetwork= (nft must change the host's own network
 * namespace), PrivateUsers= (CAP_NET_ADMIN must hold in the host's user namespace) and
 * PrivateTmp= (nft writes no file, and it would order the unit after the /tmp mounts).
 */
export function renderFirewallUnit(): string {
    return `# Managed by pi-cluster; rendered by components/render/firewall.ts.
[Unit]
Description=pi-cluster firewall (nftables table inet pi_cluster)
DefaultDependencies=no
Before=network-pre.target
Wants=network-pre.target
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f ${FIREWALL_RULESET}
ExecStop=/usr/sbin/nft delete table inet pi_cluster

# Sandbox (components/render/systemd.ts). nft runs as root but needs only CAP_NET_ADMIN and
# netlink; it reads the ruleset and writes nothing. The kernel still loads the nf_tables
# modules nft asks for (ProtectKernelModules= only stops the process loading them).
CapabilityBoundingSet=CAP_NET_ADMIN
RestrictAddressFamilies=AF_NETLINK AF_UNIX
IPAddressDeny=any
MemoryDenyWriteExecute=yes
${SANDBOX}

[Install]
WantedBy=sysinit.target
`;
}
