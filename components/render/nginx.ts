// The load balancer's nginx site. Pure: topology in, config text out.
import { HTTPS_PORT } from "./firewall";
import { UPSTREAM_MEMBERS_DIR } from "../constants";

export interface Backend {
    name: string;
    address: string;
}

/** A web server as the dashboard sees it: a cordoned one is in maintenance. */
export interface WebBackend extends Backend {
    maintenance?: boolean;
}


export interface NginxSiteArgs {
    backends: Backend[];
    appPort: number;
    httpPort: number;
    /** Who may reach stub_status and the per-node routes. */
    managementCidr: string;
    /** The dashboard's static root (a symlink to the current release). */
    staticRoot: string;
    /** Where the rendered public cluster.json lives. */
    clusterJsonPath: string;
    /** Where the rendered internal cluster.json (with addresses) lives. */
    internalClusterJsonPath: string;
    /** The members' directory the upstream includes. Default UPSTREAM_MEMBERS_DIR. */
    membersDir?: string;
    /** Per-client limits on /api/. Required. */
    apiRateLimit: ApiRateLimit;
    /** HTTPS on HTTPS_PORT. Required. */
    tls: NginxTlsArgs;
    /**
     * Alertmanager's port on the load balancer's loopback when monitoring runs there: the
     * dashboard's alerts panel reads /internal/alerts. Without it that URL says monitoring is off.
     */
    alertmanagerPort?: number;
}

export interface NginxTlsArgs {
    /** The server certificate chain nginx sends, server certificate first. */
    certificatePath: string;
    /** Its private key (root-only; nginx's master process reads it). */
    keyPath: string;
    /** Port httpPort answers 301 to https://, except to the load balancer itself. */
    redirectHttp: boolean;
    /** Send Strict-Transport-Security on https answers. */
    hsts: boolean;
    /** The certificate's expiry for the dashboard (JSON, see assets/scripts/lb-tls.sh), served as /tls.json. */
    statusPath: string;
}

/** nginx's HTTPS port; the firewall opens it to anyone. */
export { HTTPS_PORT };

/** The JSON /internal/alerts answers with when monitoring is off (docs/contracts.md). */
export const MONITORING_OFF_BODY = '{"error":{"code":"MONITORING_OFF","message":"monitoring is off on this cluster"}}';

/** A location's access: the management network and the load balancer itself, no one else (403). */
function managementOnly(a: NginxSiteArgs): string {
    return `        allow ${a.managementCidr};
        allow 127.0.0.1;
        deny all;`;
}

/**
 * /internal/alerts, for the dashboard's alerts panel on the management network: the active
 * alerts that are neither silenced nor inhibited, from Alertmanager's API v2 on the load
 * balancer's loopback (GET only; Alertmanager's silences stay an operator's, through amtool);
 * or 404 MONITORING_OFF, never the dashboard's index.html. Like /internal/cluster.json, it is
 * outside /api/'s rate limit: one request a dashboard refresh, from the management network.
 */
function alertsLocation(a: NginxSiteArgs): string {
    const access = managementOnly(a);
    if (a.alertmanagerPort === undefined) {
        return `    location = /internal/alerts {
${access}
        default_type application/json;
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
        return 404 '${MONITORING_OFF_BODY}\\n';
    }`;
    }
    return `    location = /internal/alerts {
${access}
        limit_except GET { deny all; }
        # The trailing ? drops the client's own arguments: it reads this one view only.
        rewrite ^ /api/v2/alerts?active=true&silenced=false&inhibited=false? break;
        proxy_pass http://127.0.0.1:${a.alertmanagerPort};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 1s;
        proxy_read_timeout 5s;
${hideUpstream("        ")}
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
    }`;
}

/**
 * Mozilla's "intermediate" server-side TLS profile (ssl-config.mozilla.org, guidelines 5.7):
 * TLS 1.2 and 1.3, AEAD ciphers with forward secrecy only. TLS 1.3's suites are OpenSSL's
 * defaults, all of them AEAD. The DHE suites take effect only with an ssl_dhparam, which
 * the site does not set: the generated certificates are ECDSA, and ECDHE covers every
 * client the profile targets.
 */
