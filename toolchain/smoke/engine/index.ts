// The engine without any Go provider: the CLI, the nodejs language host, state, secrets
// and a resource lifecycle, through a dynamic provider (plain JavaScript, run by the
// `pulumi-resource-pulumi-nodejs` script that @pulumi/pulumi ships).
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";

const provider: pulumi.dynamic.ResourceProvider = {
    async create(inputs: { length: number }) {
        const value = crypto.randomBytes(inputs.length).toString("hex").slice(0, inputs.length);
        return { id: crypto.randomUUID(), outs: { length: inputs.length, value } };
    },
    async diff(_id: string, olds: { length: number }, news: { length: number }) {
        return { changes: olds.length !== news.length, replaces: olds.length !== news.length ? ["length"] : [] };
    },
};

class Token extends pulumi.dynamic.Resource {
    // `declare`: an ES2022 class field would reset what the engine set during super().
    declare public readonly value: pulumi.Output<string>;
    constructor(name: string, length: number) {
        super(provider, name, { length, value: undefined }, { additionalSecretOutputs: ["value"] });
    }
}

const token = new Token("smoke-token", 24);
export const secretToken = token.value;
export const engine = "ok";
