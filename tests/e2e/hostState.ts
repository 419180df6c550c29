// What a Pi looks like from the inside, for the checks that judge "nothing changed" by the
// host itself rather than by log lines: the checksum of every file the stack manages, the
// firewall ruleset, and the start of every process it runs. Also re-runs the engine's own
// steps (the exact command and stdin from the stack's state) to prove they are idempotent.
import { onHost, pulumi } from "./lib";
import { APP_DIR, PM2_DIR, WWW_DIR } from "../../components/constants";

/** The files, links and processes the stack manages on a Pi; everything else may change. */
const SNAPSHOT = String.raw`
set -u
{
  find /etc/pi-cluster /etc/nginx/sites-available /etc/nginx/sites-enabled /etc/mysql/mariadb.conf.d \
       /var/lib/pi-cluster /etc/apt/apt.conf.d -type f 2>/dev/null
  find /etc/systemd/system -maxdepth 1 -name 'pi-cluster*' -type f 2>/dev/null
} | sort | xargs -r sha256sum | sed 's/^/file /'
for link in ${APP_DIR}/current ${PM2_DIR}/current ${WWW_DIR}/current /etc/nginx/sites-enabled/pi-cluster; do
  [ -L "$link" ] && echo "link $link -> $(readlink "$link")"
done
nft list table inet pi_cluster 2>/dev/null | sha256sum | sed 's/^/nft /'
for unit in nginx mariadb pi-cluster-app pi-cluster-firewall; do
  systemctl show -p ActiveState -p MainPID -p ActiveEnterTimestampMonotonic -p NRestarts "$unit" 2>/dev/null |
    tr '\n' ' ' | sed "s/^/unit $unit /"; echo
done
# nginx workers (a reload replaces them), mariadbd, PM2's daemon and the app's node processes.
ps -eo pid=,lstart=,user=,comm= | awk '$8 ~ /^(nginx|mariadbd|node|PM2)/' | sed 's/^ */proc /'
`;

/** One line per managed file, link, ruleset, unit and process of `host`. */
export function hostState(host: string): string[] {
    const r = onHost(host, `sudo bash -c ${shellQuote(SNAPSHOT)}`);
    if (r.status !== 0) throw new Error(`cannot read ${host}'s state: ${r.out}`);
    return r.out.split("\n").filter(Boolean);
}

export function clusterState(hosts: string[]): Record<string, string[]> {
    return Object.fromEntries(hosts.map((h) => [h, hostState(h)]));
}

/** The lines that differ between two snapshots of the same hosts, as "host: -line" / "host: +line". */
export function stateDiff(before: Record<string, string[]>, after: Record<string, string[]>): string[] {
    const out: string[] = [];
    for (const host of Object.keys({ ...before, ...after })) {
        const a = new Set(before[host] ?? []);
        const b = new Set(after[host] ?? []);
        for (const l of a) if (!b.has(l)) out.push(`${host}: -${l}`);
        for (const l of b) if (!a.has(l)) out.push(`${host}: +${l}`);
    }
    return out;
}

function shellQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

interface StateResource {
    urn: string;
    type: string;
    inputs?: { create?: unknown; stdin?: unknown; connection?: unknown };
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** A value from `stack export --show-secrets`: secrets come as {sig, plaintext: JSON}. */
function revealed(v: unknown): any {
    if (v && typeof v === "object" && SECRET_SIG in v) return revealed(JSON.parse((v as unknown as { plaintext: string }).plaintext));
    return v;
}

/**
 * Runs every remote step's create command again, with the exact stdin the engine sent, in
 * the order the state lists them (a dependency order), on the hosts the stack's `nodes`
 * output names. The decrypted state stays in memory.
 */
export function rerunEngineSteps(): string[] {
    const nodes = JSON.parse(pulumi(["stack", "output", "nodes", "--json"]).stdout) as { name: string; address: string }[];
    const hostsByAddress = Object.fromEntries(nodes.map((n) => [n.address, n.name]));
    const state = JSON.parse(pulumi(["stack", "export", "--show-secrets"]).stdout) as { deployment: { resources: StateResource[] } };
    const ran: string[] = [];
    for (const r of state.deployment.resources) {
        if (r.type !== "command:remote:Command" || !r.inputs?.create) continue;
        const address = revealed(r.inputs.connection)?.host as string;
        const host = hostsByAddress[address];
        if (!host) throw new Error(`${r.urn} runs on an unknown address ${address}`);
        const name = r.urn.split("::").pop()!;
        const res = onHost(host, revealed(r.inputs.create), revealed(r.inputs.stdin) ?? "");
        if (res.status !== 0) throw new Error(`${name} on ${host} exited ${res.status} when run again:\n${res.out.slice(-3000)}`);
        ran.push(name);
    }
    return ran;
}
