import type { Database } from "./pool";
import { SEMI_SYNC_STATUS, SEMI_SYNC_VARIABLES, semiSyncFromServer, type SemiSyncStatus } from "./replicas";
import { withTimeout } from "./timeout";

/** What one round of status queries found on the server. */
export interface DbSample {
  version: string;
  latencyMs: number;
  uptimeSeconds: number;
  connections: number;
  queries: number;
  /** Semi-synchronous replication as this server runs it; null when it has none. */
  semiSync: SemiSyncStatus | null;
}

type NameValue = { Variable_name: string; Value: string };

/**
 * Asks MariaDB for its version, uptime, connection and query counters and its semi-sync state,
 * timing the first round trip. The whole probe (getting a connection included) is bounded by
 * `timeoutMs`, so the status page answers quickly when the server is down or unreachable. No retry.
 */
export async function probeDatabase(db: Database, timeoutMs: number): Promise<DbSample> {
  return withTimeout(
    db.withConnection(async (conn) => {
      const started = process.hrtime.bigint();
      const [versionRows] = await conn.query({ sql: "SELECT VERSION() AS version", timeout: timeoutMs });
      const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
      const [statusRows] = await conn.query({
        sql: "SHOW GLOBAL STATUS WHERE Variable_name IN (?)",
        timeout: timeoutMs,
        values: [["Uptime", "Threads_connected", "Queries", ...SEMI_SYNC_STATUS]],
      });
      const [variableRows] = await conn.query({ sql: "SHOW GLOBAL VARIABLES WHERE Variable_name IN (?)", timeout: timeoutMs, values: [SEMI_SYNC_VARIABLES] });
      const status = new Map<string, string>();
      for (const row of [...(statusRows as NameValue[]), ...(variableRows as NameValue[])]) {
        status.set(row.Variable_name, row.Value);
      }
      return {
        version: String((versionRows as Array<{ version: string }>)[0]?.version ?? ""),
        latencyMs,
        uptimeSeconds: Number(status.get("Uptime") ?? NaN),
        connections: Number(status.get("Threads_connected") ?? NaN),
        queries: Number(status.get("Queries") ?? NaN),
        semiSync: semiSyncFromServer(status),
      };
    }, timeoutMs),
    timeoutMs,
    () => new Error(`database did not answer within ${timeoutMs} ms`),
  );
}
