/**
 * The API's HTTP server with limits against slow and abusive clients. Node's defaults let a slow-loris client
 * hold a connection for a minute (headers) or five (body), checked only every 30 s; here a client must send its
 * headers within 10 s and its whole request within 60 s, checked every second, or it gets a 408 and is cut
 * off. Responses (streams included) are not limited: only the time to receive the request is.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RequestListener } from 'node:http';

export interface HttpLimits {
  /** Time to receive the request line and headers (408 after). */
  headersTimeoutMs: number;
  /** Time to receive the whole request, body included (408 after); ≥ headersTimeoutMs. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** How often the server looks for connections past the two timeouts above. */
  checkIntervalMs: number;
  /** Largest request head (431 beyond). */
  maxHeaderSizeBytes: number;
  /** Headers beyond this count are dropped. */
  maxHeadersCount: number;
}

export const HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  // Uploads (POST /functions, a few MiB) fit easily; a client trickling a body does not.
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  checkIntervalMs: 1_000,
  maxHeaderSizeBytes: 16 * 1024,
  maxHeadersCount: 100,
};

/** An HTTP server for `app` with `limits` (defaults: HTTP_LIMITS); not yet listening. */
export function createHttpServer(app: RequestListener, limits: Partial<HttpLimits> = {}): http.Server {
  const l = { ...HTTP_LIMITS, ...limits };
  const server = http.createServer(
    {
      headersTimeout: l.headersTimeoutMs,
      requestTimeout: Math.max(l.requestTimeoutMs, l.headersTimeoutMs),
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: l.checkIntervalMs,
      maxHeaderSize: l.maxHeaderSizeBytes,
    },
    app,
  );
  server.maxHeadersCount = l.maxHeadersCount;
  return server;
}

/** Listens on `port`/`host` (0: a free port); resolves with the bound address. */
export function listenOn(server: http.Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
