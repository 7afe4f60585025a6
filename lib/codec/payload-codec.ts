/**
 * Payload encryption for Temporal (issue 12): every payload a client or worker sends to the server (workflow
 * inputs and results, activity arguments and results, signals, updates, queries, memos) is encrypted with
 * AES-256-GCM before it leaves the process, so histories at rest hold no plaintext browsing data, prompts or
 * outputs. The key id travels in the payload's metadata, so keys rotate: the first configured key encrypts, every
 * configured key decrypts, and a payload encrypted with a key that is no longer configured fails with a message
 * naming that key id. Payloads without our encoding (histories written before encryption was turned on) pass
 * through unchanged, so old runs keep working.
 *
 * Wire format (the one Temporal's encryption samples use, so other SDKs' codecs interoperate):
 *   metadata.encoding          = "binary/encrypted"
 *   metadata.encryption-key-id = the key id
 *   data                       = 12-byte IV ‖ ciphertext ‖ 16-byte GCM tag, of the protobuf-encoded original Payload
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { parsePayloadKeys, type PayloadKey } from '../../common/payload-keys';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

const utf8 = (s: string) => new TextEncoder().encode(s);
const fromUtf8 = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

/** A payload our codec cannot decrypt: unknown key id, or the data was tampered with / encrypted with another key. */
export class PayloadDecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadDecryptError';
  }
}

export { parsePayloadKeys, type PayloadKey };

/** A fresh key spec (`id=base64`) for a dev stack or an operator rotating keys. */
export function newPayloadKeySpec(id = `k${new Date().toISOString().slice(0, 10).replace(/-/g, '')}`): string {
  return `${id}=${randomBytes(KEY_BYTES).toString('base64')}`;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly current: PayloadKey;
  private readonly byId: Map<string, Buffer>;

  constructor(keys: readonly PayloadKey[]) {
    if (!keys.length) throw new Error('AesGcmPayloadCodec needs at least one key');
    this.current = keys[0]!;
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  /** The id of the key new payloads are encrypted with. */
  get currentKeyId(): string {
    return this.current.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encryptOne(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decryptOne(p));
  }

  encryptOne(payload: Payload): Payload {
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    return {
      metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(this.current.id) },
      data: Buffer.concat([iv, body, cipher.getAuthTag()]),
    };
  }

  decryptOne(payload: Payload): Payload {
    if (fromUtf8(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = fromUtf8(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new PayloadDecryptError(`encrypted payload has no ${KEY_ID_METADATA} metadata`);
    const key = this.byId.get(keyId);
    if (!key) {
      throw new PayloadDecryptError(
        `payload is encrypted with key "${keyId}", which is not in PAYLOAD_KEYS (keep retired keys listed after the current one)`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptError('encrypted payload is too short');
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptError(
        `payload failed authentication with key "${keyId}" (tampered, or a different key under that id)`,
      );
    }
    const decoded = temporal.api.common.v1.Payload.decode(plain);
    return { metadata: decoded.metadata ?? {}, data: decoded.data ?? new Uint8Array() };
  }
}

/**
 * The data converter option for every Temporal Client and Worker of one deployment: all of them must agree, or a
 * process without the key cannot read what another wrote. Undefined (no encryption) when no keys are configured.
 */
export function dataConverterFor(config: {
  PAYLOAD_KEYS?: readonly PayloadKey[];
}): { payloadCodecs: PayloadCodec[] } | undefined {
  return config.PAYLOAD_KEYS?.length ? { payloadCodecs: [new AesGcmPayloadCodec(config.PAYLOAD_KEYS)] } : undefined;
}
