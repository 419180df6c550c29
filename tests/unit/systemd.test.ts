// The units the stack writes: their sandbox lines, and systemd's own tools on them
// (`systemd-analyze verify`, and `systemd-analyze security --offline` for the exposure score).
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderPm2Unit } from "../../components/render/app";
import { BACKUP_ASSETS, renderBackupService, renderBackupTimer, renderVerifyService, renderVerifyTimer } from "../../components/render/backup";
import { renderStreamService } from "../../components/render/binlogStream";
import { renderFirewallUnit } from "../../components/render/firewall";
import { renderBackupMetricsService, renderBackupMetricsTimer } from "../../components/render/monitoring";
import { renderScript, SCRIPTS_DIR } from "../../components/render/shell";
import { renderRenewService, renderRenewTimer } from "../../components/render/tls";
import { tmpDir } from "./helpers";
import {
    BACKUP_METRICS_FILE,
    BACKUP_METRICS_SCRIPT,
    BACKUP_METRICS_UNIT,
    BACKUP_TOOL,
    NODE_EXPORTER_TEXTFILE_DIR,
    PM2_HOME,
    STREAM_TOOL,
    STREAM_UNIT,
    TLS_RENEW_SCRIPT,
    TLS_RENEW_UNIT,
} from "../../components/constants";

const units = { "pi-cluster-app.service": renderPm2Unit(), "pi-cluster-firewall.service": renderFirewallUnit() };

function has(unit: string, ...lines: string[]): void {
    for (const line of lines) assert.ok(unit.split("\n").includes(line), `missing line: ${line}`);
}

/** Writes the unit under its own name (systemd-analyze takes the unit's name from the file). */
function unitFile(name: keyof typeof units): string {
    const f = path.join(tmpDir("pi-unit-"), name);
    fs.writeFileSync(f, units[name]);
    return f;
}

function systemdAnalyze(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync("systemd-analyze", args, { encoding: "utf8" });
    assert.strictEqual(r.error, undefined, "systemd-analyze must be installed (Debian's systemd package)");
    return r;
}

/** The overall exposure `systemd-analyze security --offline=yes` gives a unit file, 0 (best) to 10. */
function exposure(file: string): number {
    const r = systemdAnalyze(["security", "--offline=yes", "--no-pager", file]);
    const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout);
    assert.ok(m, `no exposure level in: ${r.stdout}${r.stderr}`);
    return Number(m[1]);
}

const COMMON = [
    "NoNewPrivileges=yes",
    "UMask=0077",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateMounts=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallErrorNumber=EPERM",
];

describe("the app's unit", () => {
    const u = units["pi-cluster-app.service"];

    it("runs PM2 with no capabilities, on a read-only system where only PM2_HOME is writable", () => {
        has(u, ...COMMON, "CapabilityBoundingSet=", "AmbientCapabilities=", "PrivateTmp=yes", "RemoveIPC=yes", "User=pi-cluster-app");
        assert.strictEqual(PM2_HOME, "/var/lib/pi-cluster-app/.pm2");
        has(u, `Environment=PM2_HOME=${PM2_HOME}`, "StateDirectory=pi-cluster-app/.pm2", "StateDirectoryMode=0700");
        assert.doesNotMatch(u, /^(ReadWritePaths|ReadOnlyPaths)=/m, "the state directory is the only writable path");
    });

    it("lets the app use IP and PM2 its unix sockets, and nothing else", () => {
        has(u, "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX");
    });

    it("leaves V8's JIT writable and executable memory", () => {
        assert.doesNotMatch(u, /MemoryDenyWriteExecute/);
    });
});

describe("the firewall's unit", () => {
    const u = units["pi-cluster-firewall.service"];

    it("runs nft with CAP_NET_ADMIN and netlink only, on a read-only system", () => {
        has(u, ...COMMON, "CapabilityBoundingSet=CAP_NET_ADMIN", "RestrictAddressFamilies=AF_NETLINK AF_UNIX", "IPAddressDeny=any", "MemoryDenyWriteExecute=yes");
    });

    it("keeps the host's network and users, which nft must change and act as", () => {
        assert.doesNotMatch(u, /^(PrivateNetwork|PrivateUsers|PrivateTmp)=/m);
    });
});

describe("both units, by systemd's own tools", () => {
    // Scores before the sandbox, measured the same way with systemd 252.
    for (const [name, unsandboxed] of [["pi-cluster-app.service", 9.2], ["pi-cluster-firewall.service", 9.5]] as const) {
        it(`${name} passes systemd-analyze verify without a warning`, () => {
            const r = systemdAnalyze(["verify", unitFile(name)]);
            assert.strictEqual(r.status, 0, r.stderr);
            // verify only warns (exit 0) on an unknown key or a bad value, which systemd then ignores.
            assert.strictEqual(r.stderr, "");
        });

        it(`${name} scores 2.0 or less with systemd-analyze security (${unsandboxed} unsandboxed)`, () => {
            assert.ok(exposure(unitFile(name)) <= 2.0);
        });
    }
});

