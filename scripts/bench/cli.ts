// Reads what bench.lua wrote, prints the report (report.ts), writes the JSON and exits with
// the bench's status (figures.ts `verdict`). scripts/bench.sh runs it after wrk has ended.
// Usage: node -r sucrase/register/ts scripts/bench/cli.ts --figures FILE
//   --url URL --t0-ms MS [--stopped-early] [--json FILE] [--min-requests N]
//   [--fault-cmd CMD [--fault-started-ms MS --fault-ended-ms MS --fault-exit N]]
import * as fs from "fs";
import { parseArgs } from "util";
import { benchFigures, FaultRun, parseWrkFigures, verdict } from "./figures";
import { renderReport } from "./report";

function optionalNumber(v: string | undefined): number | undefined {
    return v === undefined || v === "" ? undefined : Number(v);
}

function main(argv: string[]): number {
    const { values: a } = parseArgs({
        args: argv,
        options: {
            figures: { type: "string" },
            url: { type: "string" },
            "t0-ms": { type: "string" },
            "stopped-early": { type: "boolean", default: false },
            json: { type: "string" },
            "min-requests": { type: "string" },
            "fault-cmd": { type: "string" },
            "fault-started-ms": { type: "string" },
            "fault-ended-ms": { type: "string" },
            "fault-exit": { type: "string" },
        },
    });
    if (!a.figures || !a.url || !a["t0-ms"]) {
        process.stderr.write("usage: cli.ts --figures FILE --url URL --t0-ms MS [options] (see the header)\n");
        return 1;
    }
    let fault: FaultRun | undefined;
    if (a["fault-cmd"] !== undefined) {
        fault = {
            cmd: a["fault-cmd"],
            startedMs: optionalNumber(a["fault-started-ms"]),
            endedMs: optionalNumber(a["fault-ended-ms"]),
            exitCode: optionalNumber(a["fault-exit"]),
        };
    }
    const figures = benchFigures(parseWrkFigures(fs.readFileSync(a.figures, "utf8")), {
        url: a.url,
        t0Ms: Number(a["t0-ms"]),
        stoppedEarly: a["stopped-early"] ?? false,
        fault,
    });
    process.stdout.write(renderReport(figures));
    if (a.json) {
        // A reader polling for the file never sees half of it.
        fs.writeFileSync(`${a.json}.tmp`, `${JSON.stringify(figures, null, 2)}\n`);
        fs.renameSync(`${a.json}.tmp`, a.json);
    }
    const { code, problems } = verdict(figures, optionalNumber(a["min-requests"]));
    for (const p of problems) process.stderr.write(`bench: error: ${p}\n`);
    return code;
}

try {
    process.exitCode = main(process.argv.slice(2));
} catch (e) {
    process.stderr.write(`bench: error: ${(e as Error).message}\n`);
    process.exitCode = 1;
}
