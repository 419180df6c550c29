// A MariaDB Pi, in one of two roles. The database: MariaDB with a rendered config, secure
// defaults, the app's database and user (granted per web-server address), the app's schema
// migrations and its backups. A read replica (replicaOf): the same MariaDB, read-only, seeded
// from a backup stream of the database and following it by GTID. One component for both, so
// promoting a replica is a change of its role: its steps update in place.
import * as fs from "fs";
import * as path from "path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { Host, HostArgs, hostConnection } from "./host";
import { renderDbClients, renderReplicaClient, replicaClientFile } from "./render/firewall";
import {
    BACKUP_KINDS, backupToolText, backupUnitName, BackupSchedule, PUBLIC_KEY_MARK, publicKeyOf, renderBackupService, renderBackupTimer, renderDbBackupEnv,
    restoreToolText,
} from "./render/backup";
import {
    maxConnections, renderMariadbConfig, renderMaxConnections, renderRequireSecureTransport, renderSemiSyncConfig, replicaServerId, semiSyncSettings,
} from "./render/mariadb";
import { parseTlsStepOutput, tlsRenewalVars } from "./render/tls";
import { dropInPath, renderRestartDropIn } from "./render/systemd";
import { FileText, fileText, renderScript } from "./render/shell";
import { knownHostsName } from "./render/sshd";
import { Connection, remoteStep, withReapply } from "./remote";
import {
    BACKUP_ENV, BACKUP_KEY, BACKUP_KNOWN_HOSTS, BACKUP_STATE_DIR, BACKUP_TOOL, DB_CLIENTS_FILE, DB_NAME, DB_USER, FIREWALL_RULESET, REPLICA_DIR,
    REPLICA_PRIMARY_CA, REPLICA_STATE_DIR, REPL_USER, REQUIRE_TLS_CNF, RESTORE_TOOL, SEED_DIR, SEED_KEY, SEED_STREAM_TOOL, SEED_SUDOERS, SEED_USER, TLS_DIR,
} from "./constants";

/** What the app needs and nothing more: no DDL, no GRANT OPTION, no DROP. */
export const APP_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE";
export const MIGRATIONS_DIR = path.join(__dirname, "..", "assets", "app", "migrations");

/** The Pi (address, SSH, firewall: 3306 from the web servers only) plus what its role needs. */
export interface DatabaseArgs extends HostArgs {
    /** Web server addresses that get a database user and reach 3306. Required. */
    webAddresses: string[];
    /** Grants and the 3306 rule change only after these (the LB's config, which drains a removed server). Default none. */
    clientsAfter?: pulumi.Resource[];
    /** The app user's password (secret). Required. */
    password: pulumi.Input<string>;
    /** MariaDB port. */
    port: number;
    /** Connections each web server's pool may hold. */
    poolSize: number;
    /** Connections beyond the pools, for admin and backups. */
    connectionHeadroom: number;
    /** InnoDB buffer pool. */
    innodbBufferPoolSize: string;
    /** InnoDB redo log size. */
    innodbLogFileSize: string;
    /** Delete /var/lib/mysql when the stack is destroyed. */
    purgeDataOnDestroy: boolean;
    /** Backups: the binlog on, and timers that ship encrypted backups to the target. Default none (off). */
    backup?: DatabaseBackupArgs;
    /** The database has read replicas: the binlog on, and semi-sync waits for their acks. Default false. */
    hasReplicas?: boolean;
    /** How long a commit waits for a replica's ack (dbSemiSyncTimeoutMs; 0: never). Required. */
    semiSyncTimeoutMs: number;
    /** This Pi is a read replica of that database, not the database. Default none. */
    replicaOf?: ReplicaSource;
    /** The database's MariaDB server id (and GTID domain, unless 1). Default 1; a promoted replica keeps its own. */
    serverId?: number;
    /** A replica's reseed generation: a bump lets its step seed it again over the app's data. Default 0. */
    reseed?: number;
}

