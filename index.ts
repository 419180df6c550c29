// Reads the stack config, builds the artifacts, builds one PiCluster, exports its outputs.
// The outputs are a versioned contract for StackReference consumers: see README "Outputs".
import { buildClusterArtifacts, loadConfig, PiCluster, previousNodes } from "./components";

export = async () => {
    const config = loadConfig();
    const cluster = new PiCluster("pi-cluster", { config, artifacts: buildClusterArtifacts(), previousNodes: await previousNodes() });
    return {
        contractVersion: cluster.contractVersion,
        lbUrl: cluster.lbUrl,
        apiUrl: cluster.apiUrl,
        dashboardUrl: cluster.dashboardUrl,
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