export const TLS_PROTOCOLS = ["TLSv1.2", "TLSv1.3"];
export const TLS_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
];
export const TLS_CURVES = ["X25519", "prime256v1", "secp384r1"];
/** Two years, as Mozilla's generator sets it. */
export const HSTS_MAX_AGE_SECONDS = 63072000;

/** Per-client-address limits on /api/, as nginx's limit_req and limit_conn apply them. */
export interface ApiRateLimit {
    /** Sustained requests per second. */
    ratePerSecond: number;
    /** Requests beyond the rate a client may send at once; served at once, not delayed. */
    burst: number;
    /** Requests one client may have in flight at once. */
    connectionsPerClient: number;
}

/**
 * Clients never limited: the load balancer itself, whose drain and admit steps probe
 * http://127.0.0.1:<httpPort>/api/health through nginx (assets/scripts/lb-member.sh).
 */
export const RATE_LIMIT_EXEMPT = ["127.0.0.1"];

// Names in nginx's http-wide namespace (the site is included inside http {}), so prefixed
// to clash with nothing else nginx.conf may hold.
const LIMIT_REQ_ZONE = "pi_cluster_api_req";
const LIMIT_CONN_ZONE = "pi_cluster_api_conn";
const RATE_LIMITED_LOCATION = "@pi_cluster_api_limited";

/**
 * The /api/ requests one dashboard tab sends per refresh, all at once
 * (assets/dashboard/src/app/cluster.service.ts): stub_status and each web server's status.
 * cluster.json, its third kind of request, is a static file and never limited.
 */
export function dashboardApiRequestsPerRefresh(webServers: number): number {
    return 1 + webServers;
}

/**
 * How many dashboard tabs one client address may keep open without a 429, at worst with
 * every tab refreshing at the same moment. Each bound is one of nginx's: a refresh of all
 * tabs at once must fit in the burst (nodelay serves burst + 1 at once) and in the
 * connections (every request in flight at once: HTTP/2, or a slow node); and one refresh
 * period must drain the bucket before the next (rate x period).
 */
export function dashboardTabsWithin(limit: ApiRateLimit, webServers: number, refreshSeconds: number): number {
    const perTab = dashboardApiRequestsPerRefresh(webServers);
    return Math.min(
        Math.floor((limit.burst + 1) / perTab),
        Math.floor(limit.connectionsPerClient / perTab),
        Math.floor((limit.ratePerSecond * refreshSeconds) / perTab),
    );
}

/** nginx upstream names allow [A-Za-z0-9_]; host names may hold dashes. */
export function upstreamName(nodeName: string): string {
    return `pi_node_${nodeName.replace(/[^A-Za-z0-9]/g, "_")}`;
}

// add_header in a location replaces the server's, so every location repeats these. HSTS
// comes from a variable (hstsMap): empty on plain HTTP and when HSTS is off, and nginx
// sends no header whose value is empty, so one set of locations serves both ports.
const SECURITY_HEADERS = [
    `add_header Strict-Transport-Security $pi_cluster_hsts always;`,
    `add_header X-Content-Type-Options "nosniff" always;`,
    `add_header X-Frame-Options "DENY" always;`,
    `add_header Referrer-Policy "no-referrer" always;`,
    `add_header Content-Security-Policy "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'" always;`,
];

function headers(indent: string, extra: string[] = []): string {
    return [...extra, ...SECURITY_HEADERS].map((h) => `${indent}${h}`).join("\n");
}

// The app's helmet sends its own X-Frame-Options (SAMEORIGIN, where nginx says DENY),
// Content-Security-Policy, Referrer-Policy and X-Content-Type-Options, so /api/ answers
// carried each header twice. nginx drops the app's copies rather than the app dropping
// helmet: nginx is the one edge for the dashboard and the API alike, so one policy set
// here covers both, and the app keeps helmet's defaults for whoever reaches it directly
// (a local curl on the Pi, its tests).
const HIDE_UPSTREAM_SECURITY_HEADERS = SECURITY_HEADERS.map((h) => `proxy_hide_header ${h.split(" ")[1]};`);

function hideUpstream(indent: string): string {
    return HIDE_UPSTREAM_SECURITY_HEADERS.map((h) => `${indent}${h}`).join("\n");
}

