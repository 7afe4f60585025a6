/**
 * A storage endpoint that accepts connections and never answers (a frozen emulator, a black-holed load
 * balancer): every S3/DynamoDB request gives up after STORAGE_TIMEOUT_MS of silence (the SDK retries it, 3
 * attempts in all), and the failure is the API's 503 storage_unavailable, not a request held open forever.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { createStorage } from '../../lib/storage/clients';
import { toHttpError } from '../../api/middleware/errors';

let server: net.Server;
const sockets = new Set<net.Socket>();
let accepted = 0;
let endpoint = '';

beforeAll(async () => {
  server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.resume(); // read the request, never answer
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const storage = () =>
  createStorage({
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    S3_BUCKET: 'ainode-timeout',
    DYNAMO_TABLE_PREFIX: 'timeout-',
    STORAGE_TIMEOUT_MS: 300,
  });

describe('storage that never answers', () => {
  it('an S3 read fails after its attempts time out, as 503 storage_unavailable', async () => {
    const s = storage();
    const before = accepted;
    const err = await s.getObjectBytes('any/key').catch((e: unknown) => e);
    s.close();
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('TimeoutError');
    expect(accepted - before).toBe(3); // the SDK's 3 attempts, each on its own connection
    const http = toHttpError(err);
    expect([http.status, http.code]).toEqual([503, 'storage_unavailable']);
  });

  it('a DynamoDB read fails the same way', async () => {
    const s = storage();
    const err = await s.ddb
      .send(new GetItemCommand({ TableName: s.table('jobs'), Key: { pk: { S: 'a' }, sk: { S: 'b' } } }))
      .catch((e: unknown) => e);
    s.close();
    expect((err as Error).name).toBe('TimeoutError');
    expect(toHttpError(err).code).toBe('storage_unavailable');
  });
});
