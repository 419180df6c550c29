// A web-server Pi: Node.js from Debian, the pinned PM2 under systemd, and the app,
// built on the deploying machine and shipped as an artifact. Its place in the load
// balancer's round-robin is its own too: anything that restarts the app runs between a
// drain and an admit step on the load balancer, one web server after the other.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { Artifact } from "./artifacts";
import { Host, HostArgs, hostConnection } from "./host";
import { renderAppEnv, renderAppSecrets, renderEcosystem, renderPm2Unit } from "./render/app";
import { fileText, renderScript } from "./render/shell";
import { Connection, remoteStep, upload, withReapply } from "./remote";
import { APP_DIR, APP_ENV_FILE, APP_HOME, APP_NAME, APP_SAVED_DIR, APP_SECRETS_FILE, APP_SERVICE, APP_USER, DB_CA_FILE, ECOSYSTEM_FILE, LB_ADMITTED_DIR, LEASE_DIR, LEASE_UNIT_PREFIX, PM2_DIR, UPSTREAM_MEMBERS_DIR } from "./constants";

/** What a web server needs of the load balancer to drain and admit itself. */
export interface LoadBalancerLink {
    /** SSH to the load balancer. */
    connection: pulumi.Input<Connection>;
    /** nginx's port there, for the probe through the load balancer. */
    httpPort: number;
    /** The site step, which includes the members' directory. */
    nginxConf: pulumi.Resource;
}

/**
 * How long a drained server may stay out before its lease puts it back (once healthy):
 * longer than the worst rollout of one server (a start that fails its health check, then
 * the rollback's start), so the lease only acts when the `up` failed or was interrupted.
 */
export function drainLeaseSeconds(healthTimeoutSeconds: number): number {
    return 2 * healthTimeoutSeconds + 30;
}

/** What lb-member.sh reads besides its paths: one web server's drain or admit on the load balancer. */
export interface LbMemberVars {
    STEP: string;
    MODE: "drain" | "admit";
    NODE: string;
    SERVER: string;
    HTTP_PORT: number;
    CORDONED: boolean;
    LEASE_SECONDS: number;
    ROLLOUT: string;
}

/** A web server's drain or admit step, run on the load balancer (assets/scripts/lb-member.sh). */
export function renderLbMember(vars: LbMemberVars): string {
    return renderScript("lb-member", { ...vars, MEMBERS_DIR: UPSTREAM_MEMBERS_DIR, LEASE_DIR, LEASE_UNIT_PREFIX, ADMITTED_DIR: LB_ADMITTED_DIR });
}

/** A short digest of what a web server runs: the drain and admit steps re-run when it changes. */
export function rolloutFingerprint(scripts: string[]): string {
    const h = crypto.createHash("sha256");
    for (const s of scripts) h.update(s).update("\0");
    return h.digest("hex").slice(0, 16);
}

/** The Pi (address, SSH, firewall: the app port from the LB only) plus what its role needs. */
export interface WebServerArgs extends HostArgs {
    /** The built app tarball. Required. */
    app: Artifact;
    /** The built PM2 tarball. Required. */
    pm2: Artifact;
    /** The app's port. */
    port: number;
    /** Database address, from the Database component. Required. */
    dbHost: pulumi.Input<string>;
    /** Database port. */
    dbPort: pulumi.Input<number>;
    /** Database name. Required. */
    dbName: pulumi.Input<string>;
    /** Database user. Required. */
    dbUser: pulumi.Input<string>;
    /** Database password (secret). Required. */
    dbPassword: pulumi.Input<string>;
    /** The bearer token API writes need (secret). Required. */
    apiWriteToken: pulumi.Input<string>;
    /** The CA (PEM) that signed MariaDB's certificate; the app connects only over TLS it verifies. Required. */
    dbCaCertificate: pulumi.Input<string>;
    /** The DNS name in MariaDB's certificate. Required. */
    dbServerName: pulumi.Input<string>;
    /** The database's read replicas the app reads from (their CAs are in dbCaCertificate); may be none. */
    dbReplicas: { name: string; address: string }[];
    /** The lag past which the app stops reading from a replica. */
    dbReplicaMaxLagSeconds: number;
    /** The app starts only after these (the DB user and schema). Required. */
    dbReady: pulumi.Resource[];
    /** Pool size per web server. */
    poolSize: number;
    /** CORS origins the app allows; none: same origin only. */
    corsOrigins: string[];
    /** The load balancer this server drains from and joins. Required. */
    lb: LoadBalancerLink;
    /** Keep the server installed but out of the load balancer, its steps untouched. */
    cordon: boolean;
    /** Seconds a (re)started app has to become healthy before a rollback. */
    healthTimeoutSeconds: number;
    /** The previous web server's admit step: rollouts go one server at a time. Default none. */
    rollAfter?: pulumi.Resource;
    /** The app's metrics listener for Prometheus (monitoring on), opened to it by the firewall. Default none: no listener. */
    metricsPort?: number;
}

