/**
 * Loaded by .mocharc.json after ts-node (transpile-only: `tsc --noEmit` in scripts/test.sh
 * is the type check), before the spec files.
 *
 * Stack traces through Node's own source-map support instead of the source-map-support
 * module that ts-node installs. @pulumi/pulumi formats a stack trace for every promise it
 * makes (runtime/debuggable.js, for its leak report), and that module maps each frame of
 * each one in JavaScript: it was most of the unit suite's CPU (tests/unit/cluster.test.ts
 * went from 21-24 s to 14-16 s of CPU without it). A failure's stack shows the same
 * .ts lines and columns either way.
 *
 * Then the SDK's typescript and @npmcli/arborist load only if used, as in the program
 * (components/lazy-modules.ts).
 */
import "../components/lazy-modules";

process.setSourceMapsEnabled(true);
delete (Error as { prepareStackTrace?: unknown }).prepareStackTrace;
