// The load-balancer Pi: nginx from Debian doing round-robin over the web servers,
// proxying /api/, and serving the dashboard.
import * as pulumi from "@pulumi/pulumi";
import { Artifact } from "./artifacts";
import { Host, HostArgs, hostConnection } from "./host";
import { ApiRateLimit, Backend, HTTPS_PORT, renderClusterJson, renderNginxSite, renderPlaceholderPage, WebBackend } from "./render/nginx";
import { parseTlsStepOutput, tlsRenewalVars } from "./render/tls";
import { dropInPath, renderRestartDropIn } from "./render/systemd";
import { fileText, renderScript } from "./render/shell";
import { Connection, remoteStep, upload, withReapply } from "./remote";
import { ALERTMANAGER_PORT, CLUSTER_INTERNAL_JSON, CLUSTER_JSON, LEASE_DIR, LEASE_UNIT_PREFIX, NGINX_CLUSTER_DIR, TLS_DIR, TLS_STATUS_JSON, UPSTREAM_MEMBERS_DIR, WWW_DIR } from "./constants";

/** What the nginx step installs; curl: the drain and admit steps probe through nginx and the web servers with it. */
export const NGINX_PACKAGES = ["nginx", "curl"];

/** HTTPS on the load balancer (README, "HTTPS"). */
export interface LoadBalancerTls {
    /** "generated": a cluster CA on the Pi issues the certificate; "supplied": certificate and privateKey. */
    mode: "generated" | "supplied";
    /** The certificate chain in PEM, server certificate first. Required with "supplied". */
    certificate?: string;
    /** Its private key (secret). Required with "supplied". */
    privateKey?: pulumi.Input<string>;
    /** httpPort answers 301 to https. */
    redirectHttp: boolean;
    /** Send Strict-Transport-Security. */
    hsts: boolean;
}

/** The Pi (address, SSH, firewall: 80/443 from anywhere) plus what its role needs. */
export interface LoadBalancerArgs extends HostArgs {
    /**
     * The web servers, for the per-node routes and cluster.json. Required, at least one.
     * Their round-robin membership is not here: each WebServer drains and admits itself.
     */
    backends: WebBackend[];
    /** The database, for cluster.json. Required. */
    database: pulumi.Input<Backend>;
    /** The app's port on the web servers. */
    appPort: number;
    /** nginx's port. */
    httpPort: number;
    /** Who may reach stub_status and the per-node routes. Required. */
    managementCidr: string;
    /** The dashboard build (a placeholder page is served until it is unpacked). Required. */
    dashboard: Artifact;
    /** Per-client-address limits on /api/ (rate, burst, requests in flight). Required. */
    apiRateLimit: pulumi.Input<ApiRateLimit>;
    /** HTTPS: certificate source, redirect, HSTS. */
    tls: LoadBalancerTls;
    /** Dashboard refresh period. */
    refreshSeconds: number;
    /** Dashboard per-request timeout. */
    requestTimeoutMs: number;
    /**
     * Alertmanager runs on this Pi (monitoring on): nginx serves its alerts as /internal/alerts,
     * and cluster.json says `monitoring.enabled`. Required.
     */
    alertmanager: boolean;
}

export class LoadBalancer extends pulumi.ComponentResource {
    public readonly nodeName: pulumi.Output<string>;
    public readonly address: pulumi.Output<string>;
    public readonly url: pulumi.Output<string>;
    /** The site over HTTPS, which it always serves (the cluster CA's or a supplied certificate). */
    public readonly httpsUrl: pulumi.Output<string>;
    /** The CA clients trust for https: the cluster CA, or the supplied chain's last certificate. */
    public readonly caCertificate: pulumi.Output<string>;
    /** When the server certificate expires (ISO 8601 UTC), as of the last `up`; /tls.json has it live. */
    public readonly certificateExpiry: pulumi.Output<string>;
    /** The site step: web servers join the round-robin after it; on a scale-in it drains the removed ones. */
    public readonly nginxConf: pulumi.Resource;

    constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:lb:LoadBalancer", name, {}, withReapply(args.reapply, opts));
        const httpPort = args.httpPort;
        // The TLS step's openssl with nginx's packages, in the base step's one apt run.
        const host = new Host(name, { ...args, packages: [...NGINX_PACKAGES, "openssl", ...(args.packages ?? [])] }, { parent: this });
        const connection = hostConnection(args);

