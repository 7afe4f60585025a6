/** Accepts a caller's `X-Request-Id` (if sane) or generates one, and echoes it on the response. */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

const SANE_ID = /^[\w.:-]{1,128}$/;

/** Sets `req.id` (also used by pino-http for log correlation) and the `X-Request-Id` response header. */
export const requestId: RequestHandler = (req, res, next) => {
  const given = req.get('x-request-id');
  const id = given && SANE_ID.test(given) ? given : randomUUID();
  req.id = id;
  res.setHeader('X-Request-Id', id);
  next();
};
