// Reads the stack config, builds the artifacts, builds one PiCluster, exports its outputs.
// The outputs are a versioned contract for StackReference consumers: see README "Outputs".
import { buildClusterArtifacts, loadConfig, PiCluster, previousNodes } from "./components";

// @pulumi/pulumi's runner loads the source-map-support module, whose Error.prepareStackTrace
// maps every frame in JavaScript, and the SDK formats a stack trace for every promise it makes
// (runtime/debuggable.js): most of a no-op's CPU in the program (tests/mocha-setup.ts does the
// same for the unit suite). sucrase keeps each line where it was in the .ts, so traces still
// point at the right lines without it.
delete (Error as { prepareStackTrace?: unknown }).prepareStackTrace;

export = async () => {
    const config = loadConfig();
    const cluster = new PiCluster("pi-cluster", { config, artifacts: buildClusterArtifacts(), previousNodes: await previousNodes() });
    return {
        contractVersion: cluster.contractVersion,
        lbUrl: cluster.lbUrl,
        apiUrl: cluster.apiUrl,
        dashboardUrl: cluster.dashboardUrl,
        httpsUrl: cluster.httpsUrl,
        httpsApiUrl: cluster.httpsApiUrl,
        httpsDashboardUrl: cluster.httpsDashboardUrl,
        webServers: cluster.webServers,
        database: cluster.database,
        dbPassword: cluster.dbPassword,
        apiWriteToken: cluster.apiWriteToken,
        nodes: cluster.nodes,
        dbReplicas: cluster.dbReplicas,
        caCertificate: cluster.caCertificate,
        certificateExpiry: cluster.certificateExpiry,
        backup: cluster.backup,
    };
};
