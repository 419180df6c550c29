import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

/**
 * Loaded by .mocharc.json before the spec files: when DB_HOST is not set, start a throwaway
 * MariaDB with scripts/test-mariadb.sh and export its DB_* variables for the tests; the global
 * teardown stops it. With DB_HOST set, the tests use that server as it is (it must have the
 * migrations applied). This runs at load time, not in mochaGlobalSetup, because the specs read
 * the config while they are being loaded, before mocha's global setup runs.
 */
const script = path.join(__dirname, "..", "scripts", "test-mariadb.sh");
let started = false;

function startTestMariaDb(): void {
  const output = execFileSync("bash", [script, "start"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  for (const line of output.split("\n")) {
    const match = /^(DB_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) process.env[match[1]] = match[2];
  }
  if (!process.env.DB_HOST) throw new Error(`${script} start printed no DB_HOST`);
  started = true;
}

if (!process.env.DB_HOST) startTestMariaDb();

/** True when this run started the throwaway MariaDB, so tests may restart, pause and resume it. */
export const ownsTestMariaDb = (): boolean => started;

/** Runs `test-mariadb.sh restart|pause|resume` without blocking the event loop the app under test runs on. */
export async function testMariaDb(command: "restart" | "pause" | "resume"): Promise<void> {
  await promisify(execFile)("bash", [script, command]);
}

export function mochaGlobalTeardown(): void {
  if (started && !process.env.KEEP_TEST_MARIADB) execFileSync("bash", [script, "stop"], { stdio: "inherit" });
}
