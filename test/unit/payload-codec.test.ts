import { Writable } from 'node:stream';
import request from 'supertest';
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { createApp } from '../../api/app';
import type { ApiDeps } from '../../api/deps';
import type { Storage } from '../../lib/storage/clients';
import type { ModelCatalog } from '../../lib/llm/catalog';
import { loadConfig } from '../../common/config';
import { createLogger } from '../../common/logger';
import { parsePayloadKeys } from '../../common/payload-keys';
import {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  PayloadDecryptError,
  dataConverterFor,
  newPayloadKeySpec,
} from '../../lib/codec/payload-codec';

const TITLE = 'Kubernetes operators deep dive — private browsing title';
const keysOf = (spec: string) => {
  const parsed = parsePayloadKeys(spec);
  if ('problems' in parsed) throw new Error(parsed.problems.join('; '));
  return parsed.keys;
};
const OLD = newPayloadKeySpec('k-old');
const NEW = newPayloadKeySpec('k-new');
const plain = (v: unknown): Payload => defaultPayloadConverter.toPayload(v)!;
const text = (p: Payload) => Buffer.from(p.data ?? []).toString('latin1');
const meta = (p: Payload, k: string) => Buffer.from(p.metadata?.[k] ?? []).toString('utf8');

describe('AES-256-GCM payload codec', () => {
  it('round-trips a payload and leaves no plaintext in what goes to Temporal', async () => {
    const codec = new AesGcmPayloadCodec(keysOf(OLD));
    const original = plain({ visited_sites: [{ url: 'https://k8s.example/ops', title: TITLE }] });
    const [enc] = await codec.encode([original]);
    expect(meta(enc!, 'encoding')).toBe(ENCRYPTED_ENCODING);
    expect(meta(enc!, KEY_ID_METADATA)).toBe('k-old');
    expect(text(enc!)).not.toContain('Kubernetes');
    expect(Buffer.from(enc!.data!).includes(Buffer.from('json/plain'))).toBe(false);
    const [dec] = await codec.decode([enc!]);
    expect(defaultPayloadConverter.fromPayload(dec!)).toEqual({
      visited_sites: [{ url: 'https://k8s.example/ops', title: TITLE }],
    });
    // A fresh IV each time: the same payload never encrypts to the same bytes.
    const [again] = await codec.encode([original]);
    expect(Buffer.from(again!.data!).equals(Buffer.from(enc!.data!))).toBe(false);
  });

  it('rotates: the first key encrypts, older keys still decrypt, a dropped key is named', async () => {
    const before = new AesGcmPayloadCodec(keysOf(OLD));
    const [oldPayload] = await before.encode([plain('written before the rotation')]);
    const rotated = new AesGcmPayloadCodec(keysOf(`${NEW},${OLD}`));
    expect(rotated.currentKeyId).toBe('k-new');
    const [newPayload] = await rotated.encode([plain('after')]);
    expect(meta(newPayload!, KEY_ID_METADATA)).toBe('k-new');
    expect(defaultPayloadConverter.fromPayload((await rotated.decode([oldPayload!]))[0]!)).toBe(
      'written before the rotation',
    );
    const retired = new AesGcmPayloadCodec(keysOf(NEW));
    await expect(retired.decode([oldPayload!])).rejects.toThrow(/key "k-old", which is not in PAYLOAD_KEYS/);
  });

  it('refuses tampered data and a different key under the same id; passes unencrypted payloads through', async () => {
    const codec = new AesGcmPayloadCodec(keysOf(OLD));
    const [enc] = await codec.encode([plain('secret')]);
    const tampered = Buffer.from(enc!.data!);
    tampered[20] = tampered[20]! ^ 0xff;
    await expect(codec.decode([{ ...enc!, data: tampered }])).rejects.toBeInstanceOf(PayloadDecryptError);
    const impostor = new AesGcmPayloadCodec(keysOf(newPayloadKeySpec('k-old')));
    await expect(impostor.decode([enc!])).rejects.toThrow(/failed authentication with key "k-old"/);
    // Histories written before encryption was turned on keep replaying.
    const legacy = plain({ a: 1 });
    expect((await codec.decode([legacy]))[0]).toBe(legacy);
  });

  it('PAYLOAD_KEYS: bad entries are named without echoing key material; empty means no codec', () => {
    const secret = Buffer.alloc(32, 7).toString('base64');
    const res = parsePayloadKeys(`${secret},short=${Buffer.alloc(8).toString('base64')},a=${secret},a=${secret}`);
    expect('problems' in res && res.problems).toEqual([
      expect.stringMatching(/^entry 1 is not id=base64key/),
      expect.stringMatching(/key "short" must be 32 bytes.*got 8/),
      expect.stringMatching(/key id "a" is listed twice/),
    ]);
    expect(JSON.stringify(res)).not.toContain(secret);
    expect(() => loadConfig({ PAYLOAD_KEYS: `x=${Buffer.alloc(5).toString('base64')}` })).toThrow(/PAYLOAD_KEYS/);
    expect(dataConverterFor(loadConfig({}))).toBeUndefined();
    expect(dataConverterFor(loadConfig({ PAYLOAD_KEYS: OLD }))?.payloadCodecs).toHaveLength(1);
  });
});

