// A host renamed in config keeps its resources: the engine is told, through aliases, that
// the renamed host's steps are the same resources under a new name. Without that, a rename
// would delete the old name's steps (tearing the services down) and create the new ones on
// the same Pi, in an order nobody chose.
import { ConfigError } from "./config";

export type Role = "lb" | "web" | "db" | "replica";

export interface Node {
    name: string;
    address: string;
    role: Role;
}

/**
 * Compares the hosts of the last deployment with the config's and returns, for each host
 * whose name changed while its address and role stayed, the name it had (new -> old).
 * Throws a ConfigError when names trade places, which no alias can express safely.
 */
export function renamedHosts(previous: Node[], current: Node[]): Map<string, string> {
    const renames = new Map<string, string>();
    const currentNames = new Set(current.map((n) => n.name));
    for (const now of current) {
        const before = previous.find((p) => p.address === now.address && p.role === now.role);
        if (!before || before.name === now.name) continue;
        if (currentNames.has(before.name)) {
            const other = current.find((n) => n.name === before.name)!;
            throw new ConfigError(
                `invalid stack config:\n  pi-cluster: host name "${before.name}" moves from ${before.address} to ${other.address} while ` +
                    `${before.address} is renamed to "${now.name}"; rename one host per \`pulumi up\`, through a name that is not in use`,
            );
        }
        renames.set(now.name, before.name);
    }
    return renames;
}
