// The pure half of `pi-cluster promote`: the stack's state without what lived on a lost
// database Pi. Its steps cannot run their delete there (the Pi is gone), and `pulumi up`
// would stop on each; so they leave the state before the up that makes a replica the
// database. Taken out:
//   - the lost database's component and everything under it;
//   - each replica's source step, which ran on the lost database (the up makes the new
//     database's where there is still a replica);
// and every reference to them from what stays (dependencies, property dependencies,
// deletedWith), as `pulumi state delete` would leave none.
import * as fs from "fs";

interface Resource {
    urn: string;
    type: string;
    parent?: string;
    dependencies?: string[];
    propertyDependencies?: Record<string, string[]>;
    deletedWith?: string;
    [k: string]: unknown;
}

export interface Deployment {
    version: number;
    deployment: { resources?: Resource[]; pending_operations?: { resource: Resource }[]; [k: string]: unknown };
}

export const DATABASE_TYPE = "pi-cluster:db:Database";

const nameOf = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);
const typeOf = (urn: string) => {
    const t = urn.split("::")[2] ?? "";
    return t.slice(t.lastIndexOf("$") + 1);
};

/**
 * The state without the lost database `lost` and the given replicas' source steps. Returns
 * the new deployment and the URNs taken out. Throws when `lost` is not a database of the state.
 */
export function withoutLostDatabase(d: Deployment, lost: string, replicas: string[]): { deployment: Deployment; removed: string[] } {
    const resources = d.deployment.resources ?? [];
    const root = resources.find((r) => r.type === DATABASE_TYPE && nameOf(r.urn) === lost);
    if (!root) throw new Error(`no database component named ${lost} in the state`);
    const gone = new Set<string>([root.urn]);
    // Children are listed after their parent, but a fixed point does not rely on it.
    for (let grew = true; grew; ) {
        grew = false;
        for (const r of resources) {
            if (!gone.has(r.urn) && r.parent && gone.has(r.parent)) {
                gone.add(r.urn);
                grew = true;
            }
        }
    }
    const sources = new Set(replicas.map((n) => `${n}-source`));
    for (const r of resources) {
        if (r.type === "command:remote:Command" && sources.has(nameOf(r.urn)) && typeOf(r.parent ?? "") === DATABASE_TYPE) gone.add(r.urn);
    }
    const clean = (r: Resource): Resource => {
        const out: Resource = { ...r };
        if (r.dependencies) out.dependencies = r.dependencies.filter((u) => !gone.has(u));
        if (r.propertyDependencies) {
            out.propertyDependencies = Object.fromEntries(Object.entries(r.propertyDependencies).map(([k, v]) => [k, v.filter((u) => !gone.has(u))]));
        }
        if (r.deletedWith && gone.has(r.deletedWith)) delete out.deletedWith;
        return out;
    };
    const kept = resources.filter((r) => !gone.has(r.urn)).map(clean);
    const pending = (d.deployment.pending_operations ?? []).filter((p) => !gone.has(p.resource.urn));
    return {
        deployment: { ...d, deployment: { ...d.deployment, resources: kept, ...(d.deployment.pending_operations ? { pending_operations: pending } : {}) } },
        removed: resources.filter((r) => gone.has(r.urn)).map((r) => r.urn),
    };
}

// node -r sucrase/register/ts scripts/promote/state.ts IN OUT LOST [REPLICA...]
if (require.main === module) {
    const [input, output, lost, ...replicas] = process.argv.slice(2);
    const { deployment, removed } = withoutLostDatabase(JSON.parse(fs.readFileSync(input, "utf8")), lost, replicas);
    fs.writeFileSync(output, JSON.stringify(deployment), { mode: 0o600 });
    for (const urn of removed) console.log(urn);
}
