// A web-server Pi: Node.js from Debian, the pinned PM2 under systemd, and the app,
// built on the deploying machine and shipped as an artifact.
import * as pulumi from "@pulumi/pulumi";
import { Artifact } from "./artifacts";
import { Host, HostArgs, hostConnection } from "./host";
import {
    APP_DIR, APP_ENV_FILE, APP_HOME, APP_USER, ECOSYSTEM_FILE, PM2_DIR,
    renderAppEnv, renderEcosystem, renderPm2Unit,
} from "./render/app";
import { b64, renderScript } from "./render/shell";
import { remoteStep, upload } from "./remote";

/** The Pi (address, SSH, firewall: the app port from the LB only) plus what its role needs. */
export interface WebServerArgs extends HostArgs {
    /** The built app tarball. Required. */
    app: Artifact;
    /** The built PM2 tarball. Required. */
    pm2: Artifact;
    /** The app's port. Default 3000. */
    port?: number;
    /** Database address, from the Database component. Required. */
    dbHost: pulumi.Input<string>;
    /** Database port. Default 3306. */
    dbPort?: pulumi.Input<number>;
    /** Database name. Required. */
    dbName: pulumi.Input<string>;
    /** Database user. Required. */
    dbUser: pulumi.Input<string>;
    /** Database password (secret). Required. */
    dbPassword: pulumi.Input<string>;
    /** The app starts only after these (the DB user and schema). Required. */
    dbReady: pulumi.Resource[];
    /** Pool size per web server. Default 10. */
    poolSize?: number;
    /** CORS origins the app allows. Default none (same origin only). */
    corsOrigins?: string[];
    /** The previous web server's app step: releases roll one server at a time. Default none. */
    rollAfter?: pulumi.Resource;
}

export class WebServer extends pulumi.ComponentResource {
    public readonly nodeName: pulumi.Output<string>;
    public readonly address: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    /** The step that (re)starts the app and waits for /health; the LB waits on it. */
    public readonly appStep: pulumi.Resource;

    constructor(name: string, args: WebServerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:web:WebServer", name, {}, opts);
        const port = args.port ?? 3000;
        const host = new Host(name, args, { parent: this });
        const connection = hostConnection(args);

        const node = remoteStep(
            `${name}-node`,
            {
                connection,
                script: renderScript("web-node", { STEP: `${name}-node`, APP_USER, APP_HOME }),
            },
            { parent: this, dependsOn: host.ready },
        );

        const pm2Upload = upload(
            `${name}-pm2-upload`,
            { connection, kind: "pm2", file: args.pm2.path, sha: args.pm2.sha },
            { parent: this, dependsOn: host.ready },
        );
        const pm2 = remoteStep(
            `${name}-pm2`,
            {
                connection,
                script: renderScript("web-pm2", {
                    STEP: `${name}-pm2`,
                    ARTIFACT: pm2Upload.remotePath,
                    PM2_DIR,
                    UNIT_B64: b64(renderPm2Unit()),
                }),
            },
            { parent: this, dependsOn: [node, pm2Upload.copy] },
        );

        const appUpload = upload(
            `${name}-app-upload`,
            { connection, kind: "app", file: args.app.path, sha: args.app.sha },
            { parent: this, dependsOn: host.ready },
        );
        const env = pulumi
            .all([args.dbHost, args.dbPort ?? 3306, args.dbName, args.dbUser, args.dbPassword])
            .apply(([dbHost, dbPort, dbName, dbUser, dbPassword]) =>
                renderAppEnv({
                    nodeName: name,
                    dbHost,
                    dbPort,
                    dbName,
                    dbUser,
                    dbPassword,
                    dbPoolSize: args.poolSize ?? 10,
                    corsOrigins: args.corsOrigins ?? [],
                }),
            );
        const app = remoteStep(
            `${name}-app`,
            {
                connection,
                secret: true,
                script: pulumi.secret(
                    env.apply((envText) =>
                        renderScript("web-app", {
                            STEP: `${name}-app`,
                            ARTIFACT: appUpload.remotePath,
                            APP_DIR,
                            APP_USER,
                            ENV_FILE: APP_ENV_FILE,
                            ENV_B64: b64(envText),
                            ECOSYSTEM_FILE,
                            ECOSYSTEM_B64: b64(renderEcosystem({ port })),
                            PORT: port,
                            HEALTH_TIMEOUT: 90,
                        }),
                    ),
                ),
            },
            {
                parent: this,
                dependsOn: [pm2, appUpload.copy, ...args.dbReady, ...(args.rollAfter ? [args.rollAfter] : [])],
            },
        );
        this.appStep = app;

        this.nodeName = pulumi.output(name);
        this.address = pulumi.output(args.address);
        this.port = pulumi.output(port);
        this.registerOutputs({ nodeName: this.nodeName, address: this.address, port: this.port });
    }
}
