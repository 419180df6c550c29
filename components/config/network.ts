// IPv4 addresses and networks as the config takes them: parsing, containment, and how wide a
// management network may be.

/** Parses a dotted-quad IPv4 address into a 32-bit unsigned number, or undefined. */
export function ipv4ToNumber(address: string): number | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
    if (!m) return undefined;
    const octets = m.slice(1).map(Number);
    if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith("0")))) return undefined;
    return ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
}

/** True when `address` lies inside `cidr` (both already validated). */
export function cidrContains(cidr: string, address: string): boolean {
    const base = cidr.split("/")[0];
    const prefix = cidrPrefix(cidr);
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return ((ipv4ToNumber(base)! & mask) >>> 0) === ((ipv4ToNumber(address)! & mask) >>> 0);
}

/** The widest management or admin network taken without allowPublicManagement. */
export const MIN_MANAGEMENT_PREFIX = 8;

/** The prefix length of a validated CIDR ("10.0.0.0/8" -> 8). */
export function cidrPrefix(cidr: string): number {
    return Number(cidr.split("/")[1]);
}

/** True when a validated CIDR is wider than a management network may be (MIN_MANAGEMENT_PREFIX). */
export function tooWideForManagement(cidr: string): boolean {
    return cidrPrefix(cidr) < MIN_MANAGEMENT_PREFIX;
}
