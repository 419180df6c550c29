// What every Pi gets before its role: wait for SSH, base packages with unattended
// security upgrades and its roles' packages in one apt transaction, a hardened sshd, and
// the nftables firewall of its security group.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { FirewallSpec, renderFirewall, renderFirewallUnit } from "./render/firewall";
import { fileText, renderScript } from "./render/shell";
import { renderSshdDropIn, SSHD_KEX_ALLOWED, sshdExpected } from "./render/sshd";
import { renderNodeExporterDefaults } from "./render/monitoring";
import { renderAutoUpgrades, renderUnattendedPolicy } from "./render/upgrades";
import { Connection, remoteStep } from "./remote";
import {
    CONFIG_DIR,
    FIREWALL_RULESET,
    FIREWALL_SERVICE,
    NODE_EXPORTER_DEFAULTS,
    NODE_EXPORTER_PACKAGE,
    NODE_EXPORTER_PORT,
    NODE_EXPORTER_SERVICE,
    NODE_EXPORTER_TEXTFILE_DIR,
    SSHD_DROP_IN,
    STATE_DIR,
    UPLOAD_DIR,
} from "./constants";

export interface HostArgs {
    /** The Pi's address. Required. */
    address: pulumi.Input<string>;
    /** SSH port. Required (the config's default is 22). */
    sshPort: pulumi.Input<number>;
    /** SSH user with passwordless sudo, and the only user sshd lets in. Required (the config's default is "pi"). */
    user: pulumi.Input<string>;
    /** SSH private key text (a secret). Required. */
    privateKey: pulumi.Input<string>;
    /** The Pi's SSH host key ("ssh-ed25519 AAAA..."); steps refuse a host that shows another. Required. */
    hostKey: pulumi.Input<string>;
    /** The firewall rules of this Pi's role. Required. */
    firewall: FirewallSpec;
    /** Install unattended security upgrades. Required (the config's default is true). */
    unattendedUpgrades: boolean;
    /** Bumped to run every step on this Pi again, which repairs drift (see withReapply). Default 0. */
    reapply?: number;
    /** More users sshd lets in, as user@address (the backup target's user, from the database only). Default none. */
    sshExtraUsers?: string[];
    /**
     * The packages of this Pi's roles, installed by the base step in the same apt transaction
     * as the base packages: one apt run per Pi, as early as possible. The role steps install
     * them again only if missing (a no-op on a converged Pi). Default none.
     */
    packages?: string[];
    /** Serve this Pi's metrics to Prometheus (monitoring on): prometheus-node-exporter on the Pi's address. Default false. */
    nodeExporter?: boolean;
}

export const BASE_PACKAGES = ["ca-certificates", "nftables", "sudo", "tar", "gzip"];

/** What the base step installs: the base packages, unattended-upgrades when on, then the roles' packages, each once. */
export function basePackages(args: Pick<HostArgs, "unattendedUpgrades" | "packages" | "nodeExporter">): string[] {
    return [
        ...new Set([
            ...BASE_PACKAGES,
            ...(args.unattendedUpgrades ? ["unattended-upgrades"] : []),
            ...(args.nodeExporter ? [NODE_EXPORTER_PACKAGE] : []),
            ...(args.packages ?? []),
        ]),
    ];
}
/** SSH dials before the first step on a Pi gives up (a Pi that is still booting). */
export const FIRST_CONTACT_DIAL_ATTEMPTS = 30;
/** SSH dials before any later step gives up: a Pi that is down fails `up` in about a minute. */
export const STEP_DIAL_ATTEMPTS = 5;

/**
 * The SSH connection every step on this Pi uses. It holds the private key, so it is a
 * secret as a whole, and it is an input of the steps only: never a component output,
 * which would put the key in the state a second time for no reader that needs it.
 */