/** What decides a database Pi's static MariaDB config; scripts/promote renders the same text. */
export interface ServerCnfArgs {
    address: string;
    port: number;
    innodbBufferPoolSize: string;
    innodbLogFileSize: string;
    /** The binlog on (backups or replicas). */
    binlog: boolean;
    /** A replica (its server id from its address), or the database with `serverId`. */
    replica: boolean;
    serverId?: number;
}

/** The static MariaDB config of a database Pi in either role. */
export function serverCnf(a: ServerCnfArgs): string {
    return renderMariadbConfig({
        bindAddress: a.address,
        port: a.port,
        innodbBufferPoolSize: a.innodbBufferPoolSize,
        innodbLogFileSize: a.innodbLogFileSize,
        tls: { caPath: `${TLS_DIR}/ca.crt`, certPath: `${TLS_DIR}/server.crt`, keyPath: `${TLS_DIR}/server.key` },
        binlog: a.binlog,
        replica: a.replica ? { serverId: replicaServerId(a.address) } : undefined,
        serverId: a.serverId,
    });
}

/** The database a replica follows, as the replica's steps need it. */
export interface ReplicaSource {
    name: string;
    address: string;
    /** Its MariaDB port and SSH port, and its pinned SSH host key. */
    port: number;
    sshPort: number;
    hostKey: string;
    /** Its SSH connection: the replica's source step runs there. */
    connection: pulumi.Output<Connection>;
    /** The CA of its MariaDB certificate. */
    caCertificate: pulumi.Output<string>;
    /** The replication user's password (secret). */
    replPassword: pulumi.Output<string>;
    /** How long a replica's step waits for it to catch up. */
    catchUpSeconds: number;
    /** The database's steps after which it serves (MariaDB with its binlog, its users). */
    after: pulumi.Resource[];
}

export const SEED_KEY_MARK = "SEED_PUBLIC_KEY";

/** The seeding account's forced command: a mariadb-backup of the database to stdout. */
export function renderSeedStream(): string {
    return `#!/bin/sh
# Managed by pi-cluster: a mariadb-backup of this database to stdout, for a read replica's
# seeding (the forced command of ${SEED_USER}). It takes no lock on the app's writes.
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mariadb-backup --backup --user=root --stream=mbstream --target-dir="$dir" 2>/var/log/pi-cluster-seed.log
`;
}

export function renderSeedSudoers(): string {
    return `# Managed by pi-cluster: the seeding account runs the stream as root, and nothing else.
${SEED_USER} ALL=(root) NOPASSWD: ${SEED_STREAM_TOOL}
`;
}

/** What the database Pi needs to back itself up; the defaults live in components/config.ts. */
export interface DatabaseBackupArgs extends BackupSchedule {
    /** The age recipient backups are encrypted to. Required. */
    agePublicKey: string;
    /** The target: its address, SSH port, pinned host key and account. Required. */
    target: { address: string; sshPort: number; hostKey: string; user: string };
}

/** Packages the backup tool needs on the database Pi. */
export const BACKUP_PACKAGES = ["mariadb-backup", "age", "zstd", "openssh-client"];

/**
 * What the base step installs on the database and on every replica, the same list for both,
 * so a promotion leaves each Pi's base step as it is: MariaDB, its backup tool and ssh (a
 * replica's seeding stream, the database's source step), openssl (the TLS step), and with
 * backups on, what the backup tool needs.
 */
export function databasePackages(backups: boolean): string[] {
    return [...new Set(["mariadb-server", "mariadb-backup", "openssh-client", "openssl", ...(backups ? BACKUP_PACKAGES : [])])];
}

/**
 * Reads assets/app/migrations/NNN_name.sql in order, as the db-migrate script's variables:
 * MIGRATIONS, the versions, and MIGRATION_<i>_SQL, the text of the i-th.
 */
export function readMigrations(dir = MIGRATIONS_DIR): Record<string, string[] | FileText> {
    const files = fs
        .readdirSync(dir)
        .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
        .sort();
    return {
        MIGRATIONS: files.map((f) => f.replace(/\.sql$/, "")),
        ...Object.fromEntries(files.map((f, i) => [`MIGRATION_${i}_SQL`, fileText(fs.readFileSync(path.join(dir, f), "utf8"))])),
    };
}

