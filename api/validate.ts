/** zod at the edge: every body, query and param is parsed here, and a failure is a 400 naming the field. */
import type { ZodType } from 'zod';
import { HttpError } from '../common/errors';

export type Where = 'body' | 'query' | 'params' | 'headers';

export function parse<T>(schema: ZodType<T>, value: unknown, where: Where): T {
  const res = schema.safeParse(value);
  if (res.success) return res.data;
  const issues = res.error.issues.map((i) => ({
    // An unknown key is named itself (`query.wait`), not only the object holding it.
    field: [where, ...i.path.map(String), ...(i.code === 'unrecognized_keys' ? i.keys.slice(0, 1) : [])].join('.'),
    reason: i.message,
  }));
  const first = issues[0]!;
  throw new HttpError(400, 'invalid_request', `${first.field}: ${first.reason}`, { issues });
}
