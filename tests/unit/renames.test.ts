// A host renamed in config is recognised by its address and role, so its steps are aliased
// rather than deleted and created again on the same Pi.
import * as assert from "assert";
import { ConfigError } from "../../components/config";
import { Node, renamedHosts } from "../../components/renames";

const before: Node[] = [
    { name: "pi-lb", address: "10.254.0.121", role: "lb" },
    { name: "pi-web1", address: "10.254.0.122", role: "web" },
    { name: "pi-web2", address: "10.254.0.123", role: "web" },
    { name: "pi-db", address: "10.254.0.124", role: "db" },
];

function withName(nodes: Node[], address: string, name: string): Node[] {
    return nodes.map((n) => (n.address === address ? { ...n, name } : n));
}

describe("renamed hosts", () => {
    it("finds none on the first deployment or when nothing was renamed", () => {
        assert.deepStrictEqual([...renamedHosts([], before)], []);
        assert.deepStrictEqual([...renamedHosts(before, before)], []);
    });

    it("maps a renamed web server to the name it had at the same address", () => {
        assert.deepStrictEqual([...renamedHosts(before, withName(before, "10.254.0.123", "pi-web9"))], [["pi-web9", "pi-web2"]]);
    });

    it("maps a renamed database and load balancer too", () => {
        const now = withName(withName(before, "10.254.0.124", "pi-db-main"), "10.254.0.121", "pi-edge");
        assert.deepStrictEqual(
            [...renamedHosts(before, now)].sort(),
            [["pi-db-main", "pi-db"], ["pi-edge", "pi-lb"]],
        );
    });

    it("treats a new address as a new host, not a rename", () => {
        const now = [...before.filter((n) => n.name !== "pi-web2"), { name: "pi-web3", address: "10.254.0.125", role: "web" as const }];
        assert.deepStrictEqual([...renamedHosts(before, now)], []);
    });

    it("does not alias across roles", () => {
        const now = before.map((n) => (n.address === "10.254.0.123" ? { ...n, name: "pi-db2", role: "db" as const } : n));
        assert.deepStrictEqual([...renamedHosts(before, now)], []);
    });

    it("refuses two web servers that trade names, naming both addresses", () => {
        const now = withName(withName(before, "10.254.0.122", "pi-web2"), "10.254.0.123", "pi-web1");
        assert.throws(
            () => renamedHosts(before, now),
            (e: Error) => e instanceof ConfigError && /"pi-web1" moves from 10\.254\.0\.122 to 10\.254\.0\.123/.test(e.message) && /one host per/.test(e.message),
        );
    });
});