describe("the TLS renewal's units", () => {
    it("pass systemd-analyze verify without a warning: a daily oneshot of the rendered script", () => {
        const dir = tmpDir("pi-unit-");
        const service = path.join(dir, `${TLS_RENEW_UNIT}.service`);
        const timer = path.join(dir, `${TLS_RENEW_UNIT}.timer`);
        fs.writeFileSync(service, renderRenewService("nginx"));
        fs.writeFileSync(timer, renderRenewTimer());
        const r = systemdAnalyze(["verify", service, timer]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stderr, "");
        has(renderRenewService("nginx"), "Type=oneshot", `ExecStart=/bin/bash ${TLS_RENEW_SCRIPT} apply`, "NoNewPrivileges=yes");
        has(renderRenewTimer(), "OnCalendar=daily", "Persistent=true", "WantedBy=timers.target");
    });

    it("are named as lib.sh installs them: every step script gets the names as variables", () => {
        const script = renderScript("db-tls", { STEP: "t" });
        assert.match(script, new RegExp(`^TLS_RENEW_SCRIPT='${TLS_RENEW_SCRIPT}'$`, "m"));
        assert.match(script, new RegExp(`^TLS_RENEW_UNIT='${TLS_RENEW_UNIT}'$`, "m"));
        assert.ok(script.includes('put_file "$1" "$TLS_RENEW_SCRIPT" 0700'));
        assert.ok(script.includes('put_file "$3" "/etc/systemd/system/$TLS_RENEW_UNIT.timer" 0644'));
    });
});

describe("systemd-analyze, as these tests and the steps use it", () => {
    function typo(): string {
        const f = path.join(tmpDir("pi-unit-"), "pi-cluster-app.service");
        fs.writeFileSync(f, units["pi-cluster-app.service"].replace("\nProtectSystem=strict\n", "\nProtectSytem=strict\n"));
        return f;
    }

    it("warns on an unknown key, so the checks above can fail", () => {
        const f = typo();
        assert.match(systemdAnalyze(["verify", f]).stderr, /Unknown key 'ProtectSytem'/);
        assert.ok(exposure(f) > exposure(unitFile("pi-cluster-app.service")));
    });

    it("makes the steps' verify_unit fail on that warning, which systemd-analyze exits 0 on", () => {
        const verify = (f: string) => spawnSync("bash", ["-c", `source ${path.join(SCRIPTS_DIR, "lib.sh")} && verify_unit "$1"`, "bash", f], { encoding: "utf8" });
        for (const name of Object.keys(units) as (keyof typeof units)[]) {
            const ok = verify(unitFile(name));
            assert.strictEqual(ok.status, 0, ok.stderr);
        }
        const bad = verify(typo());
        assert.strictEqual(bad.status, 1);
        assert.match(bad.stderr, /Unknown key 'ProtectSytem'[\s\S]*verify warns about .*pi-cluster-app\.service \(above\)/);
    });
});

describe("the backup units", () => {
    const schedule = { fullOnCalendar: "daily", incrementalOnCalendar: "hourly", binlogShipSeconds: 60 };
    // The tool is not installed here: the units point at the repository's copy for systemd-analyze.
    const here = (u: string) => u.replace(BACKUP_TOOL, path.join(BACKUP_ASSETS, "pi-cluster-backup.sh"));
    const files = {
        "pi-cluster-backup-full.service": renderBackupService("full"),
        "pi-cluster-backup-full.timer": renderBackupTimer("full", schedule),
        "pi-cluster-backup-incremental.service": renderBackupService("incremental"),
        "pi-cluster-backup-incremental.timer": renderBackupTimer("incremental", schedule),
        "pi-cluster-backup-ship-binlogs.service": renderBackupService("ship-binlogs"),
        "pi-cluster-backup-ship-binlogs.timer": renderBackupTimer("ship-binlogs", schedule),
        "pi-cluster-backup-verify.service": renderVerifyService("pi-backup", "/srv/pi-cluster-backups"),
        "pi-cluster-backup-verify.timer": renderVerifyTimer(),
    };
    const write = (): string => {
        const dir = tmpDir("pi-backup-units-");
        for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), here(text));
        return dir;
    };

    it("run the tool as a oneshot that fails its unit, in the sandbox, writing only the backup state", () => {
        const u = files["pi-cluster-backup-full.service"];
        has(u, ...COMMON, "Type=oneshot", `ExecStart=${BACKUP_TOOL} full`, "ReadWritePaths=/var/lib/pi-cluster-backup", "PrivateTmp=yes");
        has(u, "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE");
        has(files["pi-cluster-backup-verify.service"], ...COMMON, "User=pi-backup", "ReadWritePaths=/srv/pi-cluster-backups", "PrivateNetwork=yes", "CapabilityBoundingSet=");
    });

    it("follow the seed's schedule: full daily, incremental hourly, binlogs every binlogShipSeconds", () => {
        has(files["pi-cluster-backup-full.timer"], "OnCalendar=daily", "Persistent=yes");
        has(files["pi-cluster-backup-incremental.timer"], "OnCalendar=hourly");
        has(files["pi-cluster-backup-ship-binlogs.timer"], "OnUnitActiveSec=60s", "OnBootSec=60s");
    });

    it("pass systemd-analyze verify without a warning", () => {
        const dir = write();
        const r = systemdAnalyze(["verify", ...Object.keys(files).map((n) => path.join(dir, n))]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stderr, "");
    });

    it("score 2.5 or less with systemd-analyze security", () => {
        const dir = write();
        for (const n of ["pi-cluster-backup-full.service", "pi-cluster-backup-verify.service"]) {
            const e = exposure(path.join(dir, n));
            assert.ok(e <= 2.5, `${n}: ${e}`);
        }
    });
});

