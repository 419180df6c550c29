// PiCluster composes the Database, the WebServers and the LoadBalancer, and wires them:
// the DB address reaches the web servers' env; the web addresses reach the nginx upstream.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { Artifact } from "./artifacts";
import { apiRateLimitOf, ClusterConfig } from "./config";
import { Database } from "./database";
import { hostConnection } from "./host";
import { LoadBalancer } from "./loadBalancer";
import { roleFirewall, Topology } from "./render/firewall";
import { Node, renamedHosts } from "./renames";
import { WebServer } from "./webServer";

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

export class PiCluster extends pulumi.ComponentResource {
    public readonly contractVersion: pulumi.Output<number>;
    public readonly lbUrl: pulumi.Output<string>;
    public readonly apiUrl: pulumi.Output<string>;
    public readonly dashboardUrl: pulumi.Output<string>;
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

    constructor(name: string, args: PiClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:cluster:PiCluster", name, {}, opts);
        const c = args.config;
        const ssh = { user: c.sshUser, privateKey: c.sshPrivateKey };
        const topology: Topology = {
            adminCidrs: c.adminCidrs,
            lbAddress: c.loadBalancer.address,
            webAddresses: c.webServers.map((w) => w.address),
            dbAddress: c.database.address,
            appPort: c.appPort,
            dbPort: c.dbPort,
            httpPort: c.httpPort,
        };

        const nodes: Node[] = [
            { name: c.loadBalancer.name, address: c.loadBalancer.address, role: "lb" },
            ...c.webServers.map((w) => ({ name: w.name, address: w.address, role: "web" as const })),
            { name: c.database.name, address: c.database.address, role: "db" },
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

        const db = new Database(
            c.database.name,
            {
                address: c.database.address,
                sshPort: c.database.sshPort,
                hostKey: c.database.hostKey,
                ...ssh,
                firewall: roleFirewall("db", topology, c.database.sshPort),
                webAddresses: topology.webAddresses,
                // A removed web server leaves the load balancer before it loses the database.
                clientsAfter: [lb.nginxConf],
                password: password.result,
                port: c.dbPort,
                poolSize: c.dbPoolSize,
                connectionHeadroom: c.dbConnectionHeadroom,
                innodbBufferPoolSize: c.innodbBufferPoolSize,
                innodbLogFileSize: c.innodbLogFileSize,
                purgeDataOnDestroy: c.purgeDataOnDestroy,
                unattendedUpgrades: c.unattendedUpgrades,
                reapply: c.reapply[c.database.name],
            },
            hostOpts(c.database.name),
        );

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
                        app: args.artifacts.app,
                        pm2: args.artifacts.pm2,
                        port: c.appPort,
                        dbHost: db.address,
                        dbPort: db.port,
                        dbName: db.dbName,
                        dbUser: db.dbUser,
                        dbPassword: password.result,
                        apiWriteToken: writeToken,
                        dbCaCertificate: db.caCertificate,
                        dbServerName: db.serverName,
                        dbReady: db.ready,
                        poolSize: c.dbPoolSize,
                        corsOrigins: c.corsOrigins,
                        lb: { connection: lbConnection, httpPort: c.httpPort, nginxConf: lb.nginxConf },
                        cordon: w.cordon,
                        healthTimeoutSeconds: c.rolloutHealthTimeoutSeconds,
                        // One server at a time: drained, restarted, healthy and serving
                        // through the load balancer before the next one drains.
                        rollAfter: webs.length > 0 ? webs[webs.length - 1].admitStep : undefined,
                        unattendedUpgrades: c.unattendedUpgrades,
                        reapply: c.reapply[w.name],
                    },
                    hostOpts(w.name),
                ),
            );
        }

        // Once every web server has rolled to TLS, the database refuses connections without it.
        db.requireTls(webs.map((w) => w.admitStep));

        this.contractVersion = pulumi.output(OUTPUTS_CONTRACT_VERSION);
        this.lbUrl = lb.url;
        this.apiUrl = pulumi.interpolate`${lb.url}/api/`;
        this.dashboardUrl = pulumi.interpolate`${lb.url}/`;
        this.webServers = pulumi.all(webs.map((w) => pulumi.all([w.nodeName, w.address]))).apply((pairs) =>
            pairs.map(([n, a]) => ({ name: n, address: a })),
        );
        this.database = pulumi
            .all([db.address, db.port, db.dbName, db.dbUser])
            .apply(([host, port, dbName, user]) => ({ host, port, name: dbName, user }));
        this.dbPassword = pulumi.secret(password.result);
        this.apiWriteToken = pulumi.secret(writeToken);
        this.nodes = pulumi.output(nodes);
        this.caCertificate = lb.caCertificate;
        this.certificateExpiry = lb.certificateExpiry;
        this.registerOutputs({
            contractVersion: this.contractVersion,
            lbUrl: this.lbUrl,
            apiUrl: this.apiUrl,
            dashboardUrl: this.dashboardUrl,
            webServers: this.webServers,
            database: this.database,
            dbPassword: this.dbPassword,
            apiWriteToken: this.apiWriteToken,
            nodes: this.nodes,
            caCertificate: this.caCertificate,
            certificateExpiry: this.certificateExpiry,
        });
    }
}
