// Reads the stack config, builds the artifacts, builds one PiCluster, exports its outputs.
// The outputs are a versioned contract for StackReference consumers: see README "Outputs".
import { buildClusterArtifacts, loadConfig, PiCluster } from "./components";

const config = loadConfig();
const cluster = new PiCluster("pi-cluster", { config, artifacts: buildClusterArtifacts() });

export const contractVersion = cluster.contractVersion;
export const lbUrl = cluster.lbUrl;
export const apiUrl = cluster.apiUrl;
export const dashboardUrl = cluster.dashboardUrl;
export const webServers = cluster.webServers;
export const database = cluster.database;
export const dbPassword = cluster.dbPassword;