        const nginx = remoteStep(
            `${name}-nginx`,
            {
                connection,
                script: renderScript("lb-nginx", {
                    STEP: `${name}-nginx`,
                    PACKAGES: NGINX_PACKAGES,
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

        const tlsStep = this.tlsStep(name, args, connection, [nginx]);

        const site = pulumi
            .all([args.address, args.database, args.apiRateLimit])
            .apply(([address, database, apiRateLimit]) => {
                const web = args.backends;
                const clusterJson = {
                    loadBalancer: { name, address },
                    webServers: web,
                    database,
                    refreshSeconds: args.refreshSeconds,
                    requestTimeoutMs: args.requestTimeoutMs,
                    monitoring: args.alertmanager,
                };
                return renderScript("lb-nginx-conf", {
                    STEP: `${name}-nginx-conf`,
                    SITE_TEXT: fileText(
                        renderNginxSite({
                            backends: web,
                            appPort: args.appPort,
                            httpPort,
                            managementCidr: args.managementCidr,
                            staticRoot: `${WWW_DIR}/current`,
                            clusterJsonPath: CLUSTER_JSON,
                            internalClusterJsonPath: CLUSTER_INTERNAL_JSON,
                            apiRateLimit,
                            alertmanagerPort: args.alertmanager ? ALERTMANAGER_PORT : undefined,
                            tls: {
                                certificatePath: `${TLS_DIR}/server.crt`,
                                keyPath: `${TLS_DIR}/server.key`,
                                redirectHttp: args.tls.redirectHttp,
                                hsts: args.tls.hsts,
                                statusPath: TLS_STATUS_JSON,
                            },
                        }),
                    ),
                    CLUSTER_JSON_TEXT: fileText(renderClusterJson({ ...clusterJson, internal: false })),
                    CLUSTER_JSON,
                    CLUSTER_INTERNAL_JSON_TEXT: fileText(renderClusterJson({ ...clusterJson, internal: true })),
                    CLUSTER_INTERNAL_JSON,
                    NODES: web.map((w) => w.name),
                    NGINX_CLUSTER_DIR,
                    MEMBERS_DIR: UPSTREAM_MEMBERS_DIR,
                    LEASE_DIR,
                    LEASE_UNIT_PREFIX,
                });
            });
        // Depends on no web server: a dead one never blocks a change of the site.
        this.nginxConf = remoteStep(`${name}-nginx-conf`, { connection, script: site }, { parent: this, dependsOn: [nginx, tlsStep] });

        const tls = pulumi.unsecret(tlsStep.stdout).apply((out) => parseTlsStepOutput(out, `${name}-tls`));
        this.caCertificate = tls.caCertificate;
        this.certificateExpiry = tls.certificateExpiry;
        this.nodeName = pulumi.output(name);
        this.address = pulumi.output(args.address);
        this.url = pulumi.interpolate`http://${args.address}${httpPort === 80 ? "" : `:${httpPort}`}`;
        this.httpsUrl = pulumi.interpolate`https://${args.address}${HTTPS_PORT === 443 ? "" : `:${HTTPS_PORT}`}`;
        this.registerOutputs({
            nodeName: this.nodeName,
            address: this.address,
            url: this.url,
            httpsUrl: this.httpsUrl,
            caCertificate: this.caCertificate,
            certificateExpiry: this.certificateExpiry,
        });
    }

    /**
     * The certificate step. Generated: the script carries no secret. Supplied: it carries
     * the key, so it is a secret and its stdout (public: the CA and the expiry) is not logged.
     */
    private tlsStep(name: string, args: LoadBalancerArgs, connection: pulumi.Output<Connection>, after: pulumi.Resource[]) {
        const step = `${name}-tls`;
        const common = { STEP: step, TLS_DIR, STATUS_FILE: TLS_STATUS_JSON };
        if (args.tls.mode === "generated") {
            const script = pulumi.output(args.address).apply((address) =>
                renderScript("lb-tls", {
                    ...common,
                    MODE: "generated",
                    ...tlsRenewalVars({ step, name, address, keyOwner: "root:root", service: "nginx", statusFile: TLS_STATUS_JSON }),
                }),
            );
            return remoteStep(step, { connection, script }, { parent: this, dependsOn: after });
        }
        const { certificate, privateKey } = args.tls;
        if (certificate === undefined || privateKey === undefined) {
            throw new pulumi.ResourceError(`tls: mode "supplied" needs certificate and privateKey, got ${certificate === undefined ? "no certificate" : "no privateKey"}`, this);
        }
        const script = pulumi.secret(
            pulumi.output(privateKey).apply((key) =>
                renderScript("lb-tls", { ...common, MODE: "supplied", CERT_TEXT: fileText(certificate), KEY_TEXT: fileText(key) }),
            ),
        );
        return remoteStep(step, { connection, secret: true, script }, { parent: this, dependsOn: after });
    }
}
