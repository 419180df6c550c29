// What a web server runs: PM2's ecosystem file, its systemd unit and the app's env file.
import { SANDBOX } from "./systemd";
import { APP_DIR, APP_ENV_FILE, APP_NAME, APP_SECRETS_FILE, APP_USER, ECOSYSTEM_FILE, PM2_DIR, PM2_HOME } from "../constants";

/** The seed's PM2 max_memory_restart: PM2 restarts the app past this resident size. */
export const APP_MAX_MEMORY_MB = 400;

export interface EcosystemArgs {
    port: number;
}

/** The seed's PM2 settings. DB settings come from the env files, never from here. */
export function renderEcosystem(a: EcosystemArgs): string {
    const app = {
        name: APP_NAME,
        script: `${APP_DIR}/current/dist/index.js`,
        cwd: `${APP_DIR}/current`,
        instances: 1,
        exec_mode: "fork",
        autorestart: true,
        max_memory_restart: `${APP_MAX_MEMORY_MB}M`,
        node_args: [`--env-file=${APP_ENV_FILE}`, `--env-file=${APP_SECRETS_FILE}`],
        // The app sends "ready" once listening, and drains on SIGINT within 10 s.
        wait_ready: true,
        listen_timeout: 15000,
        kill_timeout: 12000,
        env: { NODE_ENV: "production", PORT: String(a.port) },
    };
    return `// Managed by pi-cluster; rendered by components/render/app.ts.
module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};
`;
}


/**
 * PM2 as a systemd service (the shape `pm2 startup systemd` writes), so it survives a
 * reboot, in a sandbox: read-only system, no capabilities, no devices, no namespaces, and
 * the system calls of an ordinary service. Not MemoryDenyWriteExecute: V8's JIT compiler
 * needs memory that is writable and executable.
 */
export function renderPm2Unit(): string {
    const pm2 = `${PM2_DIR}/current/node_modules/pm2/bin/pm2`;
    if (!PM2_HOME.startsWith("/var/lib/")) throw new Error(`PM2_HOME ${PM2_HOME} must be under /var/lib (a StateDirectory=)`);
    return `# Managed by pi-cluster; rendered by components/render/app.ts.
[Unit]
Description=pi-cluster web app under PM2
Documentation=https://pm2.keymetrics.io/
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
User=${APP_USER}
Group=${APP_USER}
Environment=PM2_HOME=${PM2_HOME}
PIDFile=${PM2_HOME}/pm2.pid
LimitNOFILE=65536
ExecStart=/usr/bin/node ${pm2} start ${ECOSYSTEM_FILE}
ExecReload=/usr/bin/node ${pm2} reload ${ECOSYSTEM_FILE} --update-env
ExecStop=/usr/bin/node ${pm2} kill
Restart=on-failure
RestartSec=2

# Sandbox (components/render/systemd.ts). The one writable path is PM2_HOME: sockets, pid
# file, logs. ProtectSystem=strict leaves a StateDirectory= writable, and systemd creates it
# for the user on a fresh Pi. PM2 talks to its daemon over unix sockets there; the app
# serves and reaches MariaDB over IP.
StateDirectory=${PM2_HOME.slice("/var/lib/".length)}
StateDirectoryMode=0700
CapabilityBoundingSet=
AmbientCapabilities=
PrivateTmp=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
${SANDBOX}

[Install]
WantedBy=multi-user.target
`;
}

export interface AppEnvArgs {
    nodeName: string;
    dbHost: string;
    dbPort: number;
    dbName: string;
    dbUser: string;
    dbPoolSize: number;
    corsOrigins: string[];
    /** The CA file MariaDB's certificate is checked against, and the name it must carry. */
    dbTls: { caFile: string; serverName: string };
    /** The database's read replicas, each checked against its own name (its CA is in the same file). Default none. */
    dbReplicas?: { name: string; address: string; port: number }[];
    /** The lag past which a replica leaves the read set. Default the app's (5). */
    dbReplicaMaxLagSeconds?: number;
    /** The port of the app's metrics listener, for Prometheus (monitoring on). Default none: no listener. */
    metricsPort?: number;
}

function envLine(key: string, value: string): string {
    if (/[\n\r]/.test(value)) throw new Error(`env value for ${key} must be one line`);
    return `${key}=${JSON.stringify(value)}`;
}

/**
 * The app's settings (node --env-file syntax). No secret: a preview shows a changed setting
 * as its line. Installed 0640, readable by the app's user.
 */
export function renderAppEnv(a: AppEnvArgs): string {
    return (
        [
            "# Managed by pi-cluster. The app's settings; its secrets are in " + APP_SECRETS_FILE + ".",
            envLine("NODE_NAME", a.nodeName),
            envLine("DB_HOST", a.dbHost),
            envLine("DB_PORT", String(a.dbPort)),
            envLine("DB_NAME", a.dbName),
            envLine("DB_USER", a.dbUser),
            envLine("DB_POOL_SIZE", String(a.dbPoolSize)),
            envLine("DB_SSL_CA", a.dbTls.caFile),
            envLine("DB_SSL_SERVERNAME", a.dbTls.serverName),
            // Only with replicas, so a cluster without them keeps its settings as they were.
            ...(a.dbReplicas && a.dbReplicas.length > 0
                ? [
                      envLine("DB_REPLICAS", a.dbReplicas.map((r) => `${r.name}@${r.address}:${r.port}`).join(",")),
                      envLine("DB_REPLICA_MAX_LAG_SECONDS", String(a.dbReplicaMaxLagSeconds ?? 5)),
                  ]
                : []),
            envLine("CORS_ORIGINS", a.corsOrigins.join(",")),
            // Only with monitoring, so a cluster without it keeps its settings as they were.
            ...(a.metricsPort !== undefined ? [envLine("METRICS_PORT", String(a.metricsPort))] : []),
        ].join("\n") + "\n"
    );
}

export interface AppSecretsArgs {
    dbPassword: string;
    /** The bearer token API writes need. */
    apiWriteToken: string;
}

/** The app's secrets, read by node as a second --env-file. Installed 0600, owned by the app's user. */
export function renderAppSecrets(a: AppSecretsArgs): string {
    return (
        [
            "# Managed by pi-cluster. Secrets: mode 0600, owner " + APP_USER + ".",
            envLine("DB_PASSWORD", a.dbPassword),
            envLine("API_WRITE_TOKEN", a.apiWriteToken),
        ].join("\n") + "\n"
    );
}
