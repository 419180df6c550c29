// Bad config through the real engine: `pulumi preview` (the pinned CLI and language host,
// a throwaway file backend) must fail with a message that names the key, before any
// resource exists, so no host is ever contacted. Needs no lab and no provider plugin.
import * as assert from "assert";
import { rawConfig } from "../unit/helpers";
import { throwawayStack } from "./lib";

describe("pulumi preview rejects bad config with the real engine", function () {
    const stack = throwawayStack("preview");
    const preview = (config: Record<string, unknown>) => stack.preview(config);

    before(() => stack.init());
    after(() => stack.remove());

    it("names a malformed address and the value, with no stack trace and no resource", () => {
        const c = rawConfig(2);
        (c.webServers as any[])[1].address = "10.254.0.300";
        const r = preview(c);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:webServers\[1\]\.address: expected an IPv4 address such as 192\.168\.254\.122, got "10\.254\.0\.300"/);
        assert.doesNotMatch(r.out, /at parseConfig/);
        assert.doesNotMatch(r.out, /command:remote/);
    });

    it("names an empty web server list", () => {
        const r = preview({ ...rawConfig(2), webServers: [] });
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:webServers: expected at least one web server/);
    });

    it("names a missing required key (Pulumi's own schema check)", () => {
        const c = rawConfig(2);
        delete c.database;
        const r = preview(c);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /missing configuration value.*'database'/);
    });

    it("names a port out of range (Pulumi's schema, then ours)", () => {
        const r = preview({ ...rawConfig(2), appPort: 70000 });
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:appPort: expected a port between 1 and 65535, got 70000/);
    });
});
