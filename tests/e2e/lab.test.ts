// End-to-end checks of the lab itself (lab/lab): the simulated Pis the rest of the e2e suite
// runs against. Needs root and the host packages `lab/lab up` installs; brings the lab up
// itself (idempotent) and leaves it in the default state: 4 hosts up, bare.
import { strict as assert } from "assert";
import { execFileSync, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// js-yaml ships with mocha; parsing the file with a real YAML parser also checks its syntax.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const yaml: { load(text: string): unknown } = require("js-yaml");

const repoRoot = path.resolve(__dirname, "..", "..");
const lab = path.join(repoRoot, "lab", "lab");
const configFile = path.join(repoRoot, "Pulumi.lab.yaml");

interface LabHost { name: string; address: string; hostKey: string }
interface LabConfig { sshUser: string; sshPrivateKeyPath: string; managementCidr: string; hosts: LabHost[] }

function runLab(...args: string[]): string {
  return execFileSync(lab, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function readConfig(): LabConfig {
  const doc = yaml.load(fs.readFileSync(configFile, "utf8")) as { config: Record<string, unknown> };
  const c = doc.config;
  const lb = c["pi-cluster:loadBalancer"] as LabHost;
  const webs = c["pi-cluster:webServers"] as LabHost[];
  const db = c["pi-cluster:database"] as LabHost;
  return {
    sshUser: c["pi-cluster:sshUser"] as string,
    sshPrivateKeyPath: c["pi-cluster:sshPrivateKeyPath"] as string,
    managementCidr: c["pi-cluster:managementCidr"] as string,
    hosts: [lb, ...webs, db],
  };
}

function host(cfg: LabConfig, name: string): LabHost {
  const h = cfg.hosts.find((x) => x.name === name);
  assert.ok(h, `${name} is in Pulumi.lab.yaml`);
  return h;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lab-test-"));

// ssh exactly as the stack does: the key and user from the config, the host key pinned to
// the one in the config (a mismatch is refused, never trusted on first use).
function sshAs(cfg: LabConfig, h: LabHost, cmd: string, pinnedKey = h.hostKey, timeoutSec = 5): SpawnSyncReturns<string> {
  const knownHosts = path.join(tmp, `known_hosts-${h.name}`);
  fs.writeFileSync(knownHosts, `${h.address} ${pinnedKey}\n`);
  return spawnSync("ssh", [
    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", cfg.sshPrivateKeyPath,
    "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlgorithms=ssh-ed25519",
    "-o", `ConnectTimeout=${timeoutSec}`, "-o", "LogLevel=ERROR",
    `${cfg.sshUser}@${h.address}`, cmd,
  ], { encoding: "utf8", timeout: 15 * 60 * 1000 });
}

function sshOk(cfg: LabConfig, h: LabHost, cmd: string): string {
  const r = sshAs(cfg, h, cmd);
  assert.equal(r.status, 0, `ssh ${h.name} '${cmd}' failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function statusOf(name: string): string {
  const line = runLab("status").split("\n").find((l) => l.split(/\s+/)[0] === name);
  assert.ok(line, `lab status lists ${name}`);
  return line.trim().split(/\s+/)[2];
}

describe("lab: simulated Pis", function () {
  let cfg: LabConfig;

  before(function () {
    runLab("up");
    cfg = readConfig();
  });

  after(function () {
    // Leave the default state for whoever comes next: 4 hosts, running, bare.
    runLab("up");
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("writes the four default hosts with their contract addresses to Pulumi.lab.yaml", function () {
    assert.equal(cfg.sshUser, "pi");
    assert.equal(cfg.managementCidr, "10.254.0.0/24");
    assert.deepEqual(cfg.hosts.map((h) => `${h.name} ${h.address}`), [
      "pi-lb 10.254.0.121", "pi-web1 10.254.0.122", "pi-web2 10.254.0.123", "pi-db 10.254.0.124",
    ]);
    for (const h of cfg.hosts) assert.match(h.hostKey, /^ssh-ed25519 [A-Za-z0-9+/]+=*$/, `${h.name} hostKey`);
    assert.equal(new Set(cfg.hosts.map((h) => h.hostKey)).size, 4, "every host has its own host key");
  });

  it("refuses a replica count it cannot address, naming the flag, before it changes anything", function () {
    const before = fs.readFileSync(configFile, "utf8");
    for (const [args, message] of [
      [["config", "--web", "5", "--replicas", "1"], /--web 5 with --replicas 1: expected at most 4 web servers with replicas \(pi-web5 would take pi-db-read1's \.127\)/],
      [["config", "--replicas", "x"], /--replicas x: expected a number from 0 to 20/],
      [["replica", "pi-web1", "stopped"], /'pi-web1' is not a replica/],
    ] as const) {
      const r = spawnSync(lab, [...args], { encoding: "utf8" });
      assert.notEqual(r.status, 0, args.join(" "));
      assert.match(r.stderr, message);
    }
    assert.equal(fs.readFileSync(configFile, "utf8"), before, "a refused command rewrote Pulumi.lab.yaml");
  });

  it("answers ssh on every host with its pinned key, with systemd running", function () {
    for (const h of cfg.hosts) {
      assert.equal(sshOk(cfg, h, "hostname").trim(), h.name);
      const state = sshAs(cfg, h, "systemctl is-system-running");
      assert.equal(state.stdout.trim(), "running",
        `${h.name}: ${sshAs(cfg, h, "systemctl --failed --no-legend").stdout}`);
    }
  });

  it("refuses a host whose key does not match the pinned one", function () {
    const other = host(cfg, "pi-web2").hostKey;
    const r = sshAs(cfg, host(cfg, "pi-web1"), "true", other);
    assert.notEqual(r.status, 0, "ssh with a wrong pinned key must fail");
    assert.match(r.stderr, /host key|Host key/);
  });

  it("gives pi passwordless sudo and a bare Pi OS Lite (no nginx, MariaDB or Node)", function () {
    const h = host(cfg, "pi-web1");
    assert.equal(sshOk(cfg, h, "sudo -n id -u").trim(), "0");
    for (const bin of ["nginx", "mariadbd", "node"]) {
      assert.notEqual(sshAs(cfg, h, `command -v ${bin}`).status, 0, `${bin} must not be installed`);
    }
  });

  it("matches the uplink MTU on host0", function () {
    const dev = execFileSync("ip", ["-4", "route", "show", "default"], { encoding: "utf8" }).split(/\s+/);
    const uplinkMtu = fs.readFileSync(`/sys/class/net/${dev[dev.indexOf("dev") + 1]}/mtu`, "utf8").trim();
    const link = sshOk(cfg, host(cfg, "pi-db"), "ip -o link show host0");
    assert.equal(/ mtu (\d+) /.exec(link)?.[1], uplinkMtu);
  });

  it("lets lab hosts out only for DNS and HTTP(S), never to private ranges", function () {
    // Checked on the ruleset: sending probe traffic to private addresses is not allowed here.
    const rules = execFileSync("nft", ["list", "table", "inet", "pilab"], { encoding: "utf8" });
    assert.match(rules, /iifname "pilab0" ip daddr \{[^}]*192\.168\.0\.0\/16[^}]*\} counter packets \d+ bytes \d+ drop/);
    assert.match(rules, /iifname "pilab0" ip daddr \{[^}]*172\.16\.0\.0\/12[^}]*\} counter/);
    assert.match(rules, /iifname "pilab0" oifname "[^"]+" ip daddr != 10\.254\.0\.0\/24 tcp dport \{ 80, 443 \} accept/);
    assert.match(rules, /iifname "pilab0" counter packets \d+ bytes \d+ drop\n\s*\}/);
    assert.match(rules, /masquerade/);
  });

  it("installs nginx through the NAT with apt-get", function () {
    const h = host(cfg, "pi-web1");
    const t0 = Date.now();
    sshOk(cfg, h, "sudo DEBIAN_FRONTEND=noninteractive apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx");
    console.log(`      apt-get update + install nginx: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(sshOk(cfg, h, "systemctl is-active nginx").trim(), "active");
    const page = execFileSync("curl", ["-fsS", "--max-time", "5", `http://${h.address}/`], { encoding: "utf8" });
    assert.match(page, /Welcome to nginx/);
  });

  it("stop cuts one Pi's power while the others still answer", function () {
    const web1 = host(cfg, "pi-web1");
    sshOk(cfg, web1, "echo before-power-cut > /home/pi/marker && sync");
    runLab("stop", "pi-web1");
    assert.equal(statusOf("pi-web1"), "stopped");
    const r = sshAs(cfg, web1, "true", web1.hostKey, 3);
    assert.notEqual(r.status, 0, "a stopped Pi must not answer ssh");
    for (const name of ["pi-lb", "pi-web2", "pi-db"]) {
      assert.equal(sshOk(cfg, host(cfg, name), "hostname").trim(), name);
    }
  });

  it("start brings the Pi back with its disk and host key intact", function () {
    const web1 = host(cfg, "pi-web1");
    runLab("start", "pi-web1");
    assert.equal(statusOf("pi-web1"), "running");
    assert.equal(sshOk(cfg, web1, "cat /home/pi/marker").trim(), "before-power-cut");
    assert.equal(sshOk(cfg, web1, "systemctl is-active nginx").trim(), "active");
    assert.equal(readConfig().hosts.find((h) => h.name === "pi-web1")?.hostKey, web1.hostKey);
  });

  it("reset wipes the Pi back to bare with a new host key in Pulumi.lab.yaml", function () {
    const before = host(cfg, "pi-web1");
    const t0 = Date.now();
    runLab("reset", "pi-web1");
    console.log(`      lab reset: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const after = host(readConfig(), "pi-web1");
    assert.notEqual(after.hostKey, before.hostKey, "reset must give a new host key");
    assert.notEqual(sshAs(cfg, after, "true", before.hostKey).status, 0, "the old key must no longer match");
    assert.equal(sshOk(cfg, after, "test -e /home/pi/marker && echo present || echo gone").trim(), "gone");
    assert.notEqual(sshAs(cfg, after, "dpkg -s nginx").status, 0, "nginx must be gone");
    assert.equal(sshOk(cfg, after, "systemctl is-system-running --wait").trim(), "running");
    // The other hosts keep their keys, and many ssh logins later systemd is still running
    // (user managers come and go without failing).
    for (const name of ["pi-lb", "pi-web2", "pi-db"]) {
      assert.equal(host(readConfig(), name).hostKey, host(cfg, name).hostKey);
      assert.equal(sshAs(cfg, host(cfg, name), "systemctl is-system-running").stdout.trim(), "running", name);
    }
    cfg = readConfig();
  });
});
