// Writes through the load balancer for the cases that count acknowledged writes: the backup
// drill (what a restore keeps) and the replica promotion (what a promotion keeps).
import * as assert from "assert";
import { http, LB_URL, onHost, writeHeaders } from "./lib";

export interface Write {
    title: string;
    sentAt: number;
    ackedAt: number;
}

/** Writes notes through the LB one after the other until stopped, recording each acknowledged one. */
export function writer(prefix: string): { acked: Write[]; failed: number; stop: () => Promise<void> } {
    const state = { acked: [] as Write[], failed: 0, running: true };
    let n = 0;
    const loop = (async () => {
        while (state.running) {
            const title = `${prefix}-${n++}`;
            const sentAt = Date.now();
            try {
                const r = await http(`${LB_URL}/api/notes`, { method: "POST", headers: writeHeaders(), body: JSON.stringify({ title, body: "drill" }), timeoutMs: 3000 });
                if (r.status === 201) state.acked.push({ title, sentAt, ackedAt: Date.now() });
                else state.failed++;
            } catch {
                state.failed++;
            }
            await new Promise((r) => setTimeout(r, 50));
        }
    })();
    return {
        acked: state.acked,
        get failed() {
            return state.failed;
        },
        stop: async () => {
            state.running = false;
            await loop;
        },
    };
}

/** One write through the LB: whether it was acknowledged. */
export async function writeSucceeds(): Promise<boolean> {
    const r = await http(`${LB_URL}/api/notes`, { method: "POST", headers: writeHeaders(), body: JSON.stringify({ title: "drill-probe", body: "" }), timeoutMs: 3000 });
    return r.status === 201;
}

/** The note titles with `prefix` in the database on `host` now, read on that Pi itself. */
export function titlesOn(host: string, prefix: string): Set<string> {
    const r = onHost(host, `sudo mariadb -N -B webapp_db -e "SELECT title FROM notes WHERE title LIKE '${prefix}-%'"`);
    assert.strictEqual(r.status, 0, r.out);
    return new Set(r.out.split("\n").filter((l) => l.startsWith(`${prefix}-`)));
}
