/**
 * Bearer-token authentication: `Authorization: Bearer <key>`, keys from API_KEYS (key → tenant). Sets
 * `req.tenant` for every authenticated route, and `assertTenant` gives resource ownership one answer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { HttpError } from '../../common/errors';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The authenticated tenant; set by `authenticate` on every route behind it. */
      tenant?: string;
      /** A short, non-secret fingerprint of the API key (rate-limit key, logs). */
      apiKeyId?: string;
    }
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Middleware: 401 when the key is missing or unknown, otherwise sets `req.tenant` and `req.apiKeyId`. */
export function authenticate(keys: ReadonlyMap<string, string>): RequestHandler {
  // Compare fixed-length digests in constant time so response timing does not reveal key prefixes.
  const known = [...keys].map(([key, tenant]) => ({ digest: sha256(key), tenant }));
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      return next(new HttpError(401, 'unauthorized', 'Missing API key: send Authorization: Bearer <key>'));
    }
    const digest = sha256(m[1]!);
    let tenant: string | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, digest)) tenant = k.tenant;
    if (!tenant) {
      res.setHeader('WWW-Authenticate', 'Bearer error="invalid_token"');
      return next(new HttpError(401, 'unauthorized', 'Unknown API key'));
    }
    req.tenant = tenant;
    req.apiKeyId = digest.subarray(0, 8).toString('hex');
    req.log?.setBindings({ tenant });
    next();
  };
}

/** The authenticated tenant of a request; a 401 if a route forgot to sit behind `authenticate`. */
export function tenantOf(req: Request): string {
  if (!req.tenant) throw new HttpError(401, 'unauthorized', 'Not authenticated');
  return req.tenant;
}

/**
 * Resource ownership check. Another tenant's resource answers **404**, exactly like a missing one, so ids
 * cannot be probed across tenants (no 403 that confirms existence). Use it on every read and write by id.
 */
export function assertTenant(resourceTenant: string | undefined, req: Request, what = 'Resource'): void {
  if (!resourceTenant || resourceTenant !== tenantOf(req)) {
    throw new HttpError(404, 'not_found', `${what} not found`);
  }
}

/** Header an operator adds to a tenant's request to get operator-only fields (the Temporal Web UI link). */
export const OPERATOR_KEY_HEADER = 'x-operator-key';

/**
 * Whether the request carries an operator key (OPERATOR_API_KEYS) in `X-Operator-Key`. Tenants never get the Web
 * UI link: the UI shows every tenant's histories, so only operators are sent there.
 */
export function isOperator(req: Request, operatorKeys: readonly string[]): boolean {
  const given = req.get(OPERATOR_KEY_HEADER);
  return given ? isOperatorKey(given, operatorKeys) : false;
}

/** Whether `key` is one of OPERATOR_API_KEYS, compared as fixed-length digests in constant time. */
export function isOperatorKey(key: string, operatorKeys: readonly string[]): boolean {
  const digest = sha256(key);
  let ok = false;
  for (const k of operatorKeys) if (timingSafeEqual(sha256(k), digest)) ok = true;
  return ok;
}
