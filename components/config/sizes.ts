// Memory sizes in the config (MariaDB's, a web server's) and what they add up to on a Pi.
import { z } from "zod";
import { APP_MAX_MEMORY_MB } from "../render/app";

export const byteSize = z.string().regex(/^\d+[KMG]?$/, { message: "expected a size such as 512M" });

/** Mebibytes in a size such as "512M" (a bare number is bytes, as MariaDB reads it). */
export function sizeToMb(size: string): number {
    const m = /^(\d+)([KMG]?)$/.exec(size);
    if (!m) throw new Error(`sizeToMb: not a size: ${size}`);
    const scale = { "": 1 / (1024 * 1024), K: 1 / 1024, M: 1, G: 1024 }[m[2] as "" | "K" | "M" | "G"];
    return Math.ceil(Number(m[1]) * scale);
}

/**
 * What MariaDB may take on the DB Pi, in MB, with the OS beside it. Estimates, not
 * measurements:
 * - the buffer pool takes about 10% more than its size for its control structures
 *   (MariaDB's knowledge base, "InnoDB Buffer Pool");
 * - each connection can hold about 3 MB of per-thread buffers at MariaDB's defaults
 *   (sort 2M, join 256K, read_rnd 256K, read 128K, thread stack 292K);
 * - 512 MB is kept for the rest: MariaDB's default key and Aria page caches are 128 MB
 *   each, which leaves about 256 MB for Raspberry Pi OS Lite, sshd and mariadbd itself.
 */
export function mariadbMemoryMb(bufferPoolSize: string, connections: number): { pool: number; connections: number; reserve: number; total: number } {
    const pool = Math.ceil(sizeToMb(bufferPoolSize) * 1.1);
    const conn = connections * 3;
    const reserve = 512;
    return { pool, connections: conn, reserve, total: pool + conn + reserve };
}

/** What a web server needs, in MB: the app up to PM2's restart limit, and about 256 MB for the OS, Node.js and PM2's daemon. */
export const WEB_MEMORY_MB = APP_MAX_MEMORY_MB + 256;