export function hostConnection(
    args: Pick<HostArgs, "address" | "sshPort" | "user" | "privateKey" | "hostKey">,
    dialErrorLimit = STEP_DIAL_ATTEMPTS,
): pulumi.Output<Connection> {
    return pulumi.secret(
        pulumi.output({
            host: args.address,
            port: args.sshPort,
            user: args.user,
            privateKey: args.privateKey,
            hostKey: args.hostKey,
            // Every step after first contact gives up after a few dials: a Pi that is down
            // makes `pulumi up` fail within about a minute, naming the step (and so the
            // host), rather than hang. The provider retries a dial with a growing delay.
            dialErrorLimit,
            perDialTimeout: 10,
        }),
    ) as pulumi.Output<Connection>;
}

export class Host extends pulumi.ComponentResource {
    public readonly address: pulumi.Output<string>;
    /** Steps of the role run after these: SSH answered, base installed, firewall loaded. */
    public readonly ready: pulumi.Resource[];
    /** What `uname -m` said on first contact (aarch64 on a Pi, x86_64 in the lab). */
    public readonly architecture: pulumi.Output<string>;

    constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:host:Host", name, {}, opts);
        const user = args.user;
        this.address = pulumi.output(args.address);
        const connection = hostConnection(args);

        const waitSsh = new command.remote.Command(
            `${name}-wait-ssh`,
            {
                // A Pi that is still booting refuses connections for a while.
                connection: hostConnection(args, FIRST_CONTACT_DIAL_ATTEMPTS),
                // Passwordless sudo is what every later step relies on; fail here if it is missing.
                create: "sudo -n true && uname -m",
                addPreviousOutputInEnv: false,
            },
            { parent: this, customTimeouts: { create: "10m" } },
        );
        this.architecture = waitSsh.stdout;

        const base = remoteStep(
            `${name}-base`,
            {
                connection,
                script: pulumi.output(user).apply((u) =>
                    renderScript("host-base", {
                        STEP: `${name}-base`,
                        CONFIG_DIR,
                        STATE_DIR,
                        UPLOAD_DIR,
                        SSH_USER: u,
                        PACKAGES: basePackages(args),
                        UNATTENDED: args.unattendedUpgrades,
                        AUTO_UPGRADES_TEXT: fileText(renderAutoUpgrades()),
                        UU_POLICY_TEXT: fileText(renderUnattendedPolicy()),
                        SSHD_DROP_IN,
                        SSHD_CONF_TEXT: fileText(renderSshdDropIn({ user: u, extraUsers: args.sshExtraUsers })),
                        SSHD_EXPECT: sshdExpected({ user: u, extraUsers: args.sshExtraUsers }),
                        SSHD_KEX_ALLOWED,
                    }),
                ),
            },
            { parent: this, dependsOn: [waitSsh] },
        );

        const firewall = remoteStep(
            `${name}-firewall`,
            {
                connection,
                script: renderScript("host-firewall", {
                    STEP: `${name}-firewall`,
                    RULESET: FIREWALL_RULESET,
                    FIREWALL_SERVICE,
                    RULESET_TEXT: fileText(renderFirewall(args.firewall)),
                    UNIT_TEXT: fileText(renderFirewallUnit()),
                }),
            },
            { parent: this, dependsOn: [base] },
        );

        if (args.nodeExporter) {
            // Independent of the role's steps, which do not wait for it.
            remoteStep(
                `${name}-node-exporter`,
                {
                    connection,
                    script: pulumi.output(args.address).apply((address) =>
                        renderScript("host-node-exporter", {
                            STEP: `${name}-node-exporter`,
                            PACKAGE: NODE_EXPORTER_PACKAGE,
                            SERVICE: NODE_EXPORTER_SERVICE,
                            DEFAULTS: NODE_EXPORTER_DEFAULTS,
                            DEFAULTS_TEXT: fileText(renderNodeExporterDefaults(address)),
                            TEXTFILE_DIR: NODE_EXPORTER_TEXTFILE_DIR,
                            LISTEN: `${address}:${NODE_EXPORTER_PORT}`,
                        }),
                    ),
                },
                { parent: this, dependsOn: [firewall] },
            );
        }

        this.ready = [base, firewall];
        this.registerOutputs({ address: this.address, architecture: this.architecture });
    }
}
