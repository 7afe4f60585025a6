/**
 * `Idempotency-Key` on POSTs that start work (`/run`, `/prompts`): the key maps to a deterministic id per
 * tenant, so a retried POST finds the job or prompt it started instead of starting another.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Request } from 'express';
import { z } from 'zod';
import { parse } from './validate';

/** The header's value: 1 to 255 characters, optional. */
export const IdempotencyKeySchema = z.string().min(1).max(255).optional();

/** The request's `Idempotency-Key`, validated (a 400 naming `headers` when it is empty or too long). */
export function idempotencyKeyOf(req: Request): string | undefined {
  return parse(IdempotencyKeySchema, req.get('idempotency-key'), 'headers');
}

/** `${prefix}-…`: derived from the tenant and its key when there is one, random otherwise. */
export function idempotentId(prefix: string, tenant: string, key: string | undefined): string {
  return key ? `${prefix}-${sha256(`${tenant}\n${key}`).slice(0, 32)}` : `${prefix}-${randomUUID()}`;
}

/** A fingerprint of a request body, kept with the work, so a key reused with another body can be told apart. */
export function bodyHash(body: unknown): string {
  return sha256(JSON.stringify(body));
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
