// The pi-cluster policy pack, run locally: `pulumi preview --policy-pack policy` (README,
// "Policy pack"). The rules and why each holds are in policies.ts.
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("pi-cluster", { policies: policies() });
