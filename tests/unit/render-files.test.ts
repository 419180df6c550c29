// The backup target's and the web servers' files, as rendered.
import * as assert from "assert";
import { renderAppEnv, renderAppSecrets, renderEcosystem, renderPm2Unit } from "../../components/render/app";
import { publicKeyOf, renderAuthorizedKey } from "../../components/render/backup";

describe("backup target files", () => {
    it("restricts the database's key to the receiver, from its address", () => {
        assert.strictEqual(
            renderAuthorizedKey("ssh-ed25519 AAAAC3Nza pi-cluster-backup@pi-db", "10.254.0.124").split("\n")[1],
            'restrict,from="10.254.0.124",command="/usr/local/sbin/pi-cluster-backup receive" ssh-ed25519 AAAAC3Nza pi-cluster-backup@pi-db',
        );
        assert.throws(() => renderAuthorizedKey('ssh-ed25519 AAAA\ncommand="sh" ssh-ed25519 BBBB', "10.254.0.124"), /not an ed25519 public key/);
    });

    it("reads the public key from the backup step's output", () => {
        assert.strictEqual(publicKeyOf("[pi-db-backup] ok\nBACKUP_PUBLIC_KEY ssh-ed25519 AAAAC3Nza\n"), "ssh-ed25519 AAAAC3Nza");
        assert.strictEqual(publicKeyOf("no key here"), undefined);
        // Another mark (a replica's seeding key) is read the same way, and only its own line.
        assert.strictEqual(publicKeyOf("BACKUP_PUBLIC_KEY ssh-ed25519 AAAAB\nSEED_PUBLIC_KEY ssh-ed25519 AAAAS\n", "SEED_PUBLIC_KEY"), "ssh-ed25519 AAAAS");
    });
});

describe("web server files", () => {
    it("renders the seed's PM2 settings", () => {
        const eco = renderEcosystem({ port: 3000 });
        const apps = new Function("module", `${eco}; return module.exports;`)({}).apps;
        assert.strictEqual(apps.length, 1);
        assert.strictEqual(apps[0].name, "pi-cluster-app");
        assert.strictEqual(apps[0].instances, 1);
        assert.strictEqual(apps[0].autorestart, true);
        assert.strictEqual(apps[0].max_memory_restart, "400M");
        assert.deepStrictEqual(apps[0].env, { NODE_ENV: "production", PORT: "3000" });
        assert.doesNotMatch(eco, /DB_PASSWORD/);
    });

    it("runs PM2 under systemd as its own user, reloading rather than restarting", () => {
        const u = renderPm2Unit();
        assert.match(u, /^User=pi-cluster-app$/m);
        assert.match(u, /^ExecReload=.* reload \/etc\/pi-cluster\/ecosystem\.config\.js --update-env$/m);
        assert.match(u, /^WantedBy=multi-user\.target$/m);
    });

    it("writes the settings and, apart, the secrets, as the two env files node --env-file reads", () => {
        const env = renderAppEnv({
            nodeName: "pi-web1", dbHost: "10.254.0.124", dbPort: 3306, dbName: "webapp_db", dbUser: "webapp_user",
            dbPoolSize: 10, corsOrigins: ["http://a", "http://b"], dbTls: { caFile: "/etc/pi-cluster/db-ca.pem", serverName: "pi-db" },
        });
        assert.match(env, /^DB_SSL_CA="\/etc\/pi-cluster\/db-ca\.pem"$/m);
        assert.match(env, /^DB_SSL_SERVERNAME="pi-db"$/m);
        assert.match(env, /^DB_HOST="10\.254\.0\.124"$/m);
        assert.match(env, /^CORS_ORIGINS="http:\/\/a,http:\/\/b"$/m);
        assert.doesNotMatch(env, /PASSWORD/);
        // The metrics listener only with monitoring: a cluster without it keeps its file.
        assert.doesNotMatch(env, /METRICS_PORT/);
        const monitored = renderAppEnv({
            nodeName: "pi-web1", dbHost: "10.254.0.124", dbPort: 3306, dbName: "webapp_db", dbUser: "webapp_user",
            dbPoolSize: 10, corsOrigins: [], dbTls: { caFile: "/etc/pi-cluster/db-ca.pem", serverName: "pi-db" }, metricsPort: 9464,
        });
        assert.strictEqual(monitored, env.replace('CORS_ORIGINS="http://a,http://b"\n', 'CORS_ORIGINS=""\nMETRICS_PORT="9464"\n'));
        const secrets = renderAppSecrets({ dbPassword: "abc", apiWriteToken: "t0ken0that0is0long0enough" });
        assert.match(secrets, /^DB_PASSWORD="abc"$/m);
        assert.match(secrets, /^API_WRITE_TOKEN="t0ken0that0is0long0enough"$/m);
        assert.throws(() => renderAppEnv({ nodeName: "x\ny" } as any), /one line/);
        assert.throws(() => renderAppSecrets({ dbPassword: "a\nb", apiWriteToken: "x" }), /one line/);
        assert.match(renderEcosystem({ port: 3000 }), /"--env-file=\/etc\/pi-cluster\/app\.env",\s+"--env-file=\/etc\/pi-cluster\/app-secrets\.env"/);
    });
});
