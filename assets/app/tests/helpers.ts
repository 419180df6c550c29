import net from "node:net";
import { loadConfig, type Config } from "../src/config";
import { Database } from "../src/db/pool";

/** The config the tests run with: the test MariaDB from the environment, plus overrides. */
export function testConfig(overrides: Partial<Omit<Config, "db">> & { db?: Partial<Config["db"]> } = {}): Config {
  const base = loadConfig({ ...process.env, NODE_NAME: "pi-test", STATUS_CACHE_MS: "0" });
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
