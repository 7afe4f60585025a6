/**
 * The channel adapter's callback (activities/channel): a reply is POSTed to the channel's URL as the webhook's
 * own message payload, signed over the raw body, with the reply id as idempotency key; it is recorded in the
 * outbox only once the channel accepted it, and a retry after a failed write does not post it again. A local HTTP
 * server plays the channel; the outbox is a stub.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createChannelActivities, IDEMPOTENCY_HEADER } from '../../activities/channel';
import { SIGNATURE_HEADER, verifySignature } from '../../lib/channel/signature';
import { ErrorType } from '../../common/errors';
import type { Storage } from '../../lib/storage/clients';
import type { DeliverReplyInput } from '../../contracts/channel';

const SECRET = 'callback-test-secret';

interface Received {
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
}

describe('channel callback', () => {
  const received: Received[] = [];
  /** Status codes the next posts are answered with (then 200). */
  const answers: number[] = [];
  let server: http.Server;
  let url: string;
  const written: unknown[] = [];
  const storage = {
    table: (name: string) => `t-${name}`,
    doc: { send: async (cmd: { input: unknown }) => void written.push(cmd.input) },
  } as unknown as Storage;
  const activities = () =>
    createChannelActivities({ storage, callbackUrl: url, secret: SECRET, now: () => 1_700_000_000_000 });
  const input: DeliverReplyInput = {
    channel: 'channel',
    chatId: 'chat-1',
    replyId: 'channel:chat-1:3',
    turn: 3,
    text: 'The Linen Shirt costs 39.90 EUR.',
    agent: 'product',
    inReplyTo: ['m1', 'm2'],
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, raw: Buffer.concat(chunks) });
        res.writeHead(answers.shift() ?? 200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/replies`;
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  beforeEach(() => {
    received.length = 0;
    written.length = 0;
    answers.length = 0;
  });

  it('posts the reply signed with the webhook secret over the exact raw body, then records it', async () => {
    await expect(activities().deliverChatReply(input)).resolves.toEqual({
      via: 'callback',
      deliveredAt: 1_700_000_000_000,
    });
    expect(received).toHaveLength(1);
    const [{ headers, raw }] = received as [Received];
    expect(verifySignature(SECRET, raw, headers[SIGNATURE_HEADER] as string)).toBe(true);
    expect(verifySignature('another-secret', raw, headers[SIGNATURE_HEADER] as string)).toBe(false);
    // One changed byte and the signature no longer holds: it covers the body as sent.
    const tampered = Buffer.from(raw.toString('utf8').replace('39.90', '19.90'));
    expect(verifySignature(SECRET, tampered, headers[SIGNATURE_HEADER] as string)).toBe(false);
    expect(headers[IDEMPOTENCY_HEADER]).toBe(input.replyId);
    expect(headers['content-type']).toBe('application/json');
    expect(JSON.parse(raw.toString('utf8'))).toEqual({
      type: 'message',
      entity: {
        id: input.replyId,
        chatId: 'chat-1',
        plainText: input.text,
        personType: 'bot',
        createdAt: 1_700_000_000_000,
        inReplyTo: ['m1', 'm2'],
      },
    });
    expect(written).toEqual([
      expect.objectContaining({
        TableName: 't-chats',
        Item: expect.objectContaining({ message: expect.objectContaining({ id: input.replyId, via: 'callback' }) }),
      }),
    ]);
  });

  it('a 5xx, 408 or 429 is a plain error (Temporal retries it) and nothing is recorded', async () => {
    for (const status of [503, 408, 429]) {
      answers.push(status);
      const err = await activities()
        .deliverChatReply(input)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ApplicationFailure);
      expect((err as Error).message).toBe(`channel callback answered ${status}`);
    }
    expect(written).toEqual([]);
  });

  it('a 4xx the channel means is non-retryable InvalidRequest; an unreachable channel is retryable', async () => {
    answers.push(400);
    const refused = await activities()
      .deliverChatReply(input)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect(refused).toMatchObject({ type: ErrorType.InvalidRequest, nonRetryable: true });

    const down = createChannelActivities({ storage, callbackUrl: 'http://127.0.0.1:1/replies', secret: SECRET });
    const err = await down.deliverChatReply(input).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).not.toBeInstanceOf(ApplicationFailure);
    expect((err as Error).message).toMatch(/^channel callback unreachable: /);
    expect(written).toEqual([]);
  });

  it('a post the channel accepted is remembered across attempts: a retry after a failed write only records it', async () => {
    // Attempt 1: the channel accepts the post, the outbox write fails (storage down); the post is in the heartbeat.
    const beats: unknown[] = [];
    const failing = {
      table: (name: string) => `t-${name}`,
      doc: {
        send: async () => {
          throw new Error('connect ECONNREFUSED');
        },
      },
    } as unknown as Storage;
    const first = new MockActivityEnvironment();
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const down = createChannelActivities({ storage: failing, callbackUrl: url, secret: SECRET, now: () => 7 });
    await expect(first.run(down.deliverChatReply, input)).rejects.toThrow('ECONNREFUSED');
    expect(received).toHaveLength(1);
    expect(beats).toEqual([{ postedAt: 7 }]);
    // Attempt 2 gets those details: it records the reply (with the time it was posted) and does not post it again.
    const retry = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: beats[0] });
    const later = createChannelActivities({ storage, callbackUrl: url, secret: SECRET, now: () => 99 });
    await expect(retry.run(later.deliverChatReply, input)).resolves.toEqual({ via: 'callback', deliveredAt: 7 });
    expect(received).toHaveLength(1);
    expect(written).toEqual([
      expect.objectContaining({
        Item: expect.objectContaining({ message: expect.objectContaining({ id: input.replyId, createdAt: 7 }) }),
      }),
    ]);
  });

  it('without a callback URL the reply only goes to the outbox', async () => {
    const local = createChannelActivities({ storage, secret: SECRET, now: () => 5 });
    await expect(local.deliverChatReply(input)).resolves.toEqual({ via: 'outbox', deliveredAt: 5 });
    expect(received).toEqual([]);
    expect(written).toHaveLength(1);
  });
});
