// How a component runs a step on a Pi: a rendered script on stdin to `sudo bash -s`.
// The command text is fixed, so it never carries a secret and never changes; the
// script (stdin) changes exactly when what it installs changes, which makes Pulumi
// update that step and nothing else. Delete runs the same script with "delete".
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { UPLOAD_DIR } from "./constants";

export type Connection = command.types.input.remote.ConnectionArgs;

export const APPLY = "sudo bash -s -- apply";
export const DELETE = "sudo bash -s -- delete";

export interface StepArgs {
    connection: pulumi.Input<Connection>;
    /** The rendered script (see components/render/shell.ts). */
    script: pulumi.Input<string>;
    /** True when the script carries a secret: stdout is then not logged (stderr still is). */
    secret?: boolean;
}

export function remoteStep(
    name: string,
    args: StepArgs,
    opts: pulumi.CustomResourceOptions & { parent: pulumi.Resource },
): command.remote.Command {
    return new command.remote.Command(
        name,
        {
            connection: args.connection,
            create: APPLY,
            delete: DELETE,
            stdin: args.script,
            addPreviousOutputInEnv: false,
            logging: args.secret ? "stderr" : "stdoutAndStderr",
        },
        { customTimeouts: { create: "30m", update: "30m", delete: "15m" }, ...opts },
    );
}

/**
 * Runs every step on a Pi again when its `reapply` generation is bumped (`pi-cluster recover`
 * does): each step's script gains a last comment line naming the generation, so the engine
 * sees a changed input and updates, that is re-runs, the step, in the usual order. The
 * scripts are idempotent, so this repairs what scripts/verify.sh found drifted and changes
 * nothing else. Generation 0 (the default) adds nothing.
 */
export function withReapply<T extends pulumi.ComponentResourceOptions>(generation: number | undefined, opts?: T): T | undefined {
    if (!generation) return opts;
    const mark: pulumi.ResourceTransformation = (a) => {
        if (a.type !== "command:remote:Command" || a.props.create !== APPLY) return undefined;
        const stdin = pulumi.output(a.props.stdin as pulumi.Input<string>).apply((s) => `${s}# reapply ${generation}: every step on this Pi ran again (its reapply setting)\n`);
        return { props: { ...a.props, stdin }, opts: a.opts };
    };
    return { ...opts, transformations: [...(opts?.transformations ?? []), mark] } as T;
}

/**
 * Uploads a tarball to the Pi's upload directory under a name that carries its hash. The
 * Pi's host key is a trigger: CopyToRemote copies again only when its source or path
 * changes, so a replaced Pi (a new key) gets a fresh copy through a replacement.
 */
export function upload(
    name: string,
    args: { connection: pulumi.Input<Connection>; hostKey: pulumi.Input<string>; kind: string; file: string; sha: string },
    opts: pulumi.CustomResourceOptions & { parent: pulumi.Resource },
): { copy: command.remote.CopyToRemote; remotePath: string } {
    const remotePath = `${UPLOAD_DIR}/${args.kind}-${args.sha}.tgz`;
    const copy = new command.remote.CopyToRemote(
        name,
        { connection: args.connection, source: new pulumi.asset.FileAsset(args.file), remotePath, triggers: [args.hostKey] },
        { customTimeouts: { create: "15m", update: "15m" }, ...opts },
    );
    return { copy, remotePath };
}
