/**
 * A TCP proxy in front of one service, so a fault test can take "the service" down and bring it back without
 * touching the shared service itself (other test files use it) and without losing its state: `down()` closes
 * the listener and cuts every open connection (clients see ECONNREFUSED/ECONNRESET), `up()` listens again on
 * the same port.
 */
import net from 'node:net';

export interface TcpProxy {
  port: number;
  url: string;
  readonly isUp: boolean;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = net.createServer((client) => {
        const upstream = net.connect(target.port, target.host);
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on('close', () => sockets.delete(sock));
          sock.on('error', () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const down = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get isUp() {
      return server !== undefined;
    },
    down,
    up: () => (server ? Promise.resolve() : listen()),
    close: down,
  };
}
