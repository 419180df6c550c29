// Which replica to promote, and whether it has applied everything it received: pure
// decisions over what assets/scripts/promote-db.sh prints (SHOW SLAVE STATUS and a few
// variables). The command (cli/promote.ts) gathers, calls these and acts.

/** One replica as seen over SSH; `status` is undefined when it could not be reached. */
export interface ReplicaFacts {
    name: string;
    /** Why it could not be asked (SSH failed, MariaDB down); undefined when it answered. */
    unreachable?: string;
    /** SHOW SLAVE STATUS\G as field -> value ({} when it replicates from nobody). */
    status?: Record<string, string>;
    /** @@gtid_slave_pos: the GTIDs it has applied. */
    gtidSlavePos?: string;
}

/** A position in the lost database's binlog: file number and offset. */
export interface BinlogPosition {
    file: number;
    pos: number;
}

/** Fields of SHOW SLAVE STATUS\G ("   Field: value" lines), and `pi-cluster:` lines of the script. */
export function parseStatusOutput(text: string): { status: Record<string, string>; vars: Record<string, string> } {
    const status: Record<string, string> = {};
    const vars: Record<string, string> = {};
    for (const line of text.split("\n")) {
        const v = /^pi-cluster:([a-z_]+)=(.*)$/.exec(line);
        if (v) {
            vars[v[1]] = v[2];
            continue;
        }
        const m = /^\s*([A-Za-z_]+): ?(.*)$/.exec(line);
        if (m) status[m[1]] = m[2];
    }
    return { status, vars };
}

function position(file: string | undefined, pos: string | undefined): BinlogPosition | undefined {
    const f = /\.(\d+)$/.exec(file ?? "");
    if (!f || !/^\d+$/.test(pos ?? "")) return undefined;
    return { file: Number(f[1]), pos: Number(pos) };
}

/** How much of the lost database's binlog the replica received (its IO thread's position). */
export function receivedPosition(st: Record<string, string>): BinlogPosition | undefined {
    return position(st.Master_Log_File, st.Read_Master_Log_Pos);
}

/** How much of it the replica applied (its SQL thread's position). */
export function appliedPosition(st: Record<string, string>): BinlogPosition | undefined {
    return position(st.Relay_Master_Log_File, st.Exec_Master_Log_Pos);
}

export function comparePositions(a: BinlogPosition, b: BinlogPosition): number {
    return a.file !== b.file ? a.file - b.file : a.pos - b.pos;
}

const showPosition = (st: Record<string, string>) => `${st.Master_Log_File}:${st.Read_Master_Log_Pos}${st.Gtid_IO_Pos ? `, GTID ${st.Gtid_IO_Pos}` : ""}`;

export type CatchUp =
    | { state: "caught-up"; note?: string }
    | { state: "applying"; detail: string }
    | { state: "failed"; reason: string };

/** What an operator may do about a stopped SQL thread without losing the relay log. */
export const SQL_THREAD_ADVICE =
    "start its SQL thread alone (START SLAVE SQL_THREAD) while its IO thread still runs, never STOP SLAVE or START SLAVE: with GTID, MariaDB discards the relay log when replication starts with both threads stopped, and with the database lost it holds writes that exist nowhere else";

/**
 * Whether a replica has applied its whole relay log: its SQL thread runs without error and
 * has executed up to what was received, or has read all of the relay log and waits (what
 * remains then is a transaction received only in part, which no replica can apply). A
 * stopped SQL thread is a failure: it applies nothing more. Nothing more arrives once the
 * web servers are fenced; the promote action checks again with the IO thread stopped.
 */