/**
 * The header the app's internal routes require (assets/app/src/routes/status.ts). nginx
 * sets it only on the routes it keeps to the management network and clears what a client
 * sent everywhere else, so a path that reaches the app past those locations lacks it.
 */
export const INTERNAL_HEADER = "X-Pi-Cluster-Access";

/** proxy_set_header for the internal header: "internal", or empty (nginx then sends none). */
function access(internal: boolean): string {
    return `        proxy_set_header ${INTERNAL_HEADER} "${internal ? "internal" : ""}";`;
}

const PROXY_COMMON = `        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;`;

// Every /api/ location, the per-node routes and stub_status included: one budget per
// client for the whole API. The per-node routes bypass the round-robin, so a flood there
// would land on one Pi; and nginx limits before it checks allow/deny (preaccess phase), so
// the limit holds for every client alike.
function apiLimits(l: ApiRateLimit): string {
    return `        limit_req zone=${LIMIT_REQ_ZONE} burst=${l.burst} nodelay;
        limit_conn ${LIMIT_CONN_ZONE} ${l.connectionsPerClient};`;
}

function rateLimitZones(l: ApiRateLimit): string {
    const exempt = RATE_LIMIT_EXEMPT.map((address) => `    ${address} 1;`).join("\n");
    return `# Rate limiting of /api/ per client address. The zones are http-level directives: this
# file is included inside nginx.conf's http {} (sites-enabled). An exempt client's key is
# empty, and nginx never limits an empty key.
geo $pi_cluster_api_exempt {
    default 0;
${exempt}
}

map $pi_cluster_api_exempt $pi_cluster_api_client {
    1 "";
    default $binary_remote_addr;
}

# 10m each, as in nginx's docs: 1 MB keeps about 16,000 client states. A reload may change
# the rate or the size, but not a zone's key: nginx -t passes, then the reload fails and
# nginx keeps the old config. A new key needs a new zone name.
limit_req_zone $pi_cluster_api_client zone=${LIMIT_REQ_ZONE}:10m rate=${l.ratePerSecond}r/s;
limit_conn_zone $pi_cluster_api_client zone=${LIMIT_CONN_ZONE}:10m;`;
}

export function renderNginxSite(a: NginxSiteArgs): string {
    if (a.backends.length === 0) throw new Error("renderNginxSite: backends must not be empty");
    const nodeUpstreams = a.backends
        .map(
            (b) => `upstream ${upstreamName(b.name)} {
    # max_fails=0: a probe of one node must always try it, never short-circuit.
    server ${b.address}:${a.appPort} max_fails=0;
    keepalive 2;
}`,
        )
        .join("\n\n");
    const nodeLocations = a.backends
        .map(
            (b) => `    location ^~ /api/nodes/${b.name}/ {
${managementOnly(a)}
        proxy_pass http://${upstreamName(b.name)}/;
${PROXY_COMMON}
${access(true)}
${hideUpstream("        ")}
        proxy_next_upstream off;
        proxy_connect_timeout 2s;
        proxy_read_timeout 5s;
${apiLimits(a.apiRateLimit)}
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
    }`,
        )
        .join("\n\n");
    const site = siteBody(a, nodeLocations);
    return `# Managed by pi-cluster; rendered by components/render/nginx.ts. Edits are overwritten.

${rateLimitZones(a.apiRateLimit)}

${hstsMap(a.tls.hsts)}

# Round-robin (nginx's default) over the web servers, with passive health checks: one
# connection error or timeout takes a server out for fail_timeout. A 503 from the app (its
# database is down) is an answer, not a failure: it goes to the client with Retry-After.
# Each web server is one file in the directory below, written by its drain and admit
# steps: "down" while it restarts or is cordoned, up once it serves.
upstream pi_cluster_backend {
    # Never used (down); keeps the block valid before the first web server is admitted.
    server 127.0.0.1:${a.appPort} down;
    include ${a.membersDir ?? UPSTREAM_MEMBERS_DIR}/*.conf;
    keepalive 16;
}

${nodeUpstreams}

${plainServer(a, site)}

# HTTPS: the same site as above, location for location.
server {
    listen ${HTTPS_PORT} ssl default_server;
    http2 on;
    server_name _;
    server_tokens off;

${tlsSettings(a.tls)}

${site}}
`;
}

