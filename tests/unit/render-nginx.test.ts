// The nginx site's renderer: exact key lines, and the site served by this machine's nginx
// (nginx -t, then real requests: routes, limits, TLS).
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import { ApiRateLimit, dashboardApiRequestsPerRefresh, dashboardTabsWithin, HSTS_MAX_AGE_SECONDS, NginxSiteArgs, renderClusterJson, renderNginxSite, TLS_CIPHERS, upstreamName } from "../../components/render/nginx";
import { SCRIPTS_DIR } from "../../components/render/shell";
import { labNginxSite, labNginxSiteArgs, tmpDir } from "./helpers";

/** An nginx.conf around dir/site.conf that needs nothing outside dir but mime.types. */
function writeNginxConf(dir: string, top = ""): void {
    fs.writeFileSync(
        path.join(dir, "nginx.conf"),
        `${top}pid ${dir}/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  include /etc/nginx/mime.types;\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  include ${dir}/site.conf;\n}\n`,
    );
}

interface Answer {
    status: number;
    body: string;
    /** Every header line as sent, so a header sent twice shows twice. */
    raw: [string, string][];
}

/** A GET to nginx on 127.0.0.1, sent from `from`: any 127.0.0.0/8 address is this machine's (Linux). */
function get(port: number, urlPath: string, from = "127.0.0.1", headers: Record<string, string> = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
        http.get({ host: "127.0.0.1", port, path: urlPath, agent: false, localAddress: from, headers }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => {
                const raw: [string, string][] = [];
                for (let i = 0; i < res.rawHeaders.length; i += 2) raw.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
                resolve({ status: res.statusCode ?? 0, body, raw });
            });
        }).on("error", reject);
    });
}