export class Database extends pulumi.ComponentResource {
    public readonly address: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    public readonly dbName: pulumi.Output<string>;
    public readonly dbUser: pulumi.Output<string>;
    /** The CA (PEM) that signed MariaDB's certificate: web servers verify the server against it. */
    public readonly caCertificate: pulumi.Output<string>;
    /** The DNS name in MariaDB's certificate (this Pi's name), which the web servers check. */
    public readonly serverName: pulumi.Output<string>;
    /** The database Pi's SSH public key for the backup target (made on the Pi; only this half travels). Undefined when backups are off. */
    public readonly backupPublicKey?: pulumi.Output<string>;
    /** Steps after which the app can connect: MariaDB runs, the user exists, the schema is migrated. */
    public readonly ready: pulumi.Resource[];
    /** A replica's source step, which runs on the database; undefined for the database. */
    public readonly sourceStep?: pulumi.Resource;

    constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:db:Database", name, {}, withReapply(args.reapply, opts));
        this.nodeNameForSteps = name;
        this.webAddresses = args.webAddresses;
        const port = args.port;
        const host = new Host(name, args, { parent: this });
        const connection = hostConnection(args);
        const conns = maxConnections(args.webAddresses.length, args.poolSize, args.connectionHeadroom);
        const semiSync = semiSyncSettings({ role: args.replicaOf ? "replica" : "database", hasReplicas: args.hasReplicas ?? false, timeoutMs: args.semiSyncTimeoutMs });
        this.connection = connection;

        const tls = remoteStep(
            `${name}-tls`,
            {
                connection,
                script: pulumi.output(args.address).apply((address) =>
                    renderScript("db-tls", {
                        STEP: `${name}-tls`,
                        TLS_DIR,
                        ...tlsRenewalVars({ step: `${name}-tls`, name, address, keyOwner: "mysql:mysql", service: "mariadb", statusFile: "" }),
                    }),
                ),
            },
            { parent: this, dependsOn: host.ready },
        );

        const mariadb = remoteStep(
            `${name}-mariadb`,
            {
                connection,
                script: pulumi.output(args.address).apply((address) =>
                    renderScript("db-mariadb", {
                        STEP: `${name}-mariadb`,
                        SERVER_CNF_TEXT: fileText(
                            serverCnf({
                                address,
                                port,
                                innodbBufferPoolSize: args.innodbBufferPoolSize,
                                innodbLogFileSize: args.innodbLogFileSize,
                                binlog: args.backup !== undefined || (args.hasReplicas ?? false),
                                replica: args.replicaOf !== undefined,
                                serverId: args.serverId,
                            }),
                        ),
                        CONN_CNF_TEXT: fileText(renderMaxConnections(conns)),
                        MAX_CONNECTIONS: conns,
                        SEMISYNC_CNF_TEXT: fileText(renderSemiSyncConfig(semiSync)),
                        SEMISYNC: semiSync.map(([k, v]) => `${k}=${v}`),
                        PURGE_ON_DELETE: args.purgeDataOnDestroy,
                        DROPIN: dropInPath("mariadb"),
                        DROPIN_TEXT: fileText(renderRestartDropIn("mariadb")),
                    }),
                ),
            },
            // The certificate exists before the config that names it restarts MariaDB (once).
            { parent: this, dependsOn: [...host.ready, tls] },
        );

        this.address = pulumi.output(args.address);
        this.port = pulumi.output(port);
        this.dbName = pulumi.output(DB_NAME);
        this.dbUser = pulumi.output(DB_USER);
        this.caCertificate = pulumi.unsecret(tls.stdout).apply((out) => parseTlsStepOutput(out, `${name}-tls`).caCertificate);
        this.serverName = pulumi.output(name);
        if (args.replicaOf) {
            this.ready = [this.replicaSteps(name, args, args.replicaOf, connection, mariadb)];
            this.registerOutputs({ address: this.address, port: this.port, caCertificate: this.caCertificate, serverName: this.serverName });
            return;
        }

