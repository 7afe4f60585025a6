/**
 * The payload codec endpoints (issue 12, docs/operations.md "Encrypted histories"): `POST /codec/encode` and
 * `POST /codec/decode` speak Temporal's remote codec protocol, so the Web UI and `temporal workflow show
 * --codec-endpoint` can show histories whose payloads lib/codec/payload-codec.ts encrypted. Body and answer:
 * `{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`.
 *
 * Operators only (OPERATOR_API_KEYS; a tenant's key decrypts nothing): `Authorization: Bearer <operator key>` (the
 * CLI's `--codec-auth`, or a UI behind SSO that passes its access token), or the key in the path,
 * `/codec/key/<operator key>/decode`, for a Web UI that cannot send headers (the dev server's
 * `--ui-codec-endpoint`); request logs redact that path segment. CORS answers the Web UI's origin only.
 * Mounted before the app's JSON parser (its own, larger limit: a history payload may be up to 2 MB).
 */
import express, { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import { HttpError } from '../../common/errors';
import type { Config } from '../../common/config';
import { AesGcmPayloadCodec, PayloadDecryptError } from '../../lib/codec/payload-codec';
import { isOperatorKey } from '../middleware/auth';
import { registerRoute } from '../openapi';
import { parse } from '../validate';

/** Larger than API_BODY_LIMIT_BYTES: Temporal allows payloads up to 2 MB, and the UI sends a batch. */
const CODEC_BODY_LIMIT = '8mb';
const MAX_PAYLOADS = 1000;

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const WirePayload = z.object({
  metadata: z.record(z.string(), b64).optional(),
  data: b64.optional(),
});
const CodecBody = z.object({
  payloads: z.array(WirePayload).max(MAX_PAYLOADS, `at most ${MAX_PAYLOADS} payloads per request`),
});
type WirePayload = z.infer<typeof WirePayload>;

for (const op of ['encode', 'decode'] as const) {
  const doc = {
    method: 'post' as const,
    summary:
      op === 'decode'
        ? 'Decrypt payloads for the Temporal Web UI / CLI (remote codec protocol; operator key)'
        : 'Encrypt payloads with the current PAYLOAD_KEYS key (remote codec protocol; operator key)',
    tag: 'operations',
    public: true,
    body: CodecBody,
    responses: {
      200: { description: 'The payloads, same order', body: CodecBody },
      400: 'Not the codec body, or a payload that cannot be decrypted (its index and key id named)',
      401: 'No operator key',
      403: 'A key that is not an operator key (tenants cannot decrypt histories)',
    },
  };
  registerRoute({
    ...doc,
    path: `/codec/${op}`,
    headers: { Authorization: 'Bearer <operator key> (OPERATOR_API_KEYS)' },
  });
  registerRoute({
    ...doc,
    path: `/codec/key/:key/${op}`,
    description: 'The same, with the operator key in the path: for the Web UI, which cannot send headers.',
  });
}

const toWire = (p: Payload): WirePayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});
const fromWire = (p: WirePayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

/** `/codec/key/<secret>/…` → `/codec/key/[redacted]/…`, for request logs. */
export function redactCodecPath(url: string): string {
  return url.replace(/^(\/codec\/key\/)[^/?#]+/, '$1[redacted]');
}

function operatorAuth(config: Pick<Config, 'OPERATOR_API_KEYS' | 'API_KEYS'>): (req: Request) => void {
  return (req) => {
    const fromPath = typeof req.params.key === 'string' ? req.params.key : undefined;
    const fromHeader = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
    const key = fromPath ?? fromHeader;
    if (!key) {
      throw new HttpError(
        401,
        'unauthorized',
        'Missing operator key: send Authorization: Bearer <operator key>',
        undefined,
        {
          'WWW-Authenticate': 'Bearer',
        },
      );
    }
    if (isOperatorKey(key, config.OPERATOR_API_KEYS)) return;
    if (config.API_KEYS.has(key)) {
      throw new HttpError(403, 'forbidden', 'Only an operator key (OPERATOR_API_KEYS) can use the payload codec');
    }
    throw new HttpError(401, 'unauthorized', 'Unknown operator key');
  };
}

/** The Web UI calls from its own origin: allow exactly that origin (and its localhost/127.0.0.1 twin). */
function cors(config: Pick<Config, 'TEMPORAL_UI_URL'>): RequestHandler {
  const ui = new URL(config.TEMPORAL_UI_URL);
  const origins = new Set([ui.origin]);
  for (const [a, b] of [
    ['127.0.0.1', 'localhost'],
    ['localhost', '127.0.0.1'],
  ] as const)
    if (ui.hostname === a) origins.add(ui.origin.replace(a, b));
  return (req, res, next) => {
    const origin = req.get('origin');
    if (origin && origins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'authorization, content-type, x-namespace');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    next();
  };
}

export function codecRouter(
  config: Pick<Config, 'OPERATOR_API_KEYS' | 'API_KEYS' | 'PAYLOAD_KEYS' | 'TEMPORAL_UI_URL'>,
): Router {
  const router = Router();
  const codec = config.PAYLOAD_KEYS.length ? new AesGcmPayloadCodec(config.PAYLOAD_KEYS) : undefined;
  const authorize = operatorAuth(config);
  const json = express.json({ limit: CODEC_BODY_LIMIT, type: () => true });
  // CORS headers and the preflight for every /codec path (a middleware, so it also answers OPTIONS).
  router.use('/codec', cors(config));
  const handle =
    (op: 'encode' | 'decode'): RequestHandler =>
    (req, res) => {
      const body = parse(CodecBody, req.body, 'body');
      const payloads = body.payloads.map(fromWire);
      let out: Payload[];
      if (!codec)
        out = payloads; // encryption is off: the identity codec
      else if (op === 'encode') out = payloads.map((p) => codec.encryptOne(p));
      else {
        out = payloads.map((p, i) => {
          try {
            return codec.decryptOne(p);
          } catch (err) {
            if (err instanceof PayloadDecryptError) {
              throw new HttpError(400, 'undecryptable', `body.payloads.${i}: ${err.message}`);
            }
            throw err;
          }
        });
      }
      res.json({ payloads: out.map(toWire) });
    };
  // Authenticate before reading the body: an unauthenticated caller never gets 8 MB parsed.
  const auth: RequestHandler = (req, _res, next) => {
    authorize(req);
    next();
  };
  for (const op of ['encode', 'decode'] as const) {
    router.post(`/codec/${op}`, auth, json, handle(op));
    router.post(`/codec/key/:key/${op}`, auth, json, handle(op));
  }
  return router;
}
