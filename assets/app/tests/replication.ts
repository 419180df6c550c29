import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { loadConfig, type Config } from "../src/config";
import { TEST_WRITE_TOKEN } from "./helpers";

/**
 * A throwaway MariaDB primary (binlog on) and a real GTID replica of it (read_only), for the
 * replica tests: their own datadirs under one temp dir and their own loopback ports, apart from
 * the test server of scripts/test-mariadb.sh (3307) and the TLS suite's (3308). The app user is
 * created on the primary as the stack creates it (DML on the app database, SLAVE MONITOR) and
 * reaches the replica through replication, as in the cluster.
 */

const run = promisify(execFile);
const MIGRATIONS = path.join(__dirname, "..", "migrations");
const DB_NAME = "webapp_db";
const DB_USER = "webapp_user";
// mariadbd and mariadb-install-db live in /usr/sbin, which a non-root PATH may lack.
const PATH = `${process.env.PATH ?? ""}:/usr/sbin:/sbin`;

export interface Server {
  port: number;
  dir: string;
  socket: string;
  pid: number;
  /** mariadbd's arguments, to start it again on the same datadir. */
  args: string[];
}

export interface ReplicationPair {
  primary: Server;
  replica: Server;
  /** The app's DB_* for the primary. */
  env: Record<string, string>;
  /** Runs SQL as root on a server (over its socket) and returns the tab-separated rows. */
  sql: (server: Server, sql: string) => Promise<string>;
  /** SIGSTOP: a power cut; the kernel still completes TCP handshakes, nothing answers. */
  freeze: (server: Server) => void;
  thaw: (server: Server) => void;
  /** SIGKILL: the process is gone, the kernel resets its connections. */
  kill: (server: Server) => void;
  /**
   * The primary loses power: with `link`, replication's connection is cut first, dropping what
   * was on its way to the replica, then the primary is killed, in the same tick.
   */
  powerCut: () => void;
  /** SIGTERM, as `systemctl stop mariadb`: a clean shutdown; resolves when the process is gone. */
  shutdown: (server: Server) => Promise<void>;
  /** Starts a stopped server again on its datadir; resolves when it answers. */
  restart: (server: Server) => Promise<void>;
  /** Stops both servers, whatever state they are in, and deletes their files. Safe to call twice. */
  stop: () => void;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `test` holds, checking every 50 ms; fails naming `what` after `ms`. Resolves to the time it took. */
export async function until(what: string, ms: number, test: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await test())) {
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
  return Date.now() - start;
}

async function rootSql(server: Server, sql: string): Promise<string> {
  const { stdout } = await run("mariadb", ["--no-defaults", "--protocol=socket", `--socket=${server.socket}`, "-uroot", "-N", "-B", "-e", sql], {
    env: { ...process.env, PATH },
  });
  return stdout;
}