export function catchUpState(st: Record<string, string>): CatchUp {
    if (Object.keys(st).length === 0) return { state: "failed", reason: "it replicates from nobody (SHOW SLAVE STATUS is empty)" };
    if (st.Slave_SQL_Running !== "Yes") {
        const errno = Number(st.Last_SQL_Errno ?? 0);
        return {
            state: "failed",
            reason: errno
                ? `its SQL thread stopped on error ${errno}: ${st.Last_SQL_Error}; what it received after that is not applied. Fix the cause, then ${SQL_THREAD_ADVICE}`
                : `its SQL thread is stopped (by hand or by a restore), so it applies nothing of its relay log. If its data is the database's, ${SQL_THREAD_ADVICE}`,
        };
    }
    const received = receivedPosition(st);
    const applied = appliedPosition(st);
    if (!received || !applied) return { state: "failed", reason: `its positions are unreadable (received ${st.Master_Log_File}:${st.Read_Master_Log_Pos}, applied ${st.Relay_Master_Log_File}:${st.Exec_Master_Log_Pos})` };
    if (comparePositions(applied, received) >= 0) return { state: "caught-up" };
    if (/has read all relay log/i.test(st.Slave_SQL_Running_State ?? "")) {
        return { state: "caught-up", note: `the end of its relay log (after ${applied.file}:${applied.pos}, up to ${received.file}:${received.pos}) is a transaction it received only in part: not applied` };
    }
    const behind = applied.file === received.file ? `${received.pos - applied.pos} bytes` : `${received.file - applied.file} binlog file(s)`;
    return { state: "applying", detail: `applied ${applied.file}:${applied.pos} of ${received.file}:${received.pos} received (${behind} to go)` };
}

export interface ChoiceOptions {
    /** The replica the operator named; undefined: the most advanced. */
    requested?: string;
    /** Promote the named replica even when another received more (its extra writes are lost). */
    allowBehind: boolean;
    /** Go on when a replica cannot be asked (it might hold more than the others). */
    allowUnreachable: boolean;
}

export type Choice = { chosen: string; notes: string[] } | { refuse: string };

/**
 * The replica to promote: of those that replicate from the lost database, the one that
 * received the most of its binlog. A named replica that received less is refused, naming
 * the better one, unless allowBehind; a replica that cannot be asked is a refusal unless
 * allowUnreachable, as it may be the most advanced.
 */
export function chooseReplica(facts: ReplicaFacts[], lostAddress: string, o: ChoiceOptions): Choice {
    const notes: string[] = [];
    if (o.requested && !facts.some((f) => f.name === o.requested)) {
        return { refuse: `${o.requested} is not a replica of the stack (dbReplicas: ${facts.map((f) => f.name).join(", ") || "none"})` };
    }
    const unreachable = facts.filter((f) => f.unreachable !== undefined);
    const requestedDown = unreachable.find((f) => f.name === o.requested);
    if (requestedDown) return { refuse: `${requestedDown.name} cannot be asked (${requestedDown.unreachable}), so it cannot be promoted` };
    if (unreachable.length > 0) {
        const list = unreachable.map((f) => `${f.name} (${f.unreachable})`).join(", ");
        if (!o.allowUnreachable) {
            return { refuse: `cannot ask ${list}: it may have received more of the lost database's writes than the others. Bring it back, or pass --allow-unreachable-replicas to choose among the others` };
        }
        notes.push(`not asked (--allow-unreachable-replicas): ${list}`);
    }
    const candidates: { f: ReplicaFacts; at: BinlogPosition }[] = [];
    for (const f of facts.filter((x) => x.unreachable === undefined)) {
        const st = f.status ?? {};
        const at = receivedPosition(st);
        if (st.Master_Host !== lostAddress || !at) {
            const why = st.Master_Host ? `it replicates from ${st.Master_Host}, not ${lostAddress}` : "it replicates from nobody";
            if (f.name === o.requested) return { refuse: `${f.name} cannot be promoted: ${why}` };
            notes.push(`${f.name} is no candidate: ${why}`);
            continue;
        }
        candidates.push({ f, at });
    }
    if (candidates.length === 0) return { refuse: `no replica replicates from ${lostAddress}` };
    const best = candidates.reduce((a, b) => (comparePositions(b.at, a.at) > 0 ? b : a));
    const requested = candidates.find((c) => c.f.name === o.requested);
    if (!requested) return { chosen: best.f.name, notes };
    if (comparePositions(requested.at, best.at) < 0) {
        const gap = `${requested.f.name} received ${showPosition(requested.f.status!)} of ${lostAddress}'s binlog, ${best.f.name} ${showPosition(best.f.status!)}`;
        if (!o.allowBehind) {
            return { refuse: `${gap}: promoting ${requested.f.name} would drop the writes only ${best.f.name} has. Promote ${best.f.name}, or pass --allow-behind to accept that loss` };
        }
        notes.push(`${gap}; promoting ${requested.f.name} anyway (--allow-behind): the writes only ${best.f.name} has are dropped`);
    }
    return { chosen: requested.f.name, notes };
}
