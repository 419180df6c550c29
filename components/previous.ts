// What the last deployment of this stack looked like, read from the stack's own outputs
// (a StackReference to itself): the engine keeps no other record the program can read.
import * as pulumi from "@pulumi/pulumi";
import { Node } from "./renames";

/** The `nodes` output of this stack's last successful update; empty on the first one. */
export async function previousNodes(): Promise<Node[]> {
    const self = new pulumi.StackReference(`${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}`);
    const details = await self.getOutputDetails("nodes");
    const value = details.value ?? details.secretValue;
    return Array.isArray(value) ? (value as Node[]) : [];
}
