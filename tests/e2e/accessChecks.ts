// Who may see and change what through the load balancer, from this machine (inside the
// management network, 10.254.0.0/24): the public status keeps the internals to itself, and
// writes need the stack's bearer token. For the engine e2e (cluster.test.ts).
import * as assert from "assert";
import { http, LB_URL, writeHeaders, writeToken } from "./lib";

/**
 * The public status (`/api/`, from every web server in turn) and `/cluster.json` show no
 * address, pid or error text; the internal status, which this machine may read, does.
 */
export async function publicStatusHidesInternals(webServers: number): Promise<void> {
    const internal = (await http(`${LB_URL}/api/internal/status`)).json();
    const dbHost: string = internal.db.host;
    assert.match(dbHost, /^\d+\.\d+\.\d+\.\d+$/, "the internal status names the DB host");
    for (let i = 0; i < 2 * webServers; i++) {
        const r = await http(`${LB_URL}/api/`);
        assert.strictEqual(r.status, 200, r.body);
        const status = r.json();
        assert.deepStrictEqual(Object.keys(status).sort(), ["db", "generatedAt", "node", "status", "version"], r.body);
        assert.strictEqual(status.status, "ok", r.body);
        assert.strictEqual(status.db, "up", r.body);
        assert.ok(!r.body.includes(dbHost), `the public status shows the DB host: ${r.body}`);
        assert.doesNotMatch(r.body, /"(pid|memory|error|host|hostname)"/, "the public status shows internals");
    }
    const cluster = await http(`${LB_URL}/cluster.json`);
    assert.strictEqual(cluster.status, 200);
    assert.doesNotMatch(cluster.body, /"address"|\d+\.\d+\.\d+\.\d+/, `cluster.json shows addresses: ${cluster.body}`);
    // A client header does not open the internal routes: the app wants the one nginx sets.
    const forged = await http(`${LB_URL}/api/INTERNAL/status`, { headers: { "x-pi-cluster-access": "internal" } });
    assert.strictEqual(forged.status, 403, forged.body);
    assert.doesNotMatch(forged.body, /"pid"/);
}

/** A write without the token, or with a wrong one, is 401; with the stack's token it succeeds. */
export async function writesNeedToken(): Promise<void> {
    const body = JSON.stringify({ title: `token ${Date.now()}`, body: "e2e" });
    const json = { "content-type": "application/json" };
    const none = await http(`${LB_URL}/api/notes`, { method: "POST", headers: json, body });
    assert.strictEqual(none.status, 401, none.body);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer /);
    assert.strictEqual(none.json().error.code, "UNAUTHORIZED");
    const wrong = await http(`${LB_URL}/api/notes`, { method: "POST", headers: { ...json, authorization: "Bearer not-the-token-0123456789" }, body });
    assert.strictEqual(wrong.status, 401, wrong.body);
    assert.ok(!wrong.body.includes(writeToken()), "a refusal shows the token");
    const created = await http(`${LB_URL}/api/notes`, { method: "POST", headers: writeHeaders(), body });
    assert.strictEqual(created.status, 201, created.body);
    const id = created.json().id;
    // Reads stay public.
    assert.strictEqual((await http(`${LB_URL}/api/notes/${id}`)).status, 200);
    assert.strictEqual((await http(`${LB_URL}/api/notes/${id}`, { method: "DELETE" })).status, 401);
    assert.strictEqual((await http(`${LB_URL}/api/notes/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${writeToken()}` } })).status, 204);
}
