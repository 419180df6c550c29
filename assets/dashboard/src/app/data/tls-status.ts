/**
 * The load balancer's certificate, as `/tls.json` reports it (written on the LB by its TLS step
 * and by the daily renewal, see assets/scripts/tls-renew.sh): `{"certificateExpiry": ISO 8601}`.
 */
export interface TlsView {
  /** When the certificate expires, ISO 8601 UTC. */
  expiry: string;
  /** Whole days left, rounded down; negative once expired. */
  daysLeft: number;
  /** Fewer than TLS_WARN_DAYS left: the renewal (from 30 days before) has failed for two weeks. */
  warn: boolean;
}

/** Shown red below this. The stack renews from 30 days before expiry (TLS_RENEW_DAYS in components/render/tls.ts). */
export const TLS_WARN_DAYS = 14;

const DAY_MS = 86_400_000;

/** Reads /tls.json; throws naming the field when it is not what the LB writes. */
export function parseTlsStatus(body: string, now: number): TlsView {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    throw new Error('tls.json: expected JSON');
  }
  const expiry = (data as { certificateExpiry?: unknown } | null)?.certificateExpiry;
  if (typeof expiry !== 'string' || Number.isNaN(Date.parse(expiry))) {
    throw new Error(`tls.json: certificateExpiry: expected an ISO 8601 date, got ${JSON.stringify(expiry)}`);
  }
  const daysLeft = Math.floor((Date.parse(expiry) - now) / DAY_MS);
  return { expiry, daysLeft, warn: daysLeft < TLS_WARN_DAYS };
}
