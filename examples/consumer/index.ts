// Monitoring targets for the Pi cluster: an example consumer of its outputs contract
// (README "Outputs contract"), read through a StackReference. It refuses a contract version
// it was not written for, and exports health-check targets and the database endpoint.
// Run it from the repository root: pulumi up --cwd examples/consumer (docs/contracts.md).
import * as pulumi from "@pulumi/pulumi";
import { ClusterOutputs, Monitoring, monitoringFrom, SUPPORTED_CONTRACT_VERSIONS } from "./monitoring";

const NAMES: (keyof ClusterOutputs)[] = ["contractVersion", "lbUrl", "apiUrl", "webServers", "database"];

// An async program: the version check runs before any export exists, so a refusal ends the
// run at once with just its message.
export = async (): Promise<Monitoring> => {
    const config = new pulumi.Config();
    const clusterStack = config.require("clusterStack");
    // Only tests set it: it stands for a program written for another version, so that the
    // refusal can be proven against a real cluster stack.
    const override = config.getNumber("supportedContractVersion");
    const cluster = new pulumi.StackReference(clusterStack);
    // One output at a time: the whole `outputs` map holds the secret dbPassword, which would
    // make everything derived from it secret too.
    const values = await Promise.all(NAMES.map(async (n) => (await cluster.getOutputDetails(n)).value));
    const outputs: ClusterOutputs = Object.fromEntries(NAMES.map((n, i) => [n, values[i]]));
    return monitoringFrom(clusterStack, outputs, override === undefined ? SUPPORTED_CONTRACT_VERSIONS : [override]);
};
