import net from "node:net";
import { loadConfig, type Config } from "../src/config";
import { Database } from "../src/db/pool";

/** The write token the tests' app takes (a test value, not a secret). */
export const TEST_WRITE_TOKEN = "test-write-token-0123456789abcdef";
/** The header an authorised write carries. */
export const AUTH = { Authorization: `Bearer ${TEST_WRITE_TOKEN}` };

/** What the load balancer's internal routes add to a request (components/render/nginx.ts). */
export const INTERNAL = { "X-Pi-Cluster-Access": "internal" };

/** The config the tests run with: the test MariaDB from the environment, plus overrides. */
export function testConfig(overrides: Partial<Omit<Config, "db">> & { db?: Partial<Config["db"]> } = {}): Config {
  const base = loadConfig({ ...process.env, NODE_NAME: "pi-test", STATUS_CACHE_MS: "0", API_WRITE_TOKEN: TEST_WRITE_TOKEN });
  return { ...base, ...overrides, db: { ...base.db, ...overrides.db } };
}

/** A Database whose retries do not wait, so failure paths run fast. */
export function testDatabase(config: Config, sleeps: number[] = []): Database {
  return new Database(config.db, {
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A loopback server that accepts connections and never says a word, like a hung MariaDB. */
export async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A TCP proxy to a MariaDB port that can fake a DB host that lost power and booted again while
 * the app was idle: after `reboot()` the host knows none of the old connections, so each is
 * reset (RST) when the app next sends on it, while new connections work. The app saw no FIN.
 */
export async function rebootableProxy(host: string, targetPort: number, listenPort = 0): Promise<{
  port: number;
  reboot: () => void;
  /** Old connections reset since the reboot. */
  resets: () => number;
  close: () => Promise<void>;
}> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const sockets = new Set<net.Socket>();
  let resets = 0;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    const upstream = net.connect(targetPort, host);
    const pair = { client, upstream };
    pairs.add(pair);
    client.pipe(upstream).on("error", () => undefined);
    upstream.pipe(client).on("error", () => undefined);
    client.on("close", () => {
      upstream.destroy();
      pairs.delete(pair);
    });
    client.on("error", () => undefined);
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    reboot: () => {
      for (const pair of pairs) {
        pairs.delete(pair);
        const { client, upstream } = pair;
        client.unpipe(upstream);
        upstream.unpipe(client);
        upstream.removeAllListeners("close");
        upstream.destroy();
        // unpipe() paused the socket, and a paused socket emits no 'data'.
        client.on("data", () => {
          resets++;
          client.resetAndDestroy();
        });
        client.resume();
      }
    },
    resets: () => resets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One sample of Prometheus's text format: `name{label="value",...} value`. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition, and the type each metric is declared with. */
export function parseMetrics(text: string): { samples: MetricSample[]; types: Map<string, string> } {
  const samples: MetricSample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1], type[2]);
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[name] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return { samples, types };
}

/** The value of the sample with exactly these labels, or undefined when there is none. */
export function sampleValue(samples: MetricSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted)?.value;
}