        const appDb = remoteStep(
            `${name}-app-db`,
            {
                connection,
                secret: true,
                script: pulumi.secret(
                    pulumi.output(args.password).apply((password) =>
                        renderScript("db-app", {
                            STEP: `${name}-app-db`,
                            DB_NAME,
                            DB_USER,
                            DB_PASSWORD: password,
                            WEB_ADDRESSES: [...args.webAddresses].sort(),
                            PRIVILEGES: APP_PRIVILEGES,
                            MONITOR: args.hasReplicas ?? false,
                            CLIENTS_FILE: DB_CLIENTS_FILE,
                            CLIENTS_TEXT: fileText(renderDbClients(args.webAddresses, port)),
                            RULESET: FIREWALL_RULESET,
                        }),
                    ),
                ),
            },
            { parent: this, dependsOn: [mariadb, ...(args.clientsAfter ?? [])] },
        );

        const migrate = remoteStep(
            `${name}-migrate`,
            {
                connection,
                script: renderScript("db-migrate", { STEP: `${name}-migrate`, DB_NAME, ...readMigrations() }),
            },
            { parent: this, dependsOn: [appDb] },
        );

        if (args.backup) {
            const b = args.backup;
            const units = BACKUP_KINDS.flatMap((k) => [
                { name: `${backupUnitName(k)}.service`, text: renderBackupService(k) },
                { name: `${backupUnitName(k)}.timer`, text: renderBackupTimer(k, b) },
            ]);
            const known = knownHostsName(b.target.address, b.target.sshPort);
            const step = remoteStep(
                `${name}-backup`,
                {
                    connection,
                    script: renderScript("db-backup", {
                        STEP: `${name}-backup`,
                        PACKAGES: BACKUP_PACKAGES,
                        TOOL: BACKUP_TOOL,
                        TOOL_TEXT: fileText(backupToolText()),
                        RESTORE_TOOL,
                        RESTORE_TEXT: fileText(restoreToolText()),
                        ENV_FILE: BACKUP_ENV,
                        ENV_TEXT: fileText(renderDbBackupEnv({ targetHost: b.target.address, targetPort: b.target.sshPort, targetUser: b.target.user, agePublicKey: b.agePublicKey, dbName: DB_NAME })),
                        STATE_DIR: BACKUP_STATE_DIR,
                        KEY: BACKUP_KEY,
                        KNOWN_HOSTS: BACKUP_KNOWN_HOSTS,
                        KNOWN_HOSTS_TEXT: fileText(`${known} ${b.target.hostKey}\n`),
                        UNIT_NAMES: units.map((u) => u.name),
                        ...Object.fromEntries(units.map((u, i) => [`UNIT_${i}_TEXT`, fileText(u.text)])),
                        TIMERS: BACKUP_KINDS.map((k) => `${backupUnitName(k)}.timer`),
                        FIRST_FULL: `${backupUnitName("full")}.service`,
                        PUBLIC_KEY_MARK,
                    }),
                },
                // After the app's schema: the first backup holds it.
                { parent: this, dependsOn: [migrate] },
            );
            this.backupPublicKey = this.printedKey(step, `${name}-backup`, PUBLIC_KEY_MARK);
        }