const LB_STEPS = ["drain", "admit"];

/** What the node step installs (the base step installs it first, in its one apt run). */
export const NODE_PACKAGES = ["nodejs"];

export class WebServer extends pulumi.ComponentResource {
    public readonly nodeName: pulumi.Output<string>;
    public readonly address: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    /** The step after which this server serves through the load balancer; the next server rolls after it. */
    public readonly admitStep: pulumi.Resource;

    constructor(name: string, args: WebServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:web:WebServer", name, {}, withCordon(name, args.cordon, withReapply(args.reapply, opts)));
        const port = args.port;
        const healthTimeout = args.healthTimeoutSeconds;
        const host = new Host(name, { ...args, packages: [...NODE_PACKAGES, ...(args.packages ?? [])] }, { parent: this });
        const connection = hostConnection(args);

        // What restarts the app, rendered first: the drain step carries its fingerprint.
        const nodeScript = renderScript("web-node", { STEP: `${name}-node`, PACKAGES: NODE_PACKAGES, APP_USER, APP_HOME });
        const pm2Upload = upload(
            `${name}-pm2-upload`,
            { connection, hostKey: args.hostKey, kind: "pm2", file: args.pm2.path, sha: args.pm2.sha },
            { parent: this, dependsOn: host.ready },
        );
        const pm2Script = renderScript("web-pm2", {
            STEP: `${name}-pm2`,
            NODE: name,
            APP_SERVICE,
            ARTIFACT: pm2Upload.remotePath,
            PM2_DIR,
            APP_HOME,
            UNIT_TEXT: fileText(renderPm2Unit()),
            PORT: port,
            HEALTH_TIMEOUT: healthTimeout,
        });
        const appUpload = upload(
            `${name}-app-upload`,
            { connection, hostKey: args.hostKey, kind: "app", file: args.app.path, sha: args.app.sha },
            { parent: this, dependsOn: host.ready },
        );
        const env = pulumi
            .all([args.dbHost, args.dbPort, args.dbName, args.dbUser, args.dbServerName])
            .apply(([dbHost, dbPort, dbName, dbUser, dbServerName]) =>
                renderAppEnv({
                    nodeName: name,
                    dbHost,
                    dbPort,
                    dbName,
                    dbUser,
                    dbPoolSize: args.poolSize,
                    corsOrigins: args.corsOrigins,
                    dbTls: { caFile: DB_CA_FILE, serverName: dbServerName },
                    dbReplicas: args.dbReplicas.map((r) => ({ name: r.name, address: r.address, port: dbPort })),
                    dbReplicaMaxLagSeconds: args.dbReplicaMaxLagSeconds,
                    metricsPort: args.metricsPort,
                }),
        );
        // The secrets go in their own step, the one web-server step whose script is secret;
        // the app step's script carries only their digest, so it shows in a preview.
        const secrets = pulumi.secret(
            pulumi.all([args.dbPassword, args.apiWriteToken]).apply(([dbPassword, apiWriteToken]) => renderAppSecrets({ dbPassword, apiWriteToken })),
        );
        const secretsScript = secrets.apply((text) =>
            renderScript("web-app-secrets", { STEP: `${name}-app-secrets`, APP_USER, SECRETS_FILE: APP_SECRETS_FILE, SECRETS_TEXT: fileText(text) }),
        );
        const secretsDigest = pulumi.unsecret(secrets.apply((text) => crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)));
        const appScript = pulumi.all([env, secretsDigest, args.dbCaCertificate]).apply(([envText, digest, dbCa]) =>
            renderScript("web-app", {
                STEP: `${name}-app`,
                NODE: name,
                ARTIFACT: appUpload.remotePath,
                APP_DIR,
                APP_USER,
                APP_HOME,
                APP_NAME,
                APP_SERVICE,
                SAVED_DIR: APP_SAVED_DIR,
                ENV_FILE: APP_ENV_FILE,
                ENV_TEXT: fileText(envText),
                SECRETS_DIGEST: digest,
                DB_CA_FILE,
                DB_CA_TEXT: fileText(dbCa),
                ECOSYSTEM_FILE,
                ECOSYSTEM_TEXT: fileText(renderEcosystem({ port })),
                PORT: port,
                HEALTH_TIMEOUT: healthTimeout,
            }),
        );
        // A digest of the three scripts (the app's carries its secrets' digest) and of the Pi's
        // host key (a replaced Pi has a new one: it is drained, rebuilt and admitted again).
        const rollout = pulumi
            .all([args.hostKey, appScript])
            .apply(([hostKey, app]) => rolloutFingerprint([hostKey, nodeScript, pm2Script, app, ...(args.reapply ? [`reapply ${args.reapply}`] : [])]));
        const member = (mode: "drain" | "admit") =>
            pulumi.all([args.address, rollout]).apply(([address, fingerprint]) =>
                renderLbMember({
                    STEP: `${name}-${mode}`,
                    MODE: mode,
                    NODE: name,
                    SERVER: `${address}:${port}`,
                    HTTP_PORT: args.lb.httpPort,
                    CORDONED: args.cordon,
                    LEASE_SECONDS: drainLeaseSeconds(healthTimeout),
                    ROLLOUT: fingerprint,
                }),
            );

