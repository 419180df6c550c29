#!/usr/bin/env node
// `npx pi-cluster ...` from the repo (package.json "bin"): the CLI in cli/, its TypeScript
// stripped by sucrase as the program's is.
require("sucrase/register/ts");
// Before @pulumi/pulumi: the SDK's typescript and @npmcli/arborist load only if used.
require("../components/lazy-modules.ts");
require("./main.ts")
    .main(process.argv.slice(2))
    .then((code) => (process.exitCode = code));
