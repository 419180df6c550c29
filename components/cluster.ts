// PiCluster composes the Database, the WebServers and the LoadBalancer, and wires them:
// the DB address reaches the web servers' env; the web addresses reach the nginx upstream.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { Artifact } from "./artifacts";
import { BackupTarget } from "./backupTarget";
import { BinlogStream } from "./binlogStream";
import { apiRateLimitOf, ClusterConfig } from "./config";
import { Database, databasePackages } from "./database";
import { hostConnection } from "./host";
import { LoadBalancer } from "./loadBalancer";
import { Monitoring, MonitoringArgs } from "./monitoring";
import { STREAM_PACKAGES } from "./render/binlogStream";
import { roleFirewall, Topology } from "./render/firewall";
import { Node, renamedHosts } from "./renames";
import { WebServer } from "./webServer";
import { ALERTMANAGER_PACKAGE, APP_METRICS_PORT, PROMETHEUS_PACKAGE, SEED_USER } from "./constants";

/** Bumped when an output below changes shape; StackReference consumers check it. */
export const OUTPUTS_CONTRACT_VERSION = 1;

export interface PiClusterArgs {
    /** The validated stack config. Required. */
    config: ClusterConfig;
    /** Built tarballs shipped to the Pis. Required. */
    artifacts: { app: Artifact; pm2: Artifact; dashboard: Artifact };
    /** The hosts of the last deployment (its `nodes` output), to carry renames over. Default none. */
    previousNodes?: Node[];
}

/** The backup target and the database Pi, with their pinned host keys, for scripts/restore.sh. */
export interface BackupOutput {
    target: { address: string; port: number; hostKey: string; path: string; user: string };
    database: { address: string; port: number; hostKey: string };
}

/**
 * The backup target as the steps need it: the configured host, or the load balancer. A Pi
 * of the cluster lends its SSH port and pinned host key; another host names its own.
 */
export function backupTargetOf(c: ClusterConfig): BackupOutput["target"] | undefined {
    if (!c.backup) return undefined;
    const t = c.backup.target;
    const address = t.host ?? c.loadBalancer.address;
    const pi = [c.loadBalancer, ...c.webServers].find((h) => h.address === address);
    return {
        address,
        port: t.sshPort ?? pi?.sshPort ?? 22,
        // config.ts requires a hostKey for a host outside the cluster.
        hostKey: t.hostKey ?? pi!.hostKey,
        path: t.path,
        user: t.user,
    };
}

/** The app's metrics listener on each web server: with monitoring on only (WebServerArgs.metricsPort). */
export function appMetricsPortOf(c: ClusterConfig): number | undefined {
    return c.monitoring.enabled ? APP_METRICS_PORT : undefined;
}

/** Who talks to whom, which each role's firewall follows; scripts/promote renders the same. */
export function topologyOf(c: ClusterConfig): Topology {
    const target = backupTargetOf(c);
    return {
        adminCidrs: c.adminCidrs,
        lbAddress: c.loadBalancer.address,
        webAddresses: c.webServers.map((w) => w.address),
        dbAddress: c.database.address,
        replicaAddresses: c.dbReplicas.map((r) => r.address),
        dbSshPort: c.database.sshPort,
        appPort: c.appPort,
        dbPort: c.dbPort,
        httpPort: c.httpPort,
        backupTarget: target && { address: target.address, sshPort: target.port },
        streamTarget: target && c.backup?.stream ? target.address : undefined,
        monitoring: c.monitoring.enabled ? { address: c.loadBalancer.address } : undefined,
    };
}

