/**
 * HMAC-SHA256 over the raw body, both ways: the webhook verifies what the channel sends, and the reply
 * adapter signs what it posts back, with the same secret and header.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header carrying `sha256=<hex>`. */
export const SIGNATURE_HEADER = 'x-signature';

/** `sha256=<hex>` of `body` under `secret`. */
export function signBody(secret: string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** True when `header` is exactly the signature of `body`; compared in constant time. */
export function verifySignature(secret: string, body: Uint8Array, header: string | undefined): boolean {
  if (!header) return false;
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(m[1]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
