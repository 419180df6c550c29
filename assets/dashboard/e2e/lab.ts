/**
 * The lab command the browser tests drive: `lab/lab`, or `e2e/fixture/lab.mjs` for the stand-in
 * LB. What it says goes under the test's line.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function runLab(lab: string, ...args: string[]): Promise<void> {
  const { stdout, stderr } = await run(lab, args, { timeout: 120_000 });
  process.stdout.write(`      $ ${lab} ${args.join(' ')}\n${(stdout + stderr).replace(/^/gm, '        ')}\n`);
}
