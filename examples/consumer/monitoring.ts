// What the consumer derives from the cluster's outputs, as a pure function. The contract's
// version is checked before any other output is read, so a consumer written for another
// shape fails with the version, not with a confusing error about a missing or odd field.
import * as pulumi from "@pulumi/pulumi";

/** The outputs contract versions this program was written for (README "Outputs contract"). */
export const SUPPORTED_CONTRACT_VERSIONS: readonly number[] = [1];

/** The cluster stack's outputs as a StackReference returns them: unchecked. */
export interface ClusterOutputs {
    contractVersion?: unknown;
    lbUrl?: unknown;
    apiUrl?: unknown;
    webServers?: unknown;
    database?: unknown;
}

export interface Target {
    /** What is checked: "load-balancer", or the web server's name. */
    name: string;
    /** An HTTP URL that answers 200 when it is healthy. */
    url: string;
}

export interface Monitoring {
    targets: Target[];
    /** MariaDB as "host:port", for a TCP check. */
    databaseEndpoint: string;
}

/** Refuses a contract version this program was not written for; the message names the key, the value and the supported versions. */
export function checkContractVersion(stack: string, version: unknown, supported: readonly number[] = SUPPORTED_CONTRACT_VERSIONS): number {
    if (typeof version === "number" && supported.includes(version)) return version;
    throw new pulumi.RunError(
        `the cluster stack "${stack}" has contractVersion ${JSON.stringify(version) ?? "undefined"}, but this program supports ` +
            `contractVersion ${supported.join(" or ")} only. See docs/contracts.md ("Outputs contract") for what changed, ` +
            `then update examples/consumer and its SUPPORTED_CONTRACT_VERSIONS.`,
    );
}

function invalid(stack: string, output: string, expected: string, got: unknown): pulumi.RunError {
    return new pulumi.RunError(`the cluster stack "${stack}" output ${output}: expected ${expected}, got ${JSON.stringify(got) ?? "undefined"}`);
}

function httpUrl(stack: string, output: string, v: unknown, trailingSlash: boolean): URL {
    const expected = `an http(s) URL${trailingSlash ? " ending in /" : ""}`;
    if (typeof v !== "string" || (trailingSlash && !v.endsWith("/"))) throw invalid(stack, output, expected, v);
    let url: URL;
    try {
        url = new URL(v);
    } catch {
        throw invalid(stack, output, expected, v);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(stack, output, expected, v);
    return url;
}

/**
 * Health-check targets and the database endpoint, from the cluster's outputs: the load
 * balancer's /api/health (lbUrl), and each web server's /api/nodes/<name>/health under
 * apiUrl (served to the management network only, where a monitor runs).
 */
export function monitoringFrom(stack: string, o: ClusterOutputs, supported: readonly number[] = SUPPORTED_CONTRACT_VERSIONS): Monitoring {
    checkContractVersion(stack, o.contractVersion, supported);
    const lb = httpUrl(stack, "lbUrl", o.lbUrl, false);
    const api = httpUrl(stack, "apiUrl", o.apiUrl, true);
    const webs = o.webServers;
    const isWeb = (w: unknown) =>
        !!w && typeof (w as { name?: unknown }).name === "string" && typeof (w as { address?: unknown }).address === "string";
    if (!Array.isArray(webs) || webs.length === 0 || !webs.every(isWeb)) {
        throw invalid(stack, "webServers", "a non-empty list of {name, address}", webs);
    }
    const db = o.database as { host?: unknown; port?: unknown } | undefined;
    if (!db || typeof db.host !== "string" || !Number.isInteger(db.port)) {
        throw invalid(stack, "database", "{host, port, name, user} with a numeric port", db);
    }
    return {
        targets: [
            { name: "load-balancer", url: new URL("/api/health", lb).href },
            ...(webs as { name: string }[]).map((w) => ({ name: w.name, url: new URL(`nodes/${encodeURIComponent(w.name)}/health`, api).href })),
        ],
        databaseEndpoint: `${db.host}:${db.port}`,
    };
}
