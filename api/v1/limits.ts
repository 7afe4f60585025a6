/**
 * Limits like an LLM gateway's, per API key: requests a minute, tokens a minute and tokens a UTC day. Minutes
 * are fixed windows in memory (one API process per deployment, as the other rate limit); the day's count is
 * persisted (lib/usage/budget.ts) and read once per key and day. A request is admitted while the key is under
 * each limit; its tokens are charged when the model has answered.
 */
import type { Logger } from '../../common/logger';
import { HttpError } from '../../common/errors';
import type { Storage } from '../../lib/storage/clients';
import { addDailyTokens, readDailyTokens, utcDay } from '../../lib/usage/budget';

export interface KeyLimitsOptions {
  requestsPerMinute: number;
  /** 0: no limit. */
  tokensPerMinute: number;
  /** 0: no budget. */
  dailyTokenBudget: number;
  storage: Storage;
  logger?: Logger;
}

interface Window {
  minute: number;
  requests: number;
  tokens: number;
}

export class KeyLimits {
  private readonly windows = new Map<string, Window>();
  private readonly days = new Map<string, { day: string; tokens: Promise<number> }>();

  constructor(private readonly opts: KeyLimitsOptions) {}

  /** Throws a 429 when the key is over a limit; otherwise counts the request. */
  async admit(keyId: string, now = Date.now()): Promise<void> {
    const w = this.window(keyId, now);
    const retryAfter = String(Math.max(1, Math.ceil((60_000 - (now % 60_000)) / 1000)));
    const perMinute = (limit: 'requests_per_minute' | 'tokens_per_minute', value: number, what: string) =>
      new HttpError(
        429,
        'rate_limit_exceeded',
        `Rate limit reached: ${value} ${what} per minute for this API key`,
        { limit, value },
        { 'Retry-After': retryAfter },
      );
    if (w.requests >= this.opts.requestsPerMinute) {
      throw perMinute('requests_per_minute', this.opts.requestsPerMinute, 'requests');
    }
    if (this.opts.tokensPerMinute > 0 && w.tokens >= this.opts.tokensPerMinute) {
      throw perMinute('tokens_per_minute', this.opts.tokensPerMinute, 'tokens');
    }
    if (this.opts.dailyTokenBudget > 0) {
      const used = await this.day(keyId, now).tokens;
      if (used >= this.opts.dailyTokenBudget) {
        const nextDay = Date.UTC(
          new Date(now).getUTCFullYear(),
          new Date(now).getUTCMonth(),
          new Date(now).getUTCDate() + 1,
        );
        throw new HttpError(
          429,
          'insufficient_quota',
          `Daily token budget of ${this.opts.dailyTokenBudget} tokens for this API key is used up (${used} used today, UTC)`,
          { limit: 'daily_token_budget', value: this.opts.dailyTokenBudget, used },
          { 'Retry-After': String(Math.ceil((nextDay - now) / 1000)) },
        );
      }
    }
    w.requests++;
  }

  /** Charges a finished call's tokens to the minute and the day. Never throws: metering is already durable. */
  charge(keyId: string, tokens: number, now = Date.now()): void {
    if (tokens <= 0) return;
    this.window(keyId, now).tokens += tokens;
    if (this.opts.dailyTokenBudget <= 0) return;
    const d = this.day(keyId, now);
    d.tokens = d.tokens.then(async (before) => {
      try {
        return await addDailyTokens(this.opts.storage, keyId, d.day, tokens);
      } catch (err) {
        this.opts.logger?.warn({ err, keyId }, 'could not persist the daily token count');
        return before + tokens;
      }
    });
  }

  private window(keyId: string, now: number): Window {
    const minute = Math.floor(now / 60_000);
    let w = this.windows.get(keyId);
    if (!w || w.minute !== minute) {
      w = { minute, requests: 0, tokens: 0 };
      this.windows.set(keyId, w);
    }
    return w;
  }

  private day(keyId: string, now: number): { day: string; tokens: Promise<number> } {
    const day = utcDay(now);
    let d = this.days.get(keyId);
    if (!d || d.day !== day) {
      const read = readDailyTokens(this.opts.storage, keyId, day).catch((err: unknown) => {
        this.opts.logger?.warn({ err, keyId }, 'could not read the daily token count; counting from 0');
        return 0;
      });
      d = { day, tokens: read };
      this.days.set(keyId, d);
    }
    return d;
  }
}
