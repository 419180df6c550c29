// The database Pi: MariaDB with a rendered config, secure defaults, the app's database
// and user (granted per web-server address), and the app's schema migrations.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Host, HostArgs, hostConnection } from "./host";
import { DB_CLIENTS_FILE, FIREWALL_RULESET, renderDbClients } from "./render/firewall";
import {
    BACKUP_ENV, BACKUP_KEY, BACKUP_KINDS, BACKUP_KNOWN_HOSTS, BACKUP_STATE_DIR, BACKUP_TOOL, backupToolText, backupUnitName, BackupSchedule,
    PUBLIC_KEY_MARK, publicKeyOf, renderBackupService, renderBackupTimer, renderDbBackupEnv, RESTORE_TOOL, restoreToolText,
} from "./render/backup";
import { maxConnections, renderMariadbConfig, renderMaxConnections } from "./render/mariadb";
import { dropInPath, renderRestartDropIn } from "./render/systemd";
import { b64, renderScript } from "./render/shell";
import { remoteStep } from "./remote";

export const DB_NAME = "webapp_db";
export const DB_USER = "webapp_user";
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
    /** MariaDB port. Default 3306. */
    port?: number;
    /** Connections each web server's pool may hold. Default 10. */
    poolSize?: number;
    /** Connections beyond the pools, for admin and backups. Default 20. */
    connectionHeadroom?: number;
    /** InnoDB buffer pool. Default "512M". */
    innodbBufferPoolSize?: string;
    /** InnoDB redo log size. Default "128M". */
    innodbLogFileSize?: string;
    /** Delete /var/lib/mysql when the stack is destroyed. Default false. */
    purgeDataOnDestroy?: boolean;
    /** Backups: the binlog on, and timers that ship encrypted backups to the target. Default none (off). */
    backup?: DatabaseBackupArgs;
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

/** Reads assets/app/migrations/NNN_name.sql in order, as (version, base64) pairs. */
export function readMigrations(dir = MIGRATIONS_DIR): string[] {
    return fs
        .readdirSync(dir)
        .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
        .sort()
        .flatMap((f) => [f.replace(/\.sql$/, ""), b64(fs.readFileSync(path.join(dir, f), "utf8"))]);
}

export class Database extends pulumi.ComponentResource {
    public readonly address: pulumi.Output<string>;
    public readonly port: pulumi.Output<number>;
    public readonly dbName: pulumi.Output<string>;
    public readonly dbUser: pulumi.Output<string>;
    /** The database Pi's SSH public key for the backup target (made on the Pi; only this half travels). Undefined when backups are off. */
    public readonly backupPublicKey?: pulumi.Output<string>;
    /** Steps after which the app can connect: MariaDB runs, the user exists, the schema is migrated. */
    public readonly ready: pulumi.Resource[];

    constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:db:Database", name, {}, opts);
        const port = args.port ?? 3306;
        const host = new Host(name, args, { parent: this });
        const connection = hostConnection(args);
        const conns = maxConnections(args.webAddresses.length, args.poolSize ?? 10, args.connectionHeadroom ?? 20);

        const mariadb = remoteStep(
            `${name}-mariadb`,
            {
                connection,
                script: pulumi.output(args.address).apply((address) =>
                    renderScript("db-mariadb", {
                        STEP: `${name}-mariadb`,
                        SERVER_CNF_B64: b64(
                            renderMariadbConfig({
                                bindAddress: address,
                                port,
                                innodbBufferPoolSize: args.innodbBufferPoolSize ?? "512M",
                                innodbLogFileSize: args.innodbLogFileSize ?? "128M",
                                binlog: args.backup !== undefined,
                            }),
                        ),
                        CONN_CNF_B64: b64(renderMaxConnections(conns)),
                        MAX_CONNECTIONS: conns,
                        PURGE_ON_DELETE: args.purgeDataOnDestroy ?? false,
                        DROPIN: dropInPath("mariadb"),
                        DROPIN_B64: b64(renderRestartDropIn("mariadb")),
                    }),
                ),
            },
            { parent: this, dependsOn: host.ready },
        );

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
                            CLIENTS_FILE: DB_CLIENTS_FILE,
                            CLIENTS_B64: b64(renderDbClients(args.webAddresses, port)),
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
                script: renderScript("db-migrate", { STEP: `${name}-migrate`, DB_NAME, MIGRATIONS: readMigrations() }),
            },
            { parent: this, dependsOn: [appDb] },
        );

        if (args.backup) {
            const b = args.backup;
            const units = BACKUP_KINDS.flatMap((k) => [
                { name: `${backupUnitName(k)}.service`, text: renderBackupService(k) },
                { name: `${backupUnitName(k)}.timer`, text: renderBackupTimer(k, b) },
            ]);
            const known = b.target.sshPort === 22 ? b.target.address : `[${b.target.address}]:${b.target.sshPort}`;
            const step = remoteStep(
                `${name}-backup`,
                {
                    connection,
                    script: renderScript("db-backup", {
                        STEP: `${name}-backup`,
                        PACKAGES: BACKUP_PACKAGES,
                        TOOL: BACKUP_TOOL,
                        TOOL_B64: b64(backupToolText()),
                        RESTORE_TOOL,
                        RESTORE_B64: b64(restoreToolText()),
                        ENV_FILE: BACKUP_ENV,
                        ENV_B64: b64(renderDbBackupEnv({ targetHost: b.target.address, targetPort: b.target.sshPort, targetUser: b.target.user, agePublicKey: b.agePublicKey })),
                        STATE_DIR: BACKUP_STATE_DIR,
                        KEY: BACKUP_KEY,
                        KNOWN_HOSTS: BACKUP_KNOWN_HOSTS,
                        KNOWN_HOSTS_B64: b64(`${known} ${b.target.hostKey}\n`),
                        UNIT_NAMES: units.map((u) => u.name),
                        UNIT_TEXTS_B64: units.map((u) => b64(u.text)),
                        TIMERS: BACKUP_KINDS.map((k) => `${backupUnitName(k)}.timer`),
                        FIRST_FULL: `${backupUnitName("full")}.service`,
                        PUBLIC_KEY_MARK,
                    }),
                },
                // After the app's schema: the first backup holds it.
                { parent: this, dependsOn: [migrate] },
            );
            this.backupPublicKey = step.stdout.apply((out) => {
                const key = publicKeyOf(out);
                if (!key) throw new pulumi.ResourceError(`${name}-backup: printed no "${PUBLIC_KEY_MARK} ssh-ed25519 ..." line`, this);
                return key;
            });
        }

        this.address = pulumi.output(args.address);
        this.port = pulumi.output(port);
        this.dbName = pulumi.output(DB_NAME);
        this.dbUser = pulumi.output(DB_USER);
        this.ready = [appDb, migrate];
        this.registerOutputs({
            address: this.address,
            port: this.port,
            dbName: this.dbName,
            dbUser: this.dbUser,
        });
    }
}
