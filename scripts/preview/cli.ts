// Reads the JSON that `pulumi preview --json` printed and prints it as Markdown (markdown.ts).
// Usage: node -r sucrase/register/ts scripts/preview/cli.ts FILE [MAX_CHARS]
//   FILE is the saved JSON, or - for stdin; MAX_CHARS caps the Markdown's length.
import * as fs from "fs";
import { PreviewDigest, renderPreview } from "./markdown";

function main(argv: string[]): number {
    const [file, maxChars] = argv;
    if (!file) {
        process.stderr.write("usage: cli.ts FILE|- [MAX_CHARS]\n");
        return 2;
    }
    const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
    let digest: PreviewDigest;
    try {
        digest = JSON.parse(text) as PreviewDigest;
    } catch (e) {
        process.stderr.write(`preview: ${file} is not the JSON of \`pulumi preview --json\`: ${(e as Error).message}\n`);
        return 1;
    }
    process.stdout.write(renderPreview(digest, { maxChars: maxChars ? Number(maxChars) : undefined }));
    return 0;
}

process.exitCode = main(process.argv.slice(2));
