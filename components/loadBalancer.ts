// The load-balancer Pi: nginx from Debian doing round-robin over the web servers,
// proxying /api/, and serving the dashboard.
import * as pulumi from "@pulumi/pulumi";
import { Artifact } from "./artifacts";
import { Host, HostArgs, hostConnection } from "./host";
import { ApiRateLimit, Backend, renderClusterJson, renderNginxSite, renderPlaceholderPage, WebBackend } from "./render/nginx";
import { dropInPath, renderRestartDropIn } from "./render/systemd";
import { fileText, renderScript } from "./render/shell";
import { remoteStep, upload, withReapply } from "./remote";

export const WWW_DIR = "/var/www/pi-cluster";
export const CLUSTER_JSON = "/var/lib/pi-cluster/cluster.json";
export const CLUSTER_INTERNAL_JSON = "/var/lib/pi-cluster/cluster-internal.json";

/** The Pi (address, SSH, firewall: 80/443 from anywhere) plus what its role needs. */
export interface LoadBalancerArgs extends HostArgs {
    /**
     * The web servers, for the per-node routes and cluster.json. Required, at least one.
     * Their round-robin membership is not here: each WebServer drains and admits itself.
     */
    backends: WebBackend[];
    /** The database, for cluster.json. Required. */
    database: pulumi.Input<Backend>;
    /** The app's port on the web servers. Default 3000. */
    appPort?: number;
    /** nginx's port. Default 80. */
    httpPort?: number;
    /** Who may reach stub_status and the per-node routes. Required. */
    managementCidr: string;
    /** The dashboard build (a placeholder page is served until it is unpacked). Required. */
    dashboard: Artifact;
    /** Per-client-address limits on /api/ (rate, burst, requests in flight). Required. */
    apiRateLimit: pulumi.Input<ApiRateLimit>;
    /** Dashboard refresh period. Default 10. */
    refreshSeconds?: number;
    /** Dashboard per-request timeout. Default 4000. */
    requestTimeoutMs?: number;
}

export class LoadBalancer extends pulumi.ComponentResource {
    public readonly nodeName: pulumi.Output<string>;
    public readonly address: pulumi.Output<string>;
    public readonly url: pulumi.Output<string>;
    /** The site step: web servers join the round-robin after it; on a scale-in it drains the removed ones. */
    public readonly nginxConf: pulumi.Resource;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:lb:LoadBalancer", name, {}, withReapply(args.reapply, opts));
        const httpPort = args.httpPort ?? 80;
        const host = new Host(name, args, { parent: this });
        const connection = hostConnection(args);

        const nginx = remoteStep(
            `${name}-nginx`,
            {
                connection,
                script: renderScript("lb-nginx", {
                    STEP: `${name}-nginx`,
                    WWW_DIR,
                    PLACEHOLDER_TEXT: fileText(renderPlaceholderPage()),
                    DROPIN: dropInPath("nginx"),
                    DROPIN_TEXT: fileText(renderRestartDropIn("nginx")),
                }),
            },
            { parent: this, dependsOn: host.ready },
        );

        const dashUpload = upload(
            `${name}-dashboard-upload`,
            { connection, hostKey: args.hostKey, kind: "dashboard", file: args.dashboard.path, sha: args.dashboard.sha },
            { parent: this, dependsOn: host.ready },
        );
        remoteStep(
            `${name}-dashboard`,
            {
                connection,
                script: renderScript("lb-dashboard", { STEP: `${name}-dashboard`, ARTIFACT: dashUpload.remotePath, WWW_DIR }),
            },
            { parent: this, dependsOn: [nginx, dashUpload.copy] },
        );

        const site = pulumi
            .all([args.address, args.database, args.apiRateLimit])
            .apply(([address, database, apiRateLimit]) => {
                const web = args.backends;
                const clusterJson = {
                    loadBalancer: { name, address },
                    webServers: web,
                    database,
                    refreshSeconds: args.refreshSeconds ?? 10,
                    requestTimeoutMs: args.requestTimeoutMs ?? 4000,
                };
                return renderScript("lb-nginx-conf", {
                    STEP: `${name}-nginx-conf`,
                    SITE_TEXT: fileText(
                        renderNginxSite({
                            backends: web,
                            appPort: args.appPort ?? 3000,
                            httpPort,
                            managementCidr: args.managementCidr,
                            staticRoot: `${WWW_DIR}/current`,
                            clusterJsonPath: CLUSTER_JSON,
                            internalClusterJsonPath: CLUSTER_INTERNAL_JSON,
                            apiRateLimit,
                        }),
                    ),
                    CLUSTER_JSON_TEXT: fileText(renderClusterJson({ ...clusterJson, internal: false })),
                    CLUSTER_JSON,
                    CLUSTER_INTERNAL_JSON_TEXT: fileText(renderClusterJson({ ...clusterJson, internal: true })),
                    CLUSTER_INTERNAL_JSON,
                    NODES: web.map((w) => w.name),
                });
            });
        // Depends on no web server: a dead one never blocks a change of the site.
        this.nginxConf = remoteStep(`${name}-nginx-conf`, { connection, script: site }, { parent: this, dependsOn: [nginx] });

        this.nodeName = pulumi.output(name);
        this.address = pulumi.output(args.address);
        this.url = pulumi.interpolate`http://${args.address}${httpPort === 80 ? "" : `:${httpPort}`}`;
        this.registerOutputs({ nodeName: this.nodeName, address: this.address, url: this.url });
    }
}
