// Reads the stack config, builds the artifacts, builds one PiCluster, exports its outputs.
// The outputs are a versioned contract for StackReference consumers: see README "Outputs".
import * as fs from "fs";
import * as path from "path";
import { APP_ARTIFACT, buildArtifact, DASHBOARD_ARTIFACT, loadConfig, PiCluster, PM2_ARTIFACT } from "./components";

const config = loadConfig();

const hasDashboard = fs.existsSync(path.join(__dirname, DASHBOARD_ARTIFACT.source, "package.json"));
const cluster = new PiCluster("pi-cluster", {
    config,
    artifacts: {
        app: buildArtifact(APP_ARTIFACT),
        pm2: buildArtifact(PM2_ARTIFACT),
        dashboard: hasDashboard ? buildArtifact(DASHBOARD_ARTIFACT) : undefined,
    },
});

export const contractVersion = cluster.contractVersion;
export const lbUrl = cluster.lbUrl;
export const apiUrl = cluster.apiUrl;
export const dashboardUrl = cluster.dashboardUrl;
export const webServers = cluster.webServers;
export const database = cluster.database;
export const dbPassword = cluster.dbPassword;