/** What the site serves, on either port: everything inside its server {} but the listen lines. */
function siteBody(a: NginxSiteArgs, nodeLocations: string): string {
    return `    root ${a.staticRoot};
    index index.html;

    gzip on;
    gzip_vary on;
    gzip_min_length 512;
    gzip_types text/plain text/css application/javascript application/json image/svg+xml;

    client_max_body_size 64k;

${headers("    ")}

    # Over an /api/ limit: 429 with the app's JSON error, not nginx's HTML 503. Only the
    # API locations set limits; a 429 from the app itself passes as it is (nginx handles
    # an upstream's errors only with proxy_intercept_errors). Rejections log at warn:
    # each 429 is in the access log, and error.log, at Debian's level "error", stays
    # readable in a flood.
    limit_req_status 429;
    limit_conn_status 429;
    limit_req_log_level warn;
    limit_conn_log_level warn;
    error_page 429 ${RATE_LIMITED_LOCATION};

    # The whole API, round-robin; the trailing slash strips /api, as in the seed.
    # ^~ here and on the per-node routes: without it the asset regex below wins for any
    # API path ending like a hashed file (/api/x-12345678.js), which nginx would then look
    # for on disk, past the per-node routes' allow/deny. "location /" keeps no ^~, as the
    # regex must win there.
    location ^~ /api/ {
        proxy_pass http://pi_cluster_backend/;
${PROXY_COMMON}
${access(false)}
${hideUpstream("        ")}
        # Retry another server only where it is safe: nginx never retries POST, LOCK or
        # PATCH once sent unless told to with non_idempotent. Not on 503: that is the app
        # saying the database is down, and every server would say the same.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 3;
        # A Pi that loses power sends no RST: a request already written to a kept-alive
        # connection waits for the read timeout before nginx tries the next server. The
        # app answers in milliseconds, so a few seconds bound that stall (measured in the
        # lab's power-cut test; at 30 s requests timed out at the client).
        proxy_connect_timeout 1s;
        proxy_send_timeout 5s;
        proxy_read_timeout 5s;
${apiLimits(a.apiRateLimit)}
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
    }

    # The app's internals (its full status), round-robin, for the management network only;
    # the app also wants the header set here (INTERNAL_HEADER).
    location ^~ /api/internal/ {
${managementOnly(a)}
        proxy_pass http://pi_cluster_backend/internal/;
${PROXY_COMMON}
${access(true)}
${hideUpstream("        ")}
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 3;
        proxy_connect_timeout 1s;
        proxy_read_timeout 5s;
${apiLimits(a.apiRateLimit)}
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
    }

${nodeLocations}

    location = /api/lb/stub_status {
${managementOnly(a)}
        stub_status;
        access_log off;
${apiLimits(a.apiRateLimit)}
${headers("        ", [`add_header Cache-Control "no-store" always;`])}
    }

    # Retry-After 1: at the lowest rate the config allows, 1r/s, the bucket takes another
    # request within a second.
    location ${RATE_LIMITED_LOCATION} {
        # JSON whatever the URI's extension (/api/x.js would otherwise be sent as JavaScript).
        types {}
        default_type application/json;
${headers("        ", ["add_header Retry-After 1 always;", `add_header Cache-Control "no-store" always;`])}
        return 429 '{"error":{"code":"RATE_LIMITED","message":"too many requests from this address, try again later"}}\\n';
    }

    location = /tls.json {
        alias ${a.tls.statusPath};
        default_type application/json;
${headers("        ", [`add_header Cache-Control "no-cache" always;`])}
    }

    location = /cluster.json {
        alias ${a.clusterJsonPath};
        default_type application/json;
${headers("        ", [`add_header Cache-Control "no-cache" always;`])}
    }

    # cluster.json with every Pi's address, for the dashboard on the management network.
    location = /internal/cluster.json {
${managementOnly(a)}
        alias ${a.internalClusterJsonPath};
        default_type application/json;
${headers("        ", [`add_header Cache-Control "no-cache" always;`])}
    }

${alertsLocation(a)}

    # Build output with a content hash in its name never changes: cache it for a year.
    location ~* "-[A-Za-z0-9]{8,}\\.(?:js|css|woff2?|ttf|svg|png|jpe?g|webp|ico)$" {
        try_files $uri =404;
${headers("        ", [`add_header Cache-Control "public, max-age=31536000, immutable" always;`])}
    }

    # index.html names the hashed files, so browsers must revalidate it every time.
    location = /index.html {
${headers("        ", [`add_header Cache-Control "no-cache" always;`])}
    }

    location / {
        try_files $uri $uri/ /index.html;
${headers("        ", [`add_header Cache-Control "no-cache" always;`])}
    }
`;
}