async function startServer(base: string, name: string, port: number, extra: string[]): Promise<Server> {
  const dir = path.join(base, name);
  const datadir = path.join(dir, "data");
  fs.mkdirSync(datadir, { recursive: true, mode: 0o700 });
  execFileSync(
    "mariadb-install-db",
    ["--no-defaults", `--datadir=${datadir}`, `--user=${os.userInfo().username}`, "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve"],
    // Its output only in the error, when it fails.
    { env: { ...process.env, PATH }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const socket = path.join(dir, "mariadbd.sock");
  const server: Server = { port, dir, socket, pid: 0, args: [
      "--no-defaults",
      ...(process.getuid?.() === 0 ? ["--user=root"] : []),
      `--datadir=${datadir}`,
      `--socket=${socket}`,
      `--pid-file=${path.join(dir, "mariadbd.pid")}`,
      `--log-error=${path.join(dir, "error.log")}`,
      `--port=${port}`,
      "--bind-address=127.0.0.1",
      "--skip-name-resolve",
      "--character-set-server=utf8mb4",
      "--collation-server=utf8mb4_unicode_ci",
      "--innodb-buffer-pool-size=32M",
      "--innodb-log-file-size=16M",
      "--max-connections=100",
      ...extra,
    ] };
  await spawnServer(server, name);
  return server;
}

async function spawnServer(server: Server, name: string): Promise<void> {
  const child = spawn("mariadbd", server.args, { env: { ...process.env, PATH }, detached: true, stdio: "ignore" });
  child.unref();
  server.pid = child.pid!;
  const { dir, port } = server;
  for (let i = 0; i < 120; i++) {
    try {
      await rootSql(server, "SELECT 1");
      return;
    } catch {
      await sleep(250);
    }
  }
  const log = fs.existsSync(path.join(dir, "error.log")) ? fs.readFileSync(path.join(dir, "error.log"), "utf8").slice(-2000) : "";
  throw new Error(`mariadbd ${name} did not answer on port ${port} within 30 s (port in use?)\n${log}`);
}

function alive(server: Server): boolean {
  try {
    process.kill(server.pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(server: Server, sig: NodeJS.Signals): void {
  try {
    process.kill(server.pid, sig);
  } catch {
    // Already gone.
  }
}

export interface PairOptions {
  /**
   * Semi-synchronous replication as the stack runs it (components/render/mariadb.ts): the
   * primary waits up to this long after the binlog sync (AFTER_SYNC) for the replica's ack, the
   * replica acks, and the binlog is synced at each commit. Default: async, as before.
   */
  semiSyncTimeoutMs?: number;
  /**
   * The replica reaches the primary through a link (a TCP relay) that carries the primary's
   * events `delayMs` late, as a network does, and that powerCut drops at once with what it
   * carries: events on their way are lost, as when the primary's host loses power. (A SIGKILL
   * alone lets the kernel deliver what the server had sent, on loopback at once.) Default: direct.
   */
  link?: { delayMs: number };
}

/**
 * A TCP relay to `port` that passes what `port` sends `delayMs` late; `cut()` resets both sides
 * of every connection, drops what is still on its way, and refuses new connections.
 */
async function relay(port: number, delayMs: number): Promise<{ port: number; cut: () => void }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    client.pipe(upstream);
    // Timers of one delay fire in the order they were set: the stream stays in order.
    upstream.on("data", (chunk) => setTimeout(() => client.destroyed || client.write(chunk), delayMs));
    for (const [a, b] of [pair, [upstream, client]]) {
      a.on("error", () => undefined);
      a.on("close", () => {
        b.destroy();
        pairs.delete(pair);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () => {
      server.close();
      for (const [client, upstream] of pairs) {
        // RST, discarding what is buffered either way.
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
  };
}

/**
 * Starts the pair and waits until the replica has applied the primary's setup. Whatever fails
 * after the first server started, both are stopped before this rejects.
 */
export async function startReplicationPair(primaryPort: number, replicaPort: number, options: PairOptions = {}): Promise<ReplicationPair> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "pi-app-replicas-"));
  const servers: Server[] = [];
  let link: Awaited<ReturnType<typeof relay>> | undefined;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    link?.cut();
    for (const s of servers) {
      signal(s, "SIGCONT");
      signal(s, "SIGKILL");
    }
    fs.rmSync(base, { recursive: true, force: true });
    process.off("exit", stop);
  };
  // Even if mocha dies without running after().
  process.on("exit", stop);
  try {
    const semiSync = options.semiSyncTimeoutMs;
    const primary = await startServer(base, "primary", primaryPort, [
      "--server-id=1",
      "--log-bin=primary-bin",
      "--binlog-format=ROW",
      ...(semiSync === undefined
        ? []
        : ["--sync-binlog=1", "--rpl-semi-sync-master-enabled=ON", "--rpl-semi-sync-master-wait-point=AFTER_SYNC", `--rpl-semi-sync-master-timeout=${semiSync}`]),
    ]);
    servers.push(primary);
    if (options.link) link = await relay(primary.port, options.link.delayMs);
    const replica = await startServer(base, "replica", replicaPort, [
      "--server-id=2",
      "--relay-log=replica-relay",
      "--read-only=ON",
      ...(semiSync === undefined ? [] : ["--rpl-semi-sync-slave-enabled=ON"]),
    ]);
    servers.push(replica);

    const password = crypto.randomBytes(16).toString("hex");
    const replPassword = crypto.randomBytes(16).toString("hex");
    const migrations = fs
      .readdirSync(MIGRATIONS)
      .filter((f) => /^[0-9]+_.*\.sql$/.test(f))
      .sort()
      .map((f) => fs.readFileSync(path.join(MIGRATIONS, f), "utf8"))
      .join("\n");
    // All binlogged, so the replica gets the database, the users and the schema by replication.
    await rootSql(
      primary,
      `CREATE DATABASE ${DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
       CREATE USER '${DB_USER}'@'127.0.0.1' IDENTIFIED BY '${password}';
       GRANT SELECT, INSERT, UPDATE, DELETE ON ${DB_NAME}.* TO '${DB_USER}'@'127.0.0.1';
       GRANT SLAVE MONITOR ON *.* TO '${DB_USER}'@'127.0.0.1';
       CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '${replPassword}';
       GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
       USE ${DB_NAME};
       ${migrations}`,
    );
    await rootSql(
      replica,
      `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${link?.port ?? primary.port}, MASTER_USER='repl', MASTER_PASSWORD='${replPassword}',
         MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
       START SLAVE;`,
    );
    for (let i = 0; ; i++) {
      const seen = await rootSql(replica, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${DB_NAME}' AND table_name = 'notes'`);
      if (seen.trim() === "1") break;
      if (i >= 80) throw new Error(`the replica did not get the schema within 20 s:\n${await rootSql(replica, "SHOW SLAVE STATUS\\G")}`);
      await sleep(250);
    }
    return {
      primary,
      replica,
      env: { DB_HOST: "127.0.0.1", DB_PORT: String(primary.port), DB_NAME, DB_USER, DB_PASSWORD: password },
      sql: rootSql,
      freeze: (s) => signal(s, "SIGSTOP"),
      thaw: (s) => signal(s, "SIGCONT"),
      kill: (s) => signal(s, "SIGKILL"),
      powerCut: () => {
        link?.cut();
        signal(primary, "SIGKILL");
      },
      shutdown: async (s) => {
        signal(s, "SIGTERM");
        for (let i = 0; i < 120 && alive(s); i++) await sleep(250);
      },
      restart: async (s) => {
        for (let i = 0; i < 120 && alive(s); i++) await sleep(250);
        await spawnServer(s, path.basename(s.dir));
      },
      stop,
    };
  } catch (err) {
    stop();
    throw err;
  }
}

/** The app's config for a pair: writes to its primary, reads from its replica as `replica`, the status uncached. */
export function pairConfig(pair: ReplicationPair, replica: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    ...pair.env,
    NODE_NAME: "pi-test",
    STATUS_CACHE_MS: "0",
    API_WRITE_TOKEN: TEST_WRITE_TOKEN,
    DB_REPLICAS: `${replica}@127.0.0.1:${pair.replica.port}`,
    ...env,
  });
}
