// Smallest program that needs every part of the toolchain: the CLI, the nodejs language
// host, and the command and random resource plugins at the versions package.json pins.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

const password = new random.RandomPassword("smoke-password", { length: 24, special: false });

const echo = new command.local.Command("smoke-echo", { create: "echo ok" });

// RandomPassword marks result secret already; pulumi.secret makes the intent explicit.
export const secretPassword = pulumi.secret(password.result);
export const echoStdout = echo.stdout;
