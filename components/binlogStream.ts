// The binlog stream: the backup target follows the database's binary log as a replication
// client and keeps a live copy beside the backups, so a lost database Pi loses about a
// second of writes instead of up to backup.binlogShipSeconds. Two steps: the database lets
// the target in (its account, its port), then the target runs the stream as a service.
// The shipper on the database stays: it is what a restore reads when the stream was down.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import {
    renderStreamClient, renderStreamClientCnf, renderStreamEnv, renderStreamService, STREAM_PACKAGES, STREAM_PRIVILEGES, streamToolText,
} from "./render/binlogStream";
import { replicaServerId } from "./render/mariadb";
import { fileText, renderScript } from "./render/shell";
import { Connection, remoteStep } from "./remote";
import { FIREWALL_RULESET, STREAM_CA, STREAM_CLIENT_CNF, STREAM_CLIENT_FILE, STREAM_ENV, STREAM_TOOL, STREAM_UNIT, STREAM_USER } from "./constants";

export interface BinlogStreamArgs {
    /** SSH to the database Pi, where the stream's account and port rule are made. Required. */
    dbConnection: pulumi.Input<Connection>;
    /** The database's address and MariaDB port. Required. */
    dbAddress: string;
    dbPort: number;
    /** The CA of the database's certificate, which the stream checks. Required. */
    dbCaCertificate: pulumi.Input<string>;
    /** The database's steps after which MariaDB serves with its binlog. Required. */
    dbReady: pulumi.Resource[];
    /** SSH to the backup target as the deploy user (with sudo). Required. */
    targetConnection: pulumi.Input<Connection>;
    /** The target's address: the only one the stream's account is let in from. Required. */
    targetAddress: string;
    /** The backup account, which runs the stream, and its directory. Required. */
    user: string;
    path: string;
    /** The target's steps after which that account and directory exist. Required. */
    targetReady: pulumi.Resource[];
}

export class BinlogStream extends pulumi.ComponentResource {
    /** The target's service step: the stream runs once it is done. */
    public readonly service: pulumi.Resource;

    constructor(name: string, args: BinlogStreamArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:backup:BinlogStream", name, {}, opts);
        // Letters and digits only: it travels through SQL and an option file.
        const password = new random.RandomPassword(`${name}-password`, { length: 32, special: false }, { parent: this }).result;
        const source = remoteStep(
            `${name}-source`,
            {
                connection: args.dbConnection,
                secret: true,
                script: pulumi.secret(
                    password.apply((pw) =>
                        renderScript("db-stream-source", {
                            STEP: `${name}-source`,
                            STREAM_USER,
                            STREAM_PASSWORD: pw,
                            PRIVILEGES: STREAM_PRIVILEGES,
                            TARGET_ADDRESS: args.targetAddress,
                            CLIENT_FILE: STREAM_CLIENT_FILE,
                            CLIENT_TEXT: fileText(renderStreamClient(args.targetAddress, args.dbPort)),
                            RULESET: FIREWALL_RULESET,
                        }),
                    ),
                ),
            },
            { parent: this, dependsOn: args.dbReady },
        );
        this.service = remoteStep(
            `${name}-service`,
            {
                connection: args.targetConnection,
                secret: true,
                script: pulumi.secret(
                    pulumi.all([password, args.dbCaCertificate]).apply(([pw, ca]) =>
                        renderScript("backup-stream", {
                            STEP: `${name}-service`,
                            PACKAGES: STREAM_PACKAGES,
                            BACKUP_USER: args.user,
                            BACKUP_DIR: args.path,
                            TOOL: STREAM_TOOL,
                            TOOL_TEXT: fileText(streamToolText()),
                            ENV_FILE: STREAM_ENV,
                            // The target's own address as the client id: no database host has it.
                            ENV_TEXT: fileText(renderStreamEnv({ dbAddress: args.dbAddress, dbPort: args.dbPort, serverId: replicaServerId(args.targetAddress) })),
                            CA_FILE: STREAM_CA,
                            CA_TEXT: fileText(ca),
                            CLIENT_CNF: STREAM_CLIENT_CNF,
                            CLIENT_CNF_TEXT: fileText(renderStreamClientCnf(pw)),
                            UNIT: STREAM_UNIT,
                            UNIT_TEXT: fileText(renderStreamService({ user: args.user, dir: args.path, dbAddress: args.dbAddress })),
                        }),
                    ),
                ),
            },
            { parent: this, dependsOn: [source, ...args.targetReady] },
        );
        this.registerOutputs({});
    }
}