export class PiCluster extends pulumi.ComponentResource {
    public readonly contractVersion: pulumi.Output<number>;
    public readonly lbUrl: pulumi.Output<string>;
    public readonly apiUrl: pulumi.Output<string>;
    public readonly dashboardUrl: pulumi.Output<string>;
    /** The same three over HTTPS, what clients should use (docs/contracts.md, added within version 1). */
    public readonly httpsUrl: pulumi.Output<string>;
    public readonly httpsApiUrl: pulumi.Output<string>;
    public readonly httpsDashboardUrl: pulumi.Output<string>;
    public readonly webServers: pulumi.Output<{ name: string; address: string }[]>;
    public readonly database: pulumi.Output<{ host: string; port: number; name: string; user: string }>;
    /** Every Pi with its role; the next deployment reads it to recognise a renamed host. */
    public readonly nodes: pulumi.Output<Node[]>;
    /** The app user's password (secret). */
    public readonly dbPassword: pulumi.Output<string>;
    /** The bearer token API writes need (secret): pi-cluster:apiWriteToken, or generated. */
    public readonly apiWriteToken: pulumi.Output<string>;
    /** The CA (PEM) that https clients of the load balancer trust. */
    public readonly caCertificate: pulumi.Output<string>;
    /** When the load balancer's certificate expires (ISO 8601 UTC) as of this `up`. */
    public readonly certificateExpiry: pulumi.Output<string>;
    /** The database's read replicas. */
    public readonly dbReplicas: pulumi.Output<{ name: string; address: string }[]>;
    /** Where the backups are and the hosts scripts/restore.sh talks to; undefined when backups are off. */
    public readonly backup?: pulumi.Output<BackupOutput>;