        const drain = remoteStep(
            `${name}-drain`,
            { connection: args.lb.connection, script: member("drain") },
            { parent: this, dependsOn: [args.lb.nginxConf, ...(args.rollAfter ? [args.rollAfter] : [])] },
        );

        const node = remoteStep(
            `${name}-node`,
            { connection, script: nodeScript },
            { parent: this, dependsOn: [...host.ready, drain] },
        );
        const pm2 = remoteStep(
            `${name}-pm2`,
            { connection, script: pm2Script },
            { parent: this, dependsOn: [node, pm2Upload.copy, drain] },
        );
        const appSecrets = remoteStep(
            `${name}-app-secrets`,
            { connection, secret: true, script: secretsScript },
            { parent: this, dependsOn: [node, drain] },
        );
        const app = remoteStep(
            `${name}-app`,
            { connection, script: appScript },
            { parent: this, dependsOn: [pm2, appSecrets, appUpload.copy, drain, ...args.dbReady] },
        );
        this.admitStep = remoteStep(
            `${name}-admit`,
            { connection: args.lb.connection, script: member("admit") },
            { parent: this, dependsOn: [app, args.lb.nginxConf] },
        );

        this.nodeName = pulumi.output(name);
        this.address = pulumi.output(args.address);
        this.port = pulumi.output(port);
        this.registerOutputs({ nodeName: this.nodeName, address: this.address, port: this.port });
    }
}

/**
 * A cordoned server keeps what it has: every step on the Pi ignores new inputs, so a dead
 * or suspect server never blocks a change elsewhere. Only its drain and admit steps (on
 * the load balancer) follow the config, to keep it out of the round-robin.
 */
function withCordon(name: string, cordon: boolean, opts?: pulumi.ComponentResourceOptions): pulumi.ComponentResourceOptions | undefined {
    if (!cordon) return opts;
    const keep: pulumi.ResourceTransformation = (a) => {
        if (a.type.startsWith("pi-cluster:") || LB_STEPS.some((step) => a.name === `${name}-${step}`)) return undefined;
        return { props: a.props, opts: pulumi.mergeOptions(a.opts, { ignoreChanges: ["*"] }) };
    };
    return { ...opts, transformations: [...(opts?.transformations ?? []), keep] };
}
