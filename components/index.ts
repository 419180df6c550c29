export * from "./artifacts";
export * from "./cluster";
export * from "./config";
export * from "./database";
export * from "./host";
export * from "./loadBalancer";
export * from "./webServer";
