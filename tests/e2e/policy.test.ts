// The policy pack through the real engine: `pulumi preview --policy-pack policy` (the pinned
// CLI and language host, a throwaway file backend) on a production-like config, which must
// pass, and on one that the program accepts but production must not run, which must fail
// naming the rules. The hosts are loopback addresses, and a preview opens no SSH connection
// (the command provider connects only in create, update and delete). Needs no lab; the
// first preview builds the artifacts into .build/, as the cluster suite would.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { AGE_PUBLIC_KEY, HOST_KEY, writeKey } from "../unit/helpers";
import { REPO, throwawayStack } from "./lib";

describe("pulumi preview with the policy pack", function () {
    const stack = throwawayStack("policy");
    const host = (name: string, n: number) => ({ name, address: `127.0.0.${n}`, hostKey: HOST_KEY });
    const production = {
        sshPrivateKeyPath: writeKey(stack.dir),
        managementCidr: "127.0.0.0/8",
        loadBalancer: host("pi-lb", 121),
        webServers: [host("pi-web1", 122), host("pi-web2", 123)],
        database: host("pi-db", 124),
        backup: { agePublicKey: AGE_PUBLIC_KEY },
    };
    const packConfig = path.join(stack.dir, "policy-config.json");
    const preview = (config: Record<string, unknown>) => stack.preview(config, ["--policy-pack", path.join(REPO, "policy"), "--policy-pack-config", packConfig]);

    before(() => {
        stack.init();
        // This throwaway stack stands for production: the production rules hold for the stacks their config names.
        const stacks = { stacks: [stack.name] };
        fs.writeFileSync(packConfig, JSON.stringify({ "production-management-network": stacks, "production-https-only": stacks, "production-backups-off-the-database": stacks }));
    });

    after(() => stack.remove());

    it("passes a production config with a narrow management network, HTTPS only and backups to the load balancer", () => {
        const r = preview(production);
        assert.strictEqual(r.status, 0, r.out);
        assert.match(r.out, /Policies:\n\s+✅ pi-cluster@v0\.1\.0 \(local: [^)]*policy\)/);
    });

    it("fails a production config the program accepts: 0.0.0.0/0 with allowPublicManagement, and plain HTTP", () => {
        const r = preview({ ...production, managementCidr: "0.0.0.0/0", allowPublicManagement: true, httpsRedirect: false });
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /❌ pi-cluster@v0\.1\.0 \(local: [^)]*policy\)/);
        assert.match(r.out, /\[mandatory\]\s+production-management-network[\s\S]*pi-cluster:managementCidr is 0\.0\.0\.0\/0/);
        assert.match(r.out, /\[mandatory\]\s+production-https-only[\s\S]*pi-cluster:httpsRedirect is false/);
        // The program itself accepted the config: the pack, not a config error, stopped it.
        assert.doesNotMatch(r.out, /invalid stack config/);
    });
});
