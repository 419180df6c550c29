// Loaded before @pulumi/pulumi (Pulumi.yaml nodeargs, tests/mocha-setup.ts, cli/pi-cluster.js):
// the SDK requires two large modules at load time that only function serialization uses
// (pulumi.runtime.serializeFunction, dynamic providers), which this project never calls:
// - typescript (9 MB of JavaScript, through typescript-shim.js, from runtime/closure and
//   provider/experimental), which upstream once made lazy (pulumi/pulumi#10185) and which
//   came back eagerly since;
// - @npmcli/arborist (from runtime/closure/codePaths.js), with pacote, sigstore and npm's fetch
//   stack behind it.
// Together they were about 40 % of the time it takes to load the SDK, paid on every preview,
// up and CLI run. Here a require of either from inside @pulumi/pulumi gets a stand-in that
// loads the real module at its first use, so anything that does use them still works.
import * as path from "path";

/** The modules made lazy, when the SDK asks for them. */
export const LAZY_MODULES: readonly string[] = ["typescript", "@npmcli/arborist"];

const SDK_DIR = `${path.sep}node_modules${path.sep}@pulumi${path.sep}pulumi${path.sep}`;

interface ModuleInternals {
    _load(request: string, parent: { filename?: string } | undefined, isMain: boolean): unknown;
}

/**
 * A stand-in for a module: an object whose every read loads `load()` once and reads from it.
 * It says it is an ES module, so that TypeScript's __importStar hands it over as it is rather
 * than copying (and so loading) every export.
 */
export function lazyModule(load: () => object): object {
    let real: object | undefined;
    const target = (): object => (real ??= load());
    return new Proxy(
        {},
        {
            get: (_, key) => (key === "__esModule" ? true : Reflect.get(target(), key)),
            has: (_, key) => key === "__esModule" || Reflect.has(target(), key),
        },
    );
}

/** Installs the hook; idempotent. Returns whether this call installed it. */
export function installLazyModules(): boolean {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Module = require("module") as ModuleInternals & { __piClusterLazy?: boolean };
    if (Module.__piClusterLazy) return false;
    const load = Module._load;
    Module._load = function (request, parent, isMain) {
        if (LAZY_MODULES.includes(request) && parent?.filename?.includes(SDK_DIR)) {
            return lazyModule(() => load.call(Module, request, parent, isMain) as object);
        }
        return load.call(Module, request, parent, isMain);
    };
    Module.__piClusterLazy = true;
    return true;
}

installLazyModules();