describe("the binlog stream's unit", () => {
    const u = renderStreamService({ user: "pi-backup", dir: "/srv/pi-cluster-backups", dbAddress: "10.254.0.124" });
    // The tool is not installed here: the unit points at the repository's copy for systemd-analyze.
    const file = (): string => {
        const f = path.join(tmpDir("pi-unit-"), `${STREAM_UNIT}.service`);
        fs.writeFileSync(f, u.replace(STREAM_TOOL, path.join(BACKUP_ASSETS, "pi-cluster-binlog-stream.sh")));
        return f;
    };

    it("runs the stream as the backup account with no capabilities, writing only the backup directory, talking only to the database", () => {
        has(u, ...COMMON, "User=pi-backup", "Group=pi-backup", `ExecStart=${STREAM_TOOL} run`, "ReadWritePaths=/srv/pi-cluster-backups", "CapabilityBoundingSet=");
        has(u, "IPAddressDeny=any", "IPAddressAllow=10.254.0.124", `RuntimeDirectory=${STREAM_UNIT}`, "PrivateTmp=yes");
    });

    it("is started again whenever it fails, and systemd never gives up on it", () => {
        has(u, "Restart=on-failure", "RestartSec=2", "StartLimitIntervalSec=0", "WantedBy=multi-user.target");
    });

    it("passes systemd-analyze verify without a warning, and scores 2.5 or less with systemd-analyze security", () => {
        const f = file();
        const r = systemdAnalyze(["verify", f]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stderr, "");
        const e = exposure(f);
        assert.ok(e <= 2.5, `${e}`);
    });
});

describe("the backup metrics' units (monitoring on, on the backup target)", () => {
    const service = renderBackupMetricsService({ backupDir: "/srv/pi-cluster-backups" });
    const timer = renderBackupMetricsTimer({ intervalSeconds: 15 });
    const write = (): string => {
        const dir = tmpDir("pi-metrics-units-");
        fs.writeFileSync(path.join(dir, `${BACKUP_METRICS_UNIT}.service`), service.replace(BACKUP_METRICS_SCRIPT, path.join(BACKUP_ASSETS, "pi-cluster-backup-metrics.py")));
        fs.writeFileSync(path.join(dir, `${BACKUP_METRICS_UNIT}.timer`), timer);
        return dir;
    };

    it("runs the converter as a oneshot with no network, reading the backups and writing only the textfile directory", () => {
        has(service, ...COMMON, "Type=oneshot", `ExecStart=/usr/bin/python3 ${BACKUP_METRICS_SCRIPT} /srv/pi-cluster-backups ${BACKUP_METRICS_FILE}`);
        has(service, "PrivateNetwork=yes", "IPAddressDeny=any", "ReadOnlyPaths=-/srv/pi-cluster-backups", `ReadWritePaths=${NODE_EXPORTER_TEXTFILE_DIR}`);
        // Root, to read the backup account's 0700 directory and write root's textfile directory: nothing else.
        has(service, "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE");
        assert.ok(BACKUP_METRICS_FILE.startsWith(`${NODE_EXPORTER_TEXTFILE_DIR}/`) && BACKUP_METRICS_FILE.endsWith(".prom"), "node-exporter reads *.prom in its textfile directory only");
    });

    it("runs every scrape interval from boot on, and refuses an interval that is not whole seconds", () => {
        has(timer, "OnBootSec=15s", "OnUnitActiveSec=15s", "AccuracySec=1s", "WantedBy=timers.target");
        for (const bad of [0, -5, 1.5, NaN]) assert.throws(() => renderBackupMetricsTimer({ intervalSeconds: bad }), /intervalSeconds/);
    });

    it("pass systemd-analyze verify without a warning, and the service scores 2.5 or less with systemd-analyze security", () => {
        const dir = write();
        const files = [`${BACKUP_METRICS_UNIT}.service`, `${BACKUP_METRICS_UNIT}.timer`].map((n) => path.join(dir, n));
        const r = systemdAnalyze(["verify", ...files]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stderr, "");
        const e = exposure(files[0]);
        assert.ok(e <= 2.5, `${e}`);
    });
});
