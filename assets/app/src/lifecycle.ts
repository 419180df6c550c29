import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";

/** How long in-flight requests may take to finish after SIGTERM/SIGINT. */
export const DRAIN_TIMEOUT_MS = 10_000;
/**
 * Longer than nginx's upstream keepalive_timeout (60 s default), so the balancer, not the app,
 * closes idle keep-alive connections and never sends a request down a socket we just closed.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** A server for `handler` (the Express app, or the metrics listener's) listening on `port`. */
export function listen(handler: http.RequestListener, port: number, host?: string): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const server = http.createServer(handler);
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000;
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

export const boundPort = (server: http.Server): number => (server.address() as AddressInfo).port;

/**
 * Stops accepting connections, lets in-flight requests finish (cutting them after `timeoutMs`),
 * then runs `afterClose` (closing the pool). Resolves whether or not the drain timed out.
 */
export async function shutdown(
  server: http.Server,
  app: Express,
  afterClose: () => Promise<void>,
  timeoutMs = DRAIN_TIMEOUT_MS,
): Promise<{ timedOut: boolean }> {
  app.locals.shuttingDown = true;
  let timedOut = false;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      timedOut = true;
      server.closeAllConnections();
    }, timeoutMs);
    // close() stops listening and (Node >= 19) drops idle keep-alive sockets; busy ones end
    // after their response because of the Connection: close header server.ts adds.
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
  await afterClose();
  return { timedOut };
}

/**
 * Closes a server that holds no request worth draining (the metrics listener): stops listening
 * and cuts its connections, a scrape in flight included.
 */
export function closeNow(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
