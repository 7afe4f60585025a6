/** Per-API-key rate limit (fixed one-minute window, in memory: one API process per deployment). */
import { rateLimit } from 'express-rate-limit';
import type { RequestHandler } from 'express';
import { HttpError } from '../../common/errors';

/** 429 `rate_limited` in our error shape, with `Retry-After` (seconds) and the draft-7 RateLimit headers. */
export function rateLimitPerKey(perMinute: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    // Runs after `authenticate`, so every request has a key id; the IP is only a fallback for misuse.
    keyGenerator: (req) => req.apiKeyId ?? req.tenant ?? 'anonymous',
    // Our key is not an IP, so the library's IP-related sanity checks do not apply.
    validate: { keyGeneratorIpFallback: false, xForwardedForHeader: false, trustProxy: false, ip: false },
    handler: (_req, _res, next) => {
      next(
        new HttpError(429, 'rate_limited', `Rate limit of ${perMinute} requests per minute exceeded`, {
          limitPerMinute: perMinute,
        }),
      );
    },
  });
}