        this.ready = [appDb, migrate];
        this.registerOutputs({
            address: this.address,
            port: this.port,
            dbName: this.dbName,
            dbUser: this.dbUser,
            caCertificate: this.caCertificate,
            serverName: this.serverName,
        });
    }

    private readonly connection: pulumi.Output<Connection>;
    private readonly nodeNameForSteps: string;
    private readonly webAddresses: string[];

    /** The SSH public key a step printed after `mark` (made on the Pi; only this half travels). */
    private printedKey(step: command.remote.Command, stepName: string, mark: string): pulumi.Output<string> {
        return step.stdout.apply((out) => {
            const key = publicKeyOf(out, mark);
            if (!key) throw new pulumi.ResourceError(`${stepName}: printed no "${mark} ssh-ed25519 ..." line`, this);
            return key;
        });
    }

    /**
     * A replica's steps: its seeding key (here), what lets it in on the database (there: the
     * replication user from this address, 3306, the seeding account's line), then the
     * replication itself (here), which seeds it when it is new and waits until it caught up.
     * Removing a replica deletes them after the web servers stopped reading from it.
     */
    private replicaSteps(name: string, args: DatabaseArgs, src: ReplicaSource, connection: pulumi.Output<Connection>, mariadb: pulumi.Resource): pulumi.Resource {
        const key = remoteStep(
            `${name}-seed-key`,
            { connection, script: renderScript("db-replica-key", { STEP: `${name}-seed-key`, KEY: SEED_KEY, SEED_KEY_MARK }) },
            { parent: this, dependsOn: [mariadb] },
        );
        const publicKey = this.printedKey(key, `${name}-seed-key`, SEED_KEY_MARK);
        const source = remoteStep(
            `${name}-source`,
            {
                connection: src.connection,
                secret: true,
                script: pulumi.secret(
                    pulumi.all([src.replPassword, publicKey, pulumi.output(args.address)]).apply(([password, seedKey, address]) =>
                        renderScript("db-replica-source", {
                            STEP: `${name}-source`,
                            REPL_USER,
                            REPL_PASSWORD: password,
                            REPLICA_NAME: name,
                            REPLICA_ADDRESS: address,
                            CLIENT_FILE: replicaClientFile(name),
                            CLIENT_TEXT: fileText(renderReplicaClient(address, src.port)),
                            RULESET: FIREWALL_RULESET,
                            SEED_USER,
                            SEED_PUBLIC_KEY: seedKey,
                            STREAM_TOOL: SEED_STREAM_TOOL,
                            STREAM_TEXT: fileText(renderSeedStream()),
                            SUDOERS: SEED_SUDOERS,
                            SUDOERS_TEXT: fileText(renderSeedSudoers()),
                        }),
                    ),
                ),
            },
            { parent: this, dependsOn: src.after },
        );
        (this as { sourceStep?: pulumi.Resource }).sourceStep = source;
        const known = knownHostsName(src.address, src.sshPort);
        return remoteStep(
            `${name}-replica`,
            {
                connection,
                secret: true,
                script: pulumi.secret(
                    pulumi.all([src.replPassword, src.caCertificate]).apply(([password, ca]) =>
                        renderScript("db-replica", {
                            STEP: `${name}-replica`,
                            PRIMARY_ADDRESS: src.address,
                            PRIMARY_PORT: src.port,
                            PRIMARY_SSH_PORT: src.sshPort,
                            KNOWN_HOSTS: `${REPLICA_DIR}/known_hosts`,
                            KNOWN_HOSTS_TEXT: fileText(`${known} ${src.hostKey}\n`),
                            PRIMARY_CA: REPLICA_PRIMARY_CA,
                            PRIMARY_CA_TEXT: fileText(ca),
                            SEED_USER,
                            KEY: SEED_KEY,
                            REPL_USER,
                            REPL_PASSWORD: password,
                            CATCH_UP_SECONDS: src.catchUpSeconds,
                            NAME: name,
                            DB_NAME,
                            RESEED: args.reseed ?? 0,
                            RESEED_FILE: `${REPLICA_STATE_DIR}/reseed`,
                            SEED_DIR,
                            REPLICA_STATE_DIR,
                        }),
                    ),
                ),
            },
            { parent: this, dependsOn: [source, mariadb] },
        );
    }

    /**
     * From now on MariaDB refuses connections without TLS, and the app user's grants require
     * it. Runs after `clients` (every web server's admit step): on a cluster that ran without
     * TLS, each web server has rolled to TLS before the database insists on it. It names the
     * web servers, so a scale-out gives the new server's user REQUIRE SSL once it serves.
     */
    requireTls(clients: pulumi.Resource[]): pulumi.Resource {
        return remoteStep(
            `${this.nodeNameForSteps}-require-tls`,
            {
                connection: this.connection,
                script: renderScript("db-require-tls", {
                    STEP: `${this.nodeNameForSteps}-require-tls`,
                    DB_USER,
                    WEB_ADDRESSES: [...this.webAddresses].sort(),
                    REQUIRE_TEXT: fileText(renderRequireSecureTransport()),
                    REQUIRE_CNF: REQUIRE_TLS_CNF,
                }),
            },
            { parent: this, dependsOn: [...this.ready, ...clients] },
        );
    }
}