describe('/codec/encode and /codec/decode (the Web UI and CLI codec server)', () => {
  const OPERATOR = 'operator-key-0123456789';
  function makeApp(env: Record<string, string> = {}) {
    const lines: string[] = [];
    const logger = createLogger(
      'api',
      { LOG_LEVEL: 'info' },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      }),
    );
    const config = loadConfig({
      API_KEYS: 'tenant-key-1:tenant-a',
      OPERATOR_API_KEYS: OPERATOR,
      PAYLOAD_KEYS: `${NEW},${OLD}`,
      TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      ...env,
    });
    const catalog = { get: async () => ({ models: [], nodes: [], generatedAt: '' }), hasModel: async () => false };
    const deps: ApiDeps = {
      config,
      temporal: {} as Client,
      catalog: catalog as unknown as ModelCatalog,
      storage: {} as Storage,
      logger,
    };
    return {
      app: createApp(deps),
      lines,
      codec: new AesGcmPayloadCodec(config.PAYLOAD_KEYS.length ? config.PAYLOAD_KEYS : keysOf(OLD)),
    };
  }
  const wire = (p: Payload) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  });

  it('decodes what the workers encrypted (current and retired key) and encodes with the current key', async () => {
    const { app, codec } = makeApp();
    const [a] = await codec.encode([plain({ title: TITLE })]);
    const [b] = await new AesGcmPayloadCodec(keysOf(OLD)).encode([plain('older')]);
    const res = await request(app)
      .post('/codec/decode')
      .set('Authorization', `Bearer ${OPERATOR}`)
      .set('X-Namespace', 'default')
      .send({ payloads: [wire(a!), wire(b!), wire(plain('never encrypted'))] });
    expect(res.status).toBe(200);
    const decoded = (res.body.payloads as { metadata: Record<string, string>; data: string }[]).map((p) =>
      defaultPayloadConverter.fromPayload({
        metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(p.data, 'base64'),
      }),
    );
    expect(decoded).toEqual([{ title: TITLE }, 'older', 'never encrypted']);

    const enc = await request(app)
      .post('/codec/encode')
      .set('Authorization', `Bearer ${OPERATOR}`)
      .send({ payloads: [wire(plain('to encrypt'))] });
    expect(enc.status).toBe(200);
    expect(Buffer.from(enc.body.payloads[0].metadata[KEY_ID_METADATA], 'base64').toString()).toBe('k-new');
    expect(Buffer.from(enc.body.payloads[0].data, 'base64').toString('latin1')).not.toContain('to encrypt');
  });

  it('401 without a key, 403 for a tenant key, 400 naming the field; the Web UI path form never logs the key', async () => {
    const { app, lines } = makeApp();
    const body = { payloads: [wire(plain('x'))] };
    const none = await request(app).post('/codec/decode').send(body);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('unauthorized');
    const tenant = await request(app).post('/codec/decode').set('Authorization', 'Bearer tenant-key-1').send(body);
    expect(tenant.status).toBe(403);
    expect(tenant.body.error.message).toMatch(/operator key/);
    const bad = await request(app)
      .post('/codec/decode')
      .set('Authorization', `Bearer ${OPERATOR}`)
      .send({ payloads: [{ data: 'not base64!' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^body\.payloads\.0\.data/);
    const foreign = await new AesGcmPayloadCodec(keysOf(newPayloadKeySpec('k-gone'))).encode([plain('x')]);
    const gone = await request(app)
      .post('/codec/decode')
      .set('Authorization', `Bearer ${OPERATOR}`)
      .send({ payloads: [wire(plain('fine')), wire(foreign[0]!)] });
    expect(gone.status).toBe(400);
    expect(gone.body.error).toMatchObject({
      code: 'undecryptable',
      message: expect.stringMatching(/payloads\.1.*k-gone/),
    });

    const viaPath = await request(app).post(`/codec/key/${OPERATOR}/decode`).send(body);
    expect(viaPath.status).toBe(200);
    const wrongPath = await request(app).post('/codec/key/not-an-operator-key/decode').send(body);
    expect(wrongPath.status).toBe(401);
    expect(lines.join('')).toContain('/codec/key/[redacted]/decode');
    expect(lines.join('')).not.toContain(OPERATOR);
  });

  it('answers the Web UI origin’s CORS preflight, and no other origin', async () => {
    const { app } = makeApp();
    const ok = await request(app)
      .options('/codec/decode')
      .set('Origin', 'http://localhost:8233')
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type,x-namespace');
    expect(ok.status).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:8233');
    expect(ok.headers['access-control-allow-headers']).toMatch(/x-namespace/);
    const other = await request(app)
      .options('/codec/decode')
      .set('Origin', 'http://evil.example')
      .set('Access-Control-Request-Method', 'POST');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('with encryption off, the codec is the identity', async () => {
    const { app } = makeApp({ PAYLOAD_KEYS: '' });
    const p = wire(plain('as is'));
    const res = await request(app)
      .post('/codec/decode')
      .set('Authorization', `Bearer ${OPERATOR}`)
      .send({ payloads: [p] });
    expect(res.status).toBe(200);
    expect(res.body.payloads).toEqual([p]);
  });
});
