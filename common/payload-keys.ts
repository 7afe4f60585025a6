/**
 * The PAYLOAD_KEYS setting (issue 12): `id=base64key,id=base64key`, AES-256 keys for the Temporal payload codec
 * (lib/codec/payload-codec.ts). The first key encrypts; every listed key decrypts, so a key is rotated by putting a
 * new one first and keeping the old ones listed until no history needs them.
 */

const KEY_BYTES = 32;

export interface PayloadKey {
  id: string;
  /** 32 bytes (AES-256). */
  key: Buffer;
}

/**
 * Parses `id=base64key,id=base64key` (the PAYLOAD_KEYS setting). The first key encrypts; all decrypt. Returns the
 * problems instead of throwing so config validation can name each bad entry.
 */
export function parsePayloadKeys(spec: string): { keys: PayloadKey[] } | { problems: string[] } {
  const keys: PayloadKey[] = [];
  const problems: string[] = [];
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const [i, part] of parts.entries()) {
    const eq = part.indexOf('=');
    const id = eq > 0 ? part.slice(0, eq).trim() : '';
    const b64 = eq > 0 ? part.slice(eq + 1).trim() : '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id) || !b64) {
      // Never echo the entry: without its id it is probably the key itself.
      problems.push(`entry ${i + 1} is not id=base64key (id: 1-64 letters, digits, . _ -)`);
      continue;
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length !== KEY_BYTES) {
      problems.push(
        `key "${id}" must be ${KEY_BYTES} bytes, base64-encoded (got ${key.length}); make one with: openssl rand -base64 32`,
      );
      continue;
    }
    if (keys.some((k) => k.id === id)) {
      problems.push(`key id "${id}" is listed twice`);
      continue;
    }
    keys.push({ id, key });
  }
  return problems.length ? { problems } : { keys };
}