    constructor(name: string, args: PiClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:cluster:PiCluster", name, {}, opts);
        const c = args.config;
        const ssh = { user: c.sshUser, privateKey: c.sshPrivateKey };
        const target = backupTargetOf(c);
        // The target's account is let in by sshd only from the database's address.
        const sshExtraUsers = (address: string) => (target && target.address === address ? [`${target.user}@${c.database.address}`] : undefined);
        // The database's seeding account, from each replica's address only.
        const seedUsers = c.dbReplicas.map((r) => `${SEED_USER}@${r.address}`);
        const topology = topologyOf(c);
        const monitoring = c.monitoring.enabled;
        // The stream's client on the backup target, when it is a Pi of the cluster: in its base step's apt run.
        const streamPackages = (address: string) => (target && c.backup?.stream && target.address === address ? STREAM_PACKAGES : []);

        const nodes: Node[] = [
            { name: c.loadBalancer.name, address: c.loadBalancer.address, role: "lb" },
            ...c.webServers.map((w) => ({ name: w.name, address: w.address, role: "web" as const })),
            { name: c.database.name, address: c.database.address, role: "db" },
            ...c.dbReplicas.map((r) => ({ name: r.name, address: r.address, role: "replica" as const })),
        ];
        const renames = renamedHosts(args.previousNodes ?? [], nodes);
        // A renamed host's component, and through the SDK's name-prefix rule every step
        // under it, is the same resource as before: its steps update in place.
        const hostOpts = (hostName: string): pulumi.ComponentResourceOptions => {
            const old = renames.get(hostName);
            return { parent: this, ...(old ? { aliases: [{ name: old }] } : {}) };
        };

        const lbHost = {
            address: c.loadBalancer.address,
            sshPort: c.loadBalancer.sshPort,
            hostKey: c.loadBalancer.hostKey,
            ...ssh,
            firewall: roleFirewall("lb", topology, c.loadBalancer.sshPort),
            sshExtraUsers: sshExtraUsers(c.loadBalancer.address),
            // Prometheus in the load balancer's one apt run, when it is the monitoring host.
            packages: [...streamPackages(c.loadBalancer.address), ...(monitoring ? [PROMETHEUS_PACKAGE, ALERTMANAGER_PACKAGE] : [])],
            nodeExporter: monitoring,
        };
        // The web servers' drain and admit steps run on the load balancer, over this.
        const lbConnection = hostConnection(lbHost);
        const lb = new LoadBalancer(
            c.loadBalancer.name,
            {
                ...lbHost,
                backends: c.webServers.map((w) => ({ name: w.name, address: w.address, maintenance: w.cordon })),
                database: { name: c.database.name, address: c.database.address },
                appPort: c.appPort,
                httpPort: c.httpPort,
                managementCidr: c.managementCidr,
                apiRateLimit: apiRateLimitOf(c),
                tls: {
                    mode: c.tlsCertificateMode,
                    certificate: c.tlsCertificate,
                    privateKey: c.tlsPrivateKey,
                    redirectHttp: c.httpsRedirect,
                    hsts: c.hsts,
                },
                dashboard: args.artifacts.dashboard,
                refreshSeconds: c.dashboardRefreshSeconds,
                alertmanager: monitoring,
                requestTimeoutMs: c.dashboardRequestTimeoutMs,
                unattendedUpgrades: c.unattendedUpgrades,
                reapply: c.reapply[c.loadBalancer.name],
            },
            hostOpts(c.loadBalancer.name),
        );

        const password = new random.RandomPassword(
            `${name}-db-password`,
            // Letters and digits only: the value travels through SQL, env files and shells.
            { length: 32, special: false },
            { parent: this },
        );

        // Generated only while the config sets none; setting one later deletes this resource.
        const writeToken =
            c.apiWriteToken ??
            new random.RandomPassword(
                `${name}-api-write-token`,
                // Letters and digits: a bearer token as it is, and safe in the env file. 40 of
                // them are about 238 bits.
                { length: 40, special: false },
                { parent: this },
            ).result;

        // What the database and each replica share: a replica serves the same pools, and may become the database.
        const dbHostArgs = (h: ClusterConfig["dbReplicas"][number]) => ({
            address: h.address,
            sshPort: h.sshPort,
            hostKey: h.hostKey,
            ...ssh,
            webAddresses: topology.webAddresses,
            password: password.result,
            port: c.dbPort,
            poolSize: c.dbPoolSize,
            connectionHeadroom: c.dbConnectionHeadroom,
            innodbBufferPoolSize: c.innodbBufferPoolSize,
            innodbLogFileSize: c.innodbLogFileSize,
            purgeDataOnDestroy: c.purgeDataOnDestroy,
            unattendedUpgrades: c.unattendedUpgrades,
            packages: databasePackages(!!(c.backup && target)),
            nodeExporter: monitoring,
            reapply: c.reapply[h.name],
        });
        const db = new Database(
            c.database.name,
            {
                ...dbHostArgs(c.database),
                firewall: roleFirewall("db", topology, c.database.sshPort),
                sshExtraUsers: seedUsers.length > 0 ? seedUsers : undefined,
                hasReplicas: c.dbReplicas.length > 0,
                semiSyncTimeoutMs: c.dbSemiSyncTimeoutMs,
                serverId: c.database.serverId,
                // A removed web server leaves the load balancer before it loses the database.
                clientsAfter: [lb.nginxConf],
                backup:
                    c.backup && target
                        ? {
                              agePublicKey: c.backup.agePublicKey,
                              target: { address: target.address, sshPort: target.port, hostKey: target.hostKey, user: target.user },
                              fullOnCalendar: c.backup.fullOnCalendar,
                              incrementalOnCalendar: c.backup.incrementalOnCalendar,
                              binlogShipSeconds: c.backup.binlogShipSeconds,
                          }
                        : undefined,
            },
            hostOpts(c.database.name),
        );

        // Created only with replicas, so a cluster without them keeps its resources as they were.
        const replPassword =
            c.dbReplicas.length > 0
                ? new random.RandomPassword(`${name}-repl-password`, { length: 32, special: false }, { parent: this }).result
                : undefined;
        // The source steps run on the database one after the other: each installs packages
        // there, and two apt runs at once fail on apt's lock (seen with two new replicas).
        const replicas: Database[] = [];
        for (const r of c.dbReplicas) {
            const previousSource = replicas[replicas.length - 1]?.sourceStep;
            replicas.push(
                new Database(
                    r.name,
                    {
                        ...dbHostArgs(r),
                        firewall: roleFirewall("replica", topology, r.sshPort),
                        semiSyncTimeoutMs: c.dbSemiSyncTimeoutMs,
                        reseed: c.reseed[r.name],
                        replicaOf: {
                            name: c.database.name,
                            address: c.database.address,
                            port: c.dbPort,
                            sshPort: c.database.sshPort,
                            hostKey: c.database.hostKey,
                            connection: hostConnection({ address: c.database.address, sshPort: c.database.sshPort, hostKey: c.database.hostKey, ...ssh }),
                            caCertificate: db.caCertificate,
                            replPassword: replPassword!,
                            catchUpSeconds: 600,
                            after: [...db.ready, ...(previousSource ? [previousSource] : [])],
                        },
                    },
                    hostOpts(r.name),
                ),
            );
        }
        // The app checks each server's certificate against this file: the database's CA and each replica's.
        const dbCaBundle =
            replicas.length === 0
                ? db.caCertificate
                : pulumi.all([db.caCertificate, ...replicas.map((r) => r.caCertificate)]).apply((pems) => pems.map((p) => p.trimEnd() + "\n").join(""));

        const webs: WebServer[] = [];
        for (const w of c.webServers) {
            webs.push(
                new WebServer(
                    w.name,
                    {
                        address: w.address,
                        sshPort: w.sshPort,
                        hostKey: w.hostKey,
                        ...ssh,
                        firewall: roleFirewall("web", topology, w.sshPort),
                        sshExtraUsers: sshExtraUsers(w.address),
                        packages: streamPackages(w.address),
                        app: args.artifacts.app,
                        pm2: args.artifacts.pm2,
                        port: c.appPort,
                        dbHost: db.address,
                        dbPort: db.port,
                        dbName: db.dbName,
                        dbUser: db.dbUser,
                        dbPassword: password.result,
                        apiWriteToken: writeToken,
                        dbCaCertificate: dbCaBundle,
                        dbServerName: db.serverName,
                        dbReplicas: c.dbReplicas.map((r) => ({ name: r.name, address: r.address })),
                        dbReplicaMaxLagSeconds: c.dbReplicaMaxLagSeconds,
                        dbReady: [...db.ready, ...replicas.flatMap((r) => r.ready)],
                        poolSize: c.dbPoolSize,
                        corsOrigins: c.corsOrigins,
                        lb: { connection: lbConnection, httpPort: c.httpPort, nginxConf: lb.nginxConf },
                        cordon: w.cordon,
                        healthTimeoutSeconds: c.rolloutHealthTimeoutSeconds,
                        // One server at a time: drained, restarted, healthy and serving
                        // through the load balancer before the next one drains.
                        rollAfter: webs.length > 0 ? webs[webs.length - 1].admitStep : undefined,
                        unattendedUpgrades: c.unattendedUpgrades,
                        nodeExporter: monitoring,
                        metricsPort: appMetricsPortOf(c),
                        reapply: c.reapply[w.name],
                    },
                    hostOpts(w.name),
                ),
            );
        }

        // Once every web server has rolled to TLS, the database refuses connections without it.
        db.requireTls(webs.map((w) => w.admitStep));
        let backupMetrics: MonitoringArgs["backupTarget"];
        if (c.backup && target && db.backupPublicKey) {
            const targetConnection = hostConnection({ address: target.address, sshPort: target.port, hostKey: target.hostKey, ...ssh });
            const backupTarget = new BackupTarget(
                `${name}-backup`,
                {
                    connection: targetConnection,
                    user: target.user,
                    path: target.path,
                    retentionDays: c.backup.retentionDays,
                    staleAfterSeconds: c.backup.staleAfterSeconds,
                    minFreeMb: c.backup.target.minFreeMb,
                    dbAddress: c.database.address,
                    dbPublicKey: db.backupPublicKey,
                    // On the load balancer, once its sshd lets the account in (its base step).
                    after: target.address === c.loadBalancer.address ? [lb.nginxConf] : [],
                },
                { parent: this },
            );
            // Prometheus scrapes the target's node exporter only when the target is a Pi of the cluster.
            if (nodes.some((n) => n.address === target.address)) {
                backupMetrics = { connection: targetConnection, path: target.path, ready: backupTarget.ready };
            }
            if (c.backup.stream) {
                new BinlogStream(
                    `${name}-binlog-stream`,
                    {
                        dbConnection: hostConnection({ address: c.database.address, sshPort: c.database.sshPort, hostKey: c.database.hostKey, ...ssh }),
                        dbAddress: c.database.address,
                        dbPort: c.dbPort,
                        dbCaCertificate: db.caCertificate,
                        dbReady: db.ready,
                        targetConnection,
                        targetAddress: target.address,
                        user: target.user,
                        path: target.path,
                        targetReady: [backupTarget.ready],
                    },
                    { parent: this },
                );
            }
            this.backup = pulumi.output({
                target,
                database: { address: c.database.address, port: c.database.sshPort, hostKey: c.database.hostKey },
            });
        }

        if (monitoring) {
            new Monitoring(
                `${name}-monitoring`,
                {
                    connection: lbConnection,
                    pis: nodes,
                    scrapeIntervalSeconds: c.monitoring.scrapeIntervalSeconds,
                    retentionDays: c.monitoring.retentionDays,
                    retentionSizeMb: c.monitoring.retentionSizeMb,
                    webhookUrl: c.alertWebhookUrl,
                    backupTarget: backupMetrics,
                    // Once the load balancer's base step has installed the package (in its one apt run).
                    after: [lb.nginxConf],
                },
                { parent: this },
            );
        }

        this.contractVersion = pulumi.output(OUTPUTS_CONTRACT_VERSION);
        this.lbUrl = lb.url;
        this.apiUrl = pulumi.interpolate`${lb.url}/api/`;
        this.dashboardUrl = pulumi.interpolate`${lb.url}/`;
        this.httpsUrl = lb.httpsUrl;
        this.httpsApiUrl = pulumi.interpolate`${lb.httpsUrl}/api/`;
        this.httpsDashboardUrl = pulumi.interpolate`${lb.httpsUrl}/`;
        this.webServers = pulumi.all(webs.map((w) => pulumi.all([w.nodeName, w.address]))).apply((pairs) =>
            pairs.map(([n, a]) => ({ name: n, address: a })),
        );
        this.database = pulumi
            .all([db.address, db.port, db.dbName, db.dbUser])
            .apply(([host, port, dbName, user]) => ({ host, port, name: dbName, user }));
        this.dbPassword = pulumi.secret(password.result);
        this.apiWriteToken = pulumi.secret(writeToken);
        this.nodes = pulumi.output(nodes);
        this.dbReplicas = pulumi.output(c.dbReplicas.map((r) => ({ name: r.name, address: r.address })));
        this.caCertificate = lb.caCertificate;
        this.certificateExpiry = lb.certificateExpiry;
        this.registerOutputs({
            contractVersion: this.contractVersion,
            lbUrl: this.lbUrl,
            apiUrl: this.apiUrl,
            dashboardUrl: this.dashboardUrl,
            httpsUrl: this.httpsUrl,
            httpsApiUrl: this.httpsApiUrl,
            httpsDashboardUrl: this.httpsDashboardUrl,
            webServers: this.webServers,
            database: this.database,
            dbPassword: this.dbPassword,
            apiWriteToken: this.apiWriteToken,
            nodes: this.nodes,
            dbReplicas: this.dbReplicas,
            caCertificate: this.caCertificate,
            certificateExpiry: this.certificateExpiry,
            backup: this.backup,
        });
    }
}
