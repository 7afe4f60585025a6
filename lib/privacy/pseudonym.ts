/**
 * Pseudonymous user ids (issue 12): what logs, workflow ids and the Web UI show instead of the id a client sent.
 * A keyed hash (HMAC-SHA-256 with USER_PSEUDONYM_SECRET), so the same user always maps to the same pseudonym (logs
 * and runs stay joinable) while nobody without the secret can confirm a guess. Prompts never carry the user id at
 * all (lib/recommend/prompt builds them from the analysis only).
 */
import { createHmac } from 'node:crypto';

/** `u_` + 20 hex characters (80 bits): stable per deployment secret, no collisions in practice. */
export function pseudonymizeUserId(secret: string, userId: string): string {
  return `u_${createHmac('sha256', secret).update(userId).digest('hex').slice(0, 20)}`;
}

/**
 * A request path with the user id in `/users/:userId/...` replaced by its pseudonym (request logs). Any other path
 * is returned as it is.
 */
export function pseudonymizeUserPath(secret: string, url: string): string {
  return url.replace(/^(\/users\/)([^/?#]+)/, (_m, prefix: string, id: string) => {
    let decoded = id;
    try {
      decoded = decodeURIComponent(id);
    } catch {
      // keep the raw segment
    }
    return prefix + pseudonymizeUserId(secret, decoded);
  });
}
