// components/lazy-modules.ts: the SDK's typescript and @npmcli/arborist load at their first
// use only. tests/mocha-setup.ts installs the hook before any spec loads @pulumi/pulumi.
import * as assert from "assert";
import { installLazyModules, lazyModule } from "../../components/lazy-modules";

describe("the SDK's typescript and @npmcli/arborist, loaded at first use", () => {
    it("loads a stand-in's module at the first read, once, and reads through it", () => {
        let loads = 0;
        const real = { answer: 42, nested: { x: 1 } };
        const m = lazyModule(() => {
            loads++;
            return real;
        }) as typeof real & { __esModule: boolean };
        assert.strictEqual(loads, 0, "loaded before any use");
        // __importStar hands an ES module over as it is, without reading its exports.
        assert.strictEqual(m.__esModule, true);
        assert.ok("__esModule" in m);
        assert.strictEqual(loads, 0, "__esModule loaded it");
        assert.strictEqual(m.answer, 42);
        assert.strictEqual(m.nested, real.nested);
        assert.ok("nested" in m);
        assert.ok(!("missing" in m));
        assert.strictEqual(loads, 1);
    });

    it("is installed once, before the SDK loaded either module", () => {
        assert.strictEqual(installLazyModules(), false, "tests/mocha-setup.ts did not install it");
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        require("@pulumi/pulumi");
        const loaded = Object.keys(require.cache).filter((f) => /[/\\]node_modules[/\\]@npmcli[/\\]arborist[/\\]/.test(f));
        assert.deepStrictEqual(loaded, [], "@pulumi/pulumi loaded @npmcli/arborist");
        // typescript itself is ts-node's here; the SDK's shim holds the stand-in.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const shim = require("@pulumi/pulumi/typescript-shim") as { __esModule?: boolean; SyntaxKind?: object };
        assert.strictEqual(shim.__esModule, true, "the SDK's typescript-shim holds the real typescript");
        assert.strictEqual(typeof shim.SyntaxKind, "object", "the stand-in does not read through to typescript");
    });
});
