// A PostgreSQL server with pgvector for tests where no real one is installed: PGlite (PostgreSQL compiled to WASM)
// with its pgvector extension, on 127.0.0.1:<port> through pglite-socket (the wire protocol `pg` speaks). Its own
// process, because PGlite loads its parts with dynamic import(), which jest's module sandbox refuses.
// Usage: node pglite-pgvector-server.mjs <port>; prints "ready" when it accepts connections; stops on SIGTERM.
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number(process.argv[2]);
const db = await PGlite.create({ extensions: { vector } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 4 });
await server.start();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void server
    .stop()
    .then(() => db.close())
    .finally(() => process.exit(0));
});