/**
 * Port httpPort. With redirectHttp, the world gets a 301 to https://, and the load balancer
 * itself (127.0.0.1, whose drain and admit steps probe /api/health there) the whole site:
 * nginx picks the server whose listen address is the connection's own before the wildcard.
 */
function plainServer(a: NginxSiteArgs, site: string): string {
    const open = (listen: string) => `server {
    listen ${listen};
    server_name _;
    server_tokens off;
`;
    if (!a.tls.redirectHttp) return `${open(`${a.httpPort} default_server`)}
${site}}`;
    return `${open(`${a.httpPort} default_server`)}
    # $host is the name or address the client asked for; 301 keeps the method for GET.
    location / {
        return 301 https://$host$request_uri;
    }
}

# The load balancer's own probes over plain HTTP.
${open(`127.0.0.1:${a.httpPort}`)}
${site}}`;
}

function tlsSettings(t: NginxTlsArgs): string {
    return `    ssl_certificate ${t.certificatePath};
    ssl_certificate_key ${t.keyPath};
    ssl_protocols ${TLS_PROTOCOLS.join(" ")};
    ssl_ciphers ${TLS_CIPHERS.join(":")};
    ssl_ecdh_curve ${TLS_CURVES.join(":")};
    ssl_prefer_server_ciphers off;
    ssl_session_timeout 1d;
    ssl_session_cache shared:pi_cluster_tls:10m;
    # Tickets' keys would outlive a session and undo forward secrecy until nginx restarts.
    ssl_session_tickets off;`;
}

function hstsMap(on: boolean): string {
    const https = on ? `\n    https "max-age=${HSTS_MAX_AGE_SECONDS}";` : "";
    return `# Strict-Transport-Security, on https only (pi-cluster:hsts is ${on ? "on" : "off"}).
map $scheme $pi_cluster_hsts {
    default "";${https}
}`;
}

export interface ClusterJsonArgs {
    loadBalancer: Backend;
    webServers: WebBackend[];
    database: Backend;
    refreshSeconds: number;
    requestTimeoutMs: number;
    /**
     * Monitoring runs (Alertmanager on the load balancer): the dashboard asks /internal/alerts
     * only then, so a cluster without it logs no 404 a refresh in the browser. Required.
     */
    monitoring: boolean;
    /** With every Pi's address (/internal/cluster.json), or names only (/cluster.json, public). Default false. */
    internal?: boolean;
}

/** The dashboard's view of the cluster, served as /cluster.json and /internal/cluster.json (contract version 1). */
export function renderClusterJson(a: ClusterJsonArgs): string {
    const pick = (b: Backend) => (a.internal ? { name: b.name, address: b.address } : { name: b.name });
    return (
        JSON.stringify(
            {
                version: 1,
                loadBalancer: pick(a.loadBalancer),
                webServers: a.webServers.map((w) => ({ ...pick(w), ...(w.maintenance ? { maintenance: true } : {}) })),
                database: pick(a.database),
                dashboard: { refreshSeconds: a.refreshSeconds, requestTimeoutMs: a.requestTimeoutMs },
                monitoring: { enabled: a.monitoring },
            },
            null,
            2,
        ) + "\n"
    );
}

/** Shown at / until a dashboard release is installed. */
export function renderPlaceholderPage(): string {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pi-cluster</title></head>
<body><h1>pi-cluster</h1><p>The dashboard is not installed yet. The API is at <a href="/api/">/api/</a>.</p></body></html>
`;
}