function freePort(): Promise<number> {
    return new Promise((resolve) => {
        const srv = net.createServer().listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

const site = labNginxSite;

/** The site's server blocks, in order, each from its "server {" line. */
function serverBlocks(text: string): string[] {
    return text.split(/\n(?=server \{\n)/).slice(1);
}

/** The HTTPS server: the site's last server block. */
const httpsServer = (text = site()) => serverBlocks(text).at(-1)!;

/** What a server block serves: from its root line to its closing brace. */
const siteOf = (block: string) => block.slice(block.indexOf("\n    root "), block.lastIndexOf("\n}"));

/** Every location line of a server block, in order. */
const locationLines = (block: string) => [...block.matchAll(/^    location .*\{$/gm)].map((m) => m[0]);

/** nginx's version on this machine, as [major, minor, patch]. */
function nginxVersion(): number[] {
    const r = spawnSync("nginx", ["-v"], { encoding: "utf8" });
    return (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(r.stderr) ?? [0, 0, 0, 0]).slice(1).map(Number);
}

/**
 * The site as this machine's nginx reads it: before 1.25.1 (Debian 12 has 1.22) HTTP/2 is
 * a listen parameter, not "http2 on;", which the Pis' nginx (trixie: 1.26) takes.
 */
function forThisNginx(text: string): string {
    const [major, minor, patch] = nginxVersion();
    if (major > 1 || minor > 25 || (minor === 25 && patch >= 1)) return text;
    return text.replace(/listen (\S+) ssl default_server;\n    http2 on;/g, "listen $1 ssl http2 default_server;");
}

/**
 * A CA and a server certificate for `name` and `address` in dir/tls, made by lib.sh's own
 * functions, as the TLS steps make them on the Pis.
 */
function libCertificates(dir: string, name: string, address: string): { ca: string; cert: string; key: string } {
    const tls = path.join(dir, "tls");
    const lib = path.join(SCRIPTS_DIR, "lib.sh");
    execFileSync("bash", ["-c", `set -euo pipefail; STEP=test; source "${lib}"; tls_make_ca "$1" "test CA"; tls_server_cert "$1" "$2" "$3" 365 30 "$(id -un):$(id -gn)"`, "-", tls, name, address], {
        stdio: ["ignore", "ignore", "inherit"],
    });
    return { ca: path.join(tls, "ca.crt"), cert: path.join(tls, "server.crt"), key: path.join(tls, "server.key") };
}

/** The lab's site with its certificate paths in dir/tls (libCertificates), as this machine's nginx reads it. */
function siteWithCertificates(dir: string, args: Partial<NginxSiteArgs["tls"]> = {}): string {
    const c = libCertificates(dir, "pi-lb", "127.0.0.1");
    const base = labNginxSiteArgs();
    return forThisNginx(renderNginxSite({ ...base, tls: { ...base.tls, certificatePath: c.cert, keyPath: c.key, ...args } }));
}


describe("nginx site", () => {
    it("round-robins over the member files of the web servers, with keepalive", () => {
        const s = site();
        assert.match(
            s,
            /upstream pi_cluster_backend \{\n    # [^\n]*\n    server 127\.0\.0\.1:3000 down;\n    include \/etc\/nginx\/pi-cluster\/upstream\/\*\.conf;\n    keepalive 16;\n\}/,
        );
        assert.doesNotMatch(s, /^\s*(least_conn|ip_hash|hash|random)\b/m, "round-robin is nginx's default; no other method");
    });

    it("strips /api/ like the seed and retries only idempotent requests", () => {
        const s = site();
        assert.match(s, /location \^~ \/api\/ \{\n        proxy_pass http:\/\/pi_cluster_backend\/;/);
        // Connection errors and timeouts only: a 503 (database down) is passed on, never
        // retried, and never counted against the server.
        assert.match(s, /proxy_next_upstream error timeout;/);
        assert.doesNotMatch(s, /http_503/);
        assert.doesNotMatch(s, /proxy_next_upstream [^;]*non_idempotent/);
        // A powered-off server must not stall a request for long before the retry.
        assert.match(s, /location \^~ \/api\/ \{[^}]*proxy_read_timeout 5s;/);
        assert.match(s, /proxy_set_header Connection "";/);
    });

    it("serves the dashboard with the SPA fallback and the seed's cache headers", () => {
        const s = site();
        assert.match(s, /location \/ \{\n        try_files \$uri \$uri\/ \/index\.html;/);
        assert.match(s, /location = \/index\.html \{\n        add_header Cache-Control "no-cache" always;/);
        assert.match(s, /add_header Cache-Control "public, max-age=31536000, immutable" always;/);
        assert.match(s, /server_tokens off;/);
        assert.match(s, /gzip on;/);
    });

    it("keeps stub_status and per-node routes to the management network", () => {
        const s = site();
        assert.match(s, /location = \/api\/lb\/stub_status \{\n        allow 10\.254\.0\.0\/24;\n        allow 127\.0\.0\.1;\n        deny all;\n        stub_status;/);
        assert.match(s, /location \^~ \/api\/nodes\/pi-web2\/ \{\n        allow 10\.254\.0\.0\/24;\n        allow 127\.0\.0\.1;\n        deny all;\n        proxy_pass http:\/\/pi_node_pi_web2\/;/);
        assert.strictEqual(upstreamName("pi-web2"), "pi_node_pi_web2");
    });

    it("repeats the security headers in every location that sets its own", () => {
        const s = site();
        const locations = s.split(/\n    location /).slice(1);
        for (const loc of locations) {
            if (/add_header/.test(loc)) assert.match(loc, /X-Content-Type-Options "nosniff"/, `location ${loc.split("\n")[0]}`);
        }
    });

    it("lets no regex location take an /api/ path, but lets the asset regex take the rest", () => {
        const s = httpsServer();
        const prefixes = [...s.matchAll(/^    location (\^~ )?(\/\S*) \{$/gm)].map((m) => `${m[1] ?? ""}${m[2]}`);
        assert.deepStrictEqual(prefixes, ["^~ /api/", "^~ /api/internal/", "^~ /api/nodes/pi-web1/", "^~ /api/nodes/pi-web2/", "/"]);
    });

    it("hides the app's own copies of the security headers it sets, on every proxied location", () => {
        const s = httpsServer();
        const proxied = s.split(/\n    location /).slice(1).filter((loc) => /proxy_pass/.test(loc));
        assert.strictEqual(proxied.length, 4);
        for (const loc of proxied) {
            const set = [...loc.matchAll(/add_header (\S+) /g)].map((m) => m[1]).filter((h) => h !== "Cache-Control");
            const hidden = [...loc.matchAll(/proxy_hide_header (\S+);/g)].map((m) => m[1]);
            assert.deepStrictEqual(hidden, set, `location ${loc.split("\n")[0]}`);
            assert.ok(hidden.includes("X-Frame-Options"));
        }
    });

    it("defines the API limits at http level, keyed by client address, with the configured rate", () => {
        const s = renderNginxSite({ ...labNginxSiteArgs(), apiRateLimit: { ratePerSecond: 10000, burst: 20000, connectionsPerClient: 300 } });
        const top = s.split("\nserver {")[0];
        assert.match(top, /^limit_req_zone \$pi_cluster_api_client zone=pi_cluster_api_req:10m rate=10000r\/s;$/m);
        assert.match(top, /^limit_conn_zone \$pi_cluster_api_client zone=pi_cluster_api_conn:10m;$/m);
        // The LB's own probes (127.0.0.1) get the empty key, which nginx never limits; only they.
        assert.match(top, /^geo \$pi_cluster_api_exempt \{\n    default 0;\n    127\.0\.0\.1 1;\n\}$/m);
        assert.match(top, /^map \$pi_cluster_api_exempt \$pi_cluster_api_client \{\n    1 "";\n    default \$binary_remote_addr;\n\}$/m);
        assert.match(s, /^        limit_req zone=pi_cluster_api_req burst=20000 nodelay;\n        limit_conn pi_cluster_api_conn 300;$/m);
    });

    it("limits every API location, the per-node routes and stub_status included, and no static one", () => {
        const locations = httpsServer().split(/\n    location /).slice(1);
        const limited = locations.filter((loc) => /limit_req /.test(loc)).map((loc) => loc.split(" {")[0]);
        assert.deepStrictEqual(limited, ["^~ /api/", "^~ /api/internal/", "^~ /api/nodes/pi-web1/", "^~ /api/nodes/pi-web2/", "= /api/lb/stub_status"]);
        for (const loc of locations.filter((l) => /limit_req /.test(l))) {
            assert.match(loc, /\n        limit_req zone=pi_cluster_api_req burst=100 nodelay;\n        limit_conn pi_cluster_api_conn 100;\n/);
        }
        assert.doesNotMatch(site().split("\nserver {")[1], /limit_req_zone|limit_conn_zone/);
    });

    it("answers over a limit with 429, Retry-After and the app's JSON error", () => {
        const s = site();
        assert.match(s, /^    limit_req_status 429;\n    limit_conn_status 429;\n/m);
        assert.match(s, /^    error_page 429 @pi_cluster_api_limited;$/m);
        const named = /\n    location @pi_cluster_api_limited \{\n([\s\S]*?)\n    \}/.exec(s);
        assert.ok(named, "a named location answers the 429s");
        assert.match(named[1], /^        types \{\}\n        default_type application\/json;$/m);
        assert.match(named[1], /^        add_header Retry-After 1 always;$/m);
        const body = /^        return 429 '(.*)\\n';$/m.exec(named[1]);
        assert.ok(body);
        assert.deepStrictEqual(JSON.parse(body[1]), { error: { code: "RATE_LIMITED", message: "too many requests from this address, try again later" } });
    });

    it("counts the dashboard's API requests per refresh and the tabs a limit allows", () => {
        assert.strictEqual(dashboardApiRequestsPerRefresh(2), 3);
        const limit = { ratePerSecond: 50, burst: 100, connectionsPerClient: 100 };
        // 4 web servers at 2 s: 5 requests a tab; 101 at once, 100 in flight, 100 per refresh.
        assert.strictEqual(dashboardTabsWithin(limit, 4, 2), 20);
        assert.strictEqual(dashboardTabsWithin(limit, 2, 10), 33);
        assert.strictEqual(dashboardTabsWithin({ ...limit, ratePerSecond: 5 }, 4, 2), 2);
        assert.strictEqual(dashboardTabsWithin({ ...limit, connectionsPerClient: 9 }, 4, 2), 1);
        assert.strictEqual(dashboardTabsWithin({ ...limit, burst: 3 }, 4, 2), 0);
    });

    for (const [label, limit] of [
        ["the defaults", undefined],
        ["the largest limits the config allows", { ratePerSecond: 100000, burst: 100000, connectionsPerClient: 65535 }],
    ] as [string, ApiRateLimit | undefined][]) {
        it(`passes nginx -t with ${label}`, function () {
            const dir = tmpDir("pi-nginx-");
            const c = libCertificates(dir, "pi-lb", "10.254.0.121");
            const args = labNginxSiteArgs();
            const tls = { ...args.tls, certificatePath: c.cert, keyPath: c.key };
            fs.writeFileSync(path.join(dir, "site.conf"), forThisNginx(renderNginxSite({ ...args, tls, ...(limit ? { apiRateLimit: limit } : {}) })));
            writeNginxConf(dir);
            const r = spawnSync("nginx", ["-t", "-p", dir, "-c", path.join(dir, "nginx.conf")], { encoding: "utf8" });
            assert.strictEqual(r.error, undefined, "nginx must be installed (apt-get install nginx-light)");
            assert.strictEqual(r.status, 0, r.stderr);
            assert.match(r.stderr, /syntax is ok/);
        });
    }

    it("serves HTTPS on 443 with TLS 1.2 and 1.3 only, Mozilla's intermediate ciphers and HTTP/2", () => {
        const https = httpsServer();
        assert.match(https, /^server \{\n    listen 443 ssl default_server;\n    http2 on;\n/);
        assert.match(https, /^    ssl_certificate \/etc\/pi-cluster\/tls\/server\.crt;\n    ssl_certificate_key \/etc\/pi-cluster\/tls\/server\.key;$/m);
        assert.match(https, /^    ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
        // ssl-config.mozilla.org, intermediate, guidelines 5.7: AEAD with forward secrecy only.
        assert.match(
            https,
            /^    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;$/m,
        );
        for (const c of TLS_CIPHERS) assert.match(c, /^(ECDHE|DHE)-.*-(GCM-SHA(256|384)|CHACHA20-POLY1305)$/, c);
        assert.match(https, /^    ssl_ecdh_curve X25519:prime256v1:secp384r1;$/m);
        assert.match(https, /^    ssl_prefer_server_ciphers off;$/m);
        assert.match(https, /^    ssl_session_tickets off;$/m);
        assert.doesNotMatch(site(), /TLSv1(\.1)?[ ;]|SSLv3/);
    });

    it("serves on 443 every location of the plain-HTTP site, the same text", () => {
        const off = serverBlocks(renderNginxSite({ ...labNginxSiteArgs(), tls: { ...labNginxSiteArgs().tls, redirectHttp: false } }));
        assert.strictEqual(off.length, 2);
        const [plain, https] = off.map(siteOf);
        assert.strictEqual(https, plain);
        assert.deepStrictEqual(locationLines(off[1]), [
            "    location ^~ /api/ {",
            "    location ^~ /api/internal/ {",
            "    location ^~ /api/nodes/pi-web1/ {",
            "    location ^~ /api/nodes/pi-web2/ {",
            "    location = /api/lb/stub_status {",
            "    location @pi_cluster_api_limited {",
            "    location = /tls.json {",
            "    location = /cluster.json {",
            "    location = /internal/cluster.json {",
            "    location = /internal/alerts {",
            '    location ~* "-[A-Za-z0-9]{8,}\\.(?:js|css|woff2?|ttf|svg|png|jpe?g|webp|ico)$" {',
            "    location = /index.html {",
            "    location / {",
        ]);
        assert.match(off[0], /^server \{\n    listen 80 default_server;\n/);
    });

    it("redirects port 80 to https with a 301, and keeps the whole site on 127.0.0.1:80 for the load balancer's own probes", () => {
        const [redirect, loopback, https] = serverBlocks(site());
        assert.strictEqual(redirect, "server {\n    listen 80 default_server;\n    server_name _;\n    server_tokens off;\n\n    # $host is the name or address the client asked for; 301 keeps the method for GET.\n    location / {\n        return 301 https://$host$request_uri;\n    }\n}\n\n# The load balancer's own probes over plain HTTP.");
        assert.match(loopback, /^server \{\n    listen 127\.0\.0\.1:80;\n/);
        assert.strictEqual(siteOf(loopback), siteOf(https));
    });

    it("serves /tls.json, the certificate's expiry, to everyone without caching", () => {
        assert.match(httpsServer(), /\n    location = \/tls\.json \{\n        alias \/var\/lib\/pi-cluster\/tls\.json;\n        default_type application\/json;\n/);
        assert.doesNotMatch(/location = \/tls\.json \{[^}]*\}/.exec(httpsServer())![0], /limit_req|deny/);
    });

    it("sends HSTS on https only, and only when enabled", () => {
        const on = renderNginxSite({ ...labNginxSiteArgs(), tls: { ...labNginxSiteArgs().tls, hsts: true } });
        assert.match(on, new RegExp(`^map \\$scheme \\$pi_cluster_hsts \\{\\n    default "";\\n    https "max-age=${HSTS_MAX_AGE_SECONDS}";\\n\\}$`, "m"));
        assert.match(site(), /^map \$scheme \$pi_cluster_hsts \{\n    default "";\n\}$/m);
        // Every location that sets headers sets it from the map, and the app's own (helmet's) is dropped.
        for (const loc of httpsServer(on).split(/\n    location /).slice(1)) {
            if (/add_header/.test(loc)) assert.match(loc, /add_header Strict-Transport-Security \$pi_cluster_hsts always;/);
            if (/proxy_pass/.test(loc)) assert.match(loc, /proxy_hide_header Strict-Transport-Security;/);
        }
    });

    for (const [label, tls] of [
        ["the redirect and HSTS on", { redirectHttp: true, hsts: true }],
        ["the redirect and HSTS off", { redirectHttp: false, hsts: false }],
    ] as [string, Partial<NginxSiteArgs["tls"]>][]) {
        it(`passes nginx -t with ${label}`, function () {
            const dir = tmpDir("pi-nginx-");
            fs.writeFileSync(path.join(dir, "site.conf"), siteWithCertificates(dir, tls));
            writeNginxConf(dir);
            const r = spawnSync("nginx", ["-t", "-p", dir, "-c", path.join(dir, "nginx.conf")], { encoding: "utf8" });
            assert.strictEqual(r.status, 0, r.stderr);
        });
    }

    it("answers /internal/alerts with 404 MONITORING_OFF in JSON without monitoring, never the dashboard's index.html", () => {
        const s = site();
        const at = s.indexOf("    location = /internal/alerts {");
        assert.ok(at > 0, "no /internal/alerts location");
        const body = s.slice(at, s.indexOf("\n    }", at));
        assert.match(body, /default_type application\/json;/);
        assert.match(body, /return 404 '\{"error":\{"code":"MONITORING_OFF","message":"monitoring is off on this cluster"\}\}\\n';/);
        assert.doesNotMatch(s, /9093/);
    });

    it("passes nginx -t with monitoring on: /internal/alerts to Alertmanager's loopback port, GET only", function () {
        const dir = tmpDir("pi-nginx-");
        const c = libCertificates(dir, "pi-lb", "10.254.0.121");
        const args = labNginxSiteArgs();
        const text = renderNginxSite({ ...args, tls: { ...args.tls, certificatePath: c.cert, keyPath: c.key }, alertmanagerPort: 9093 });
        assert.match(text, /location = \/internal\/alerts \{\n        allow 10\.254\.0\.0\/24;\n        allow 127\.0\.0\.1;\n        deny all;\n        limit_except GET \{ deny all; \}/);
        assert.match(text, /proxy_pass http:\/\/127\.0\.0\.1:9093;/);
        fs.writeFileSync(path.join(dir, "site.conf"), forThisNginx(text));
        writeNginxConf(dir);
        const r = spawnSync("nginx", ["-t", "-p", dir, "-c", path.join(dir, "nginx.conf")], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
    });

    it("refuses an empty backend list", () => {
        assert.throws(() => renderNginxSite({ ...({} as any), backends: [] }), /backends must not be empty/);
    });

    it("keeps the internals to the management network: the app's full status, the per-node routes and the addresses", () => {
        const s = site();
        const locations = [...s.matchAll(/\n    location ([^{]+) \{\n([\s\S]*?)\n    \}/g)].map((m) => ({ at: m[1].trim(), body: m[2] }));
        const restricted = locations.filter((l) => /allow 10\.254\.0\.0\/24;\n        allow 127\.0\.0\.1;\n        deny all;/.test(l.body)).map((l) => l.at);
        // Once in each server that serves the site: 443, and 127.0.0.1:80 for the LB's own probes.
        const once = ["^~ /api/internal/", "^~ /api/nodes/pi-web1/", "^~ /api/nodes/pi-web2/", "= /api/lb/stub_status", "= /internal/cluster.json", "= /internal/alerts"];
        assert.deepStrictEqual(restricted, [...once, ...once]);
        // The header the app's internal routes want: set where nginx restricts, cleared on the public API.
        const access = (at: string) => /proxy_set_header X-Pi-Cluster-Access "([^"]*)";/.exec(locations.find((l) => l.at === at)!.body)?.[1];
        assert.strictEqual(access("^~ /api/"), "");
        for (const at of ["^~ /api/internal/", "^~ /api/nodes/pi-web1/", "^~ /api/nodes/pi-web2/"]) assert.strictEqual(access(at), "internal", at);
        assert.match(s, /location \^~ \/api\/internal\/ \{[^}]*proxy_pass http:\/\/pi_cluster_backend\/internal\/;/);
        assert.match(s, /location = \/internal\/cluster\.json \{[^}]*alias \/var\/lib\/pi-cluster\/cluster-internal\.json;/);
    });

    it("renders the public cluster.json with names only", () => {
        const j = JSON.parse(
            renderClusterJson({
                loadBalancer: { name: "pi-lb", address: "10.254.0.121" },
                webServers: [{ name: "pi-web1", address: "10.254.0.122", maintenance: true }],
                database: { name: "pi-db", address: "10.254.0.124" },
                refreshSeconds: 10,
                requestTimeoutMs: 4000,
                monitoring: false,
            }),
        );
        assert.deepStrictEqual(j, {
            version: 1,
            loadBalancer: { name: "pi-lb" },
            webServers: [{ name: "pi-web1", maintenance: true }],
            database: { name: "pi-db" },
            dashboard: { refreshSeconds: 10, requestTimeoutMs: 4000 },
            monitoring: { enabled: false },
        });
    });

    it("renders the internal cluster.json in contract version 1", () => {
        const j = JSON.parse(
            renderClusterJson({
                loadBalancer: { name: "pi-lb", address: "10.254.0.121" },
                webServers: [{ name: "pi-web1", address: "10.254.0.122" }],
                database: { name: "pi-db", address: "10.254.0.124" },
                refreshSeconds: 10,
                requestTimeoutMs: 4000,
                monitoring: true,
                internal: true,
            }),
        );
        assert.deepStrictEqual(j, {
            version: 1,
            loadBalancer: { name: "pi-lb", address: "10.254.0.121" },
            webServers: [{ name: "pi-web1", address: "10.254.0.122" }],
            database: { name: "pi-db", address: "10.254.0.124" },
            dashboard: { refreshSeconds: 10, requestTimeoutMs: 4000 },
            monitoring: { enabled: true },
        });
    });

    it("says in both cluster.json files whether monitoring runs, so the dashboard asks /internal/alerts only then", () => {
        const hosts = {
            loadBalancer: { name: "pi-lb", address: "10.254.0.121" },
            webServers: [{ name: "pi-web1", address: "10.254.0.122" }],
            database: { name: "pi-db", address: "10.254.0.124" },
            refreshSeconds: 10,
            requestTimeoutMs: 4000,
        };
        for (const monitoring of [true, false]) {
            for (const internal of [true, false]) {
                const text = renderClusterJson({ ...hosts, monitoring, internal });
                assert.match(text, new RegExp(`\\n  "monitoring": \\{\\n    "enabled": ${monitoring}\\n  \\}\\n\\}\\n$`), `monitoring ${monitoring}, internal ${internal}`);
            }
        }
    });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("nginx site, served", function () {
    // The rendered site run by a real nginx in front of a stand-in app that sends
    // helmet's headers, on loopback ports only. The rate-limit cases come from other
    // loopback addresses (127.0.0.1 is exempt), each case from its own, so no case sees
    // another's bucket.
    this.timeout(20000);
    // Low, so a test trips them quickly.
    const limit: ApiRateLimit = { ratePerSecond: 20, burst: 5, connectionsPerClient: 6 };
    const dir = tmpDir("pi-nginx-run-");
    let app: http.Server;
    let nginx: ChildProcess | undefined;
    let port = 0;
    let tlsPort = 0;
    let certs: { ca: string; cert: string; key: string };

    before(async () => {
        app = http.createServer(async (req, res) => {
            // /slow holds its request, to keep it in flight.
            if (req.url === "/slow") await sleep(1000);
            res.setHeader("X-Frame-Options", "SAMEORIGIN");
            res.setHeader("Content-Security-Policy", "default-src 'self'");
            res.setHeader("Referrer-Policy", "no-referrer");
            res.setHeader("X-Content-Type-Options", "nosniff");
            res.setHeader("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
            res.setHeader("Content-Type", "application/json");
            const access = req.headers["x-pi-cluster-access"];
            res.end(JSON.stringify({ app: req.url, ...(access !== undefined ? { access } : {}) }));
        });
        await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
        port = await freePort();
        tlsPort = await freePort();
        certs = libCertificates(dir, "pi-lb", "127.0.0.1");
        const www = path.join(dir, "www");
        fs.mkdirSync(www);
        fs.writeFileSync(path.join(www, "index.html"), "<!doctype html><title>dashboard</title>\n");
        fs.writeFileSync(path.join(www, "main-ABCD1234.js"), "console.log('static');\n");
        fs.writeFileSync(path.join(dir, "cluster.json"), "{}\n");
        const appPort = (app.address() as net.AddressInfo).port;
        // pi-web1 admitted, as its admit step writes it (assets/scripts/lb-member.sh).
        const members = path.join(dir, "upstream");
        fs.mkdirSync(members);
        fs.writeFileSync(path.join(members, "pi-web1.conf"), `server 127.0.0.1:${appPort} max_fails=1 fail_timeout=10s; # pi-web1\n`);
        const text = renderNginxSite({
            backends: [{ name: "pi-web1", address: "127.0.0.1" }],
            appPort,
            httpPort: port,
            // The test's clients, so the dashboard's per-node and stub_status requests pass.
            managementCidr: "127.0.0.0/8",
            staticRoot: www,
            clusterJsonPath: path.join(dir, "cluster.json"),
            internalClusterJsonPath: path.join(dir, "cluster-internal.json"),
            membersDir: members,
            apiRateLimit: limit,
            tls: { certificatePath: certs.cert, keyPath: certs.key, redirectHttp: false, hsts: false, statusPath: path.join(dir, "tls.json") },
            // The stand-in app as Alertmanager too: it echoes the path it was asked for.
            alertmanagerPort: appPort,
        });
        // Loopback only: the test must not open a port to the machine's networks.
        fs.writeFileSync(
            path.join(dir, "site.conf"),
            forThisNginx(text)
                .replace(`listen ${port} default_server;`, `listen 127.0.0.1:${port} default_server;`)
                .replace(/listen 443 ssl( http2)? default_server;/, `listen 127.0.0.1:${tlsPort} ssl$1 default_server;`),
        );
        // One process, in the foreground, as whoever runs the tests.
        writeNginxConf(dir, "daemon off;\nmaster_process off;\n");
        nginx = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        nginx.stderr!.on("data", (d) => (stderr += d));
        for (let i = 0; ; i++) {
            const up = await new Promise<boolean>((resolve) => {
                const c = net.connect(port, "127.0.0.1", () => c.end(() => resolve(true))).on("error", () => resolve(false));
            });
            if (up) break;
            if (i > 100 || nginx.exitCode !== null) throw new Error(`nginx did not start: ${stderr}`);
            await new Promise((r) => setTimeout(r, 50));
        }
    });

    after(async () => {
        nginx?.kill("SIGTERM");
        await new Promise<void>((resolve) => app.close(() => resolve()));
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const count = (a: Answer, name: string) => a.raw.filter(([k]) => k === name.toLowerCase()).map(([, v]) => v);

    it("sends each security header once on an API answer, with nginx's value", async () => {
        const a = await get(port, "/api/health");
        assert.strictEqual(a.status, 200);
        assert.deepStrictEqual(JSON.parse(a.body), { app: "/health" });
        assert.deepStrictEqual(count(a, "X-Frame-Options"), ["DENY"]);
        assert.strictEqual(count(a, "Content-Security-Policy").length, 1);
        assert.match(count(a, "Content-Security-Policy")[0], /frame-ancestors 'none'/);
        assert.deepStrictEqual(count(a, "Referrer-Policy"), ["no-referrer"]);
        assert.deepStrictEqual(count(a, "X-Content-Type-Options"), ["nosniff"]);
    });

    /** A TLS handshake with the HTTPS port, trusting the test CA; resolves with what was agreed, or the error. */
    function handshake(opts: tls.ConnectionOptions): Promise<{ protocol: string | null; alpn: string | false | null; authorized: boolean } | Error> {
        return new Promise((resolve) => {
            const socket = tls.connect({ host: "127.0.0.1", port: tlsPort, ca: fs.readFileSync(certs.ca), ...opts }, () => {
                resolve({ protocol: socket.getProtocol(), alpn: socket.alpnProtocol, authorized: socket.authorized });
                socket.end();
            });
            socket.on("error", resolve);
        });
    }

    it("serves https with a certificate its cluster CA verifies for the address dialled, over HTTP/2", async () => {
        const ok = await handshake({ ALPNProtocols: ["h2", "http/1.1"] });
        assert.ok(!(ok instanceof Error), String(ok));
        assert.deepStrictEqual(ok, { protocol: "TLSv1.3", alpn: "h2", authorized: true });
        // Another address than the certificate names fails the client's check.
        const wrongName = await handshake({ servername: "pi-db", checkServerIdentity: tls.checkServerIdentity });
        assert.ok(wrongName instanceof Error && /pi-db/.test(wrongName.message), String(wrongName));
        // And without the CA, verification fails.
        const untrusted = await handshake({ ca: undefined });
        assert.ok(untrusted instanceof Error && /self[- ]signed|unable to (get|verify)/i.test(untrusted.message), String(untrusted));
    });

    it("refuses TLS 1.1 and accepts TLS 1.2 with an ECDHE AEAD cipher", async () => {
        const old = await handshake({ minVersion: "TLSv1", maxVersion: "TLSv1.1" });
        assert.ok(old instanceof Error, "TLS 1.1 must be refused");
        const r = await new Promise<{ protocol: string | null; cipher: string }>((resolve, reject) => {
            const socket = tls.connect({ host: "127.0.0.1", port: tlsPort, ca: fs.readFileSync(certs.ca), maxVersion: "TLSv1.2" }, () => {
                resolve({ protocol: socket.getProtocol(), cipher: socket.getCipher().standardName });
                socket.end();
            });
            socket.on("error", reject);
        });
        assert.strictEqual(r.protocol, "TLSv1.2");
        assert.match(r.cipher, /^TLS_ECDHE_ECDSA_WITH_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
    });

    it("sends no Strict-Transport-Security with HSTS off, not even the app's", async () => {
        const a = await new Promise<http.IncomingMessage>((resolve, reject) =>
            https.get({ host: "127.0.0.1", port: tlsPort, path: "/api/health", ca: fs.readFileSync(certs.ca), agent: false }, (res) => {
                res.resume();
                resolve(res);
            }).on("error", reject),
        );
        assert.strictEqual(a.statusCode, 200);
        assert.strictEqual(a.headers["strict-transport-security"], undefined);
        assert.strictEqual(a.headers["x-frame-options"], "DENY");
    });

    it("asks Alertmanager for the active, unsilenced, uninhibited alerts on /internal/alerts, whatever the client's arguments, and takes GET only", async () => {
        const a = await get(port, "/internal/alerts?active=false&filter=x");
        assert.strictEqual(a.status, 200, a.body);
        assert.deepStrictEqual(JSON.parse(a.body), { app: "/api/v2/alerts?active=true&silenced=false&inhibited=false" });
        assert.deepStrictEqual(count(a, "Cache-Control"), ["no-store"]);
        assert.deepStrictEqual(count(a, "X-Frame-Options"), ["DENY"]);
        const post = await new Promise<number>((resolve, reject) => {
            const req = http.request({ host: "127.0.0.1", port, path: "/internal/alerts", method: "POST" }, (res) => {
                res.resume();
                resolve(res.statusCode ?? 0);
            });
            req.on("error", reject);
            req.end("[]");
        });
        assert.strictEqual(post, 403);
    });

    it("proxies API paths that look like hashed assets instead of serving them from disk", async () => {
        for (const [url, upstream] of [
            ["/api/main-ABCD1234.js", "/main-ABCD1234.js"],
            ["/api/nodes/pi-web1/main-ABCD1234.js", "/main-ABCD1234.js"],
        ]) {
            const a = await get(port, url);
            assert.strictEqual(a.status, 200, url);
            assert.strictEqual(JSON.parse(a.body).app, upstream, url);
        }
    });

    it("sends the app the internal header only from its internal routes, whatever the client sends", async () => {
        const forged = { "X-Pi-Cluster-Access": "internal" };
        for (const [url, upstream, access] of [
            ["/api/internal/status", "/internal/status", "internal"],
            ["/api/nodes/pi-web1/internal/status", "/internal/status", "internal"],
            ["/api/", "/", undefined],
            // nginx's prefixes are case-sensitive and Express's routes are not: the app still sees no header.
            ["/api/INTERNAL/status", "/INTERNAL/status", undefined],
        ] as const) {
            const a = await get(port, url, "127.0.0.1", forged);
            assert.strictEqual(a.status, 200, url);
            assert.deepStrictEqual(JSON.parse(a.body), { app: upstream, ...(access ? { access } : {}) }, url);
        }
    });

    /** Sends each request only after the previous one is answered, as fast as they come. */
    async function inTurn(urls: string[], from: string): Promise<Answer[]> {
        const answers: Answer[] = [];
        for (const url of urls) answers.push(await get(port, url, from));
        return answers;
    }

    function assertRateLimited(a: Answer): void {
        assert.strictEqual(a.status, 429);
        assert.deepStrictEqual(count(a, "Retry-After"), ["1"]);
        assert.deepStrictEqual(count(a, "Content-Type"), ["application/json"]);
        assert.deepStrictEqual(JSON.parse(a.body), { error: { code: "RATE_LIMITED", message: "too many requests from this address, try again later" } });
        assert.deepStrictEqual(count(a, "Cache-Control"), ["no-store"]);
        assert.deepStrictEqual(count(a, "X-Frame-Options"), ["DENY"]);
    }

    it("answers a burst over the limit with 429, Retry-After and the app's JSON error", async () => {
        const started = Date.now();
        const answers = await inTurn(Array(20).fill("/api/health"), "127.0.0.2");
        const seconds = (Date.now() - started) / 1000;
        const served = answers.filter((a) => a.status === 200).length;
        // The burst and the first request are served at once; then one per 1/rate seconds.
        assert.deepStrictEqual(answers.slice(0, limit.burst + 1).map((a) => a.status), Array(limit.burst + 1).fill(200));
        assert.ok(served <= limit.burst + 1 + Math.ceil(seconds * limit.ratePerSecond), `${served} served in ${seconds} s`);
        assert.ok(served < answers.length, "some were limited");
        answers.filter((a) => a.status !== 200).forEach(assertRateLimited);
        // JSON too on an API path that ends like a file nginx has a type for.
        const asset = await inTurn(Array(10).fill("/api/main-ABCD1234.js"), "127.0.0.2");
        asset.filter((a) => a.status !== 200).forEach(assertRateLimited);
        assert.ok(asset.some((a) => a.status === 429));
    });

    it("serves a client at half the rate without a 429", async function () {
        for (let i = 0; i < 15; i++) {
            const a = await get(port, "/api/health", "127.0.0.3");
            assert.strictEqual(a.status, 200, `request ${i}`);
            await sleep(1000 / (limit.ratePerSecond / 2));
        }
    });

    it("never limits static files, even for a client over its API limit", async () => {
        const api = await inTurn(Array(20).fill("/api/health"), "127.0.0.4");
        assert.ok(api.some((a) => a.status === 429));
        const files = await inTurn(Array(10).fill(["/", "/index.html", "/cluster.json", "/main-ABCD1234.js"]).flat(), "127.0.0.4");
        assert.deepStrictEqual(files.map((a) => a.status), Array(40).fill(200));
    });

    it("serves the dashboard's polling from as many tabs as the bound allows, and limits one tab more", async () => {
        // Each tab polls stub_status and each web server at once, every refresh.
        const refreshSeconds = 0.5;
        const tabs = dashboardTabsWithin(limit, 1, refreshSeconds);
        assert.strictEqual(tabs, 3);
        const round = (n: number, from: string) =>
            Promise.all(Array.from({ length: n }, () => ["/api/lb/stub_status", "/api/nodes/pi-web1/"]).flat().map((u) => get(port, u, from)));
        assert.strictEqual(dashboardApiRequestsPerRefresh(1), 2);
        const started = Date.now();
        for (let i = 0; i < 4; i++) {
            await sleep(started + i * refreshSeconds * 1000 - Date.now());
            const answers = await round(tabs, "127.0.0.5");
            assert.deepStrictEqual(answers.map((a) => a.status), Array(tabs * 2).fill(200), `refresh ${i}`);
        }
        const over = await round(tabs + 1, "127.0.0.6");
        assert.ok(over.some((a) => a.status === 429), over.map((a) => a.status).join(" "));
    });

    it("limits the requests one client has in flight", async () => {
        // Spaced wider than 1/rate, so only the connection limit can refuse one.
        const pending: Promise<Answer>[] = [];
        for (let i = 0; i <= limit.connectionsPerClient; i++) {
            pending.push(get(port, "/api/slow", "127.0.0.7"));
            await sleep(1000 / limit.ratePerSecond + 10);
        }
        const answers = await Promise.all(pending);
        assert.deepStrictEqual(answers.map((a) => a.status), [...Array(limit.connectionsPerClient).fill(200), 429]);
        assertRateLimited(answers[limit.connectionsPerClient]);
    });

    it("never limits the load balancer's own probes from 127.0.0.1", async () => {
        const fast = await inTurn(Array(30).fill("/api/health"), "127.0.0.1");
        assert.deepStrictEqual(fast.map((a) => a.status), Array(30).fill(200));
        const slow = await Promise.all(Array.from({ length: 10 }, () => get(port, "/api/slow", "127.0.0.1")));
        assert.deepStrictEqual(slow.map((a) => a.status), Array(10).fill(200));
    });

    it("still serves hashed assets outside /api/ from disk, cached for a year", async () => {
        const a = await get(port, "/main-ABCD1234.js");
        assert.strictEqual(a.status, 200);
        assert.strictEqual(a.body, "console.log('static');\n");
        assert.deepStrictEqual(count(a, "Cache-Control"), ["public, max-age=31536000, immutable"]);
        assert.deepStrictEqual(count(a, "X-Frame-Options"), ["DENY"]);
    });
});
