// The backup target: an account on another host that the database Pi ships encrypted
// backups to, limited to receiving them into one directory. By default the load balancer.
import * as pulumi from "@pulumi/pulumi";
import { Connection, remoteStep } from "./remote";
import { backupToolText, renderAuthorizedKey, renderTargetEnv, renderVerifyService, renderVerifyTimer, TargetEnvArgs } from "./render/backup";
import { fileText, renderScript } from "./render/shell";
import { BACKUP_ENV, BACKUP_TOOL, VERIFY_UNIT } from "./constants";


export interface BackupTargetArgs extends TargetEnvArgs {
    /** SSH to the target as the deploy user (with sudo). Required. */
    connection: pulumi.Input<Connection>;
    /** The account the database ships as. Required (config default "pi-backup"). */
    user: string;
    /** The database Pi's address: its key is accepted from there only. Required. */
    dbAddress: string;
    /** The database Pi's SSH public key (its backup step's output). Required. */
    dbPublicKey: pulumi.Input<string>;
    /** The target's steps run after these (its host is ready). Default none. */
    after?: pulumi.Resource[];
}

export class BackupTarget extends pulumi.ComponentResource {
    /** The directory holding the backups and status.json. */
    public readonly path: pulumi.Output<string>;
    public readonly ready: pulumi.Resource;

    constructor(name: string, args: BackupTargetArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:backup:BackupTarget", name, {}, opts);
        const units = [
            { name: `${VERIFY_UNIT}.service`, text: renderVerifyService(args.user, args.path) },
            { name: `${VERIFY_UNIT}.timer`, text: renderVerifyTimer() },
        ];
        this.ready = remoteStep(
            `${name}-target`,
            {
                connection: args.connection,
                script: pulumi.output(args.dbPublicKey).apply((key) =>
                    renderScript("backup-target", {
                        STEP: `${name}-target`,
                        BACKUP_USER: args.user,
                        BACKUP_DIR: args.path,
                        TOOL: BACKUP_TOOL,
                        TOOL_TEXT: fileText(backupToolText()),
                        ENV_FILE: BACKUP_ENV,
                        ENV_TEXT: fileText(renderTargetEnv(args)),
                        AUTHORIZED_TEXT: fileText(renderAuthorizedKey(key, args.dbAddress)),
                        UNIT_NAMES: units.map((u) => u.name),
                        ...Object.fromEntries(units.map((u, i) => [`UNIT_${i}_TEXT`, fileText(u.text)])),
                        TIMER: `${VERIFY_UNIT}.timer`,
                    }),
                ),
            },
            { parent: this, dependsOn: args.after ?? [] },
        );
        this.path = pulumi.output(args.path);
        this.registerOutputs({ path: this.path });
    }
}
