/**
 * What bounds one job's LLM calls (weakness 4 and 5 of the sandbox issue), as pure workflow-safe helpers:
 * how big a call's request may be, how much history a job's calls may write, how many tokens a call reserves
 * against the job's cap before it runs, and how many tokens a failed or cancelled call still produced.
 */
import { ActivityFailure, ApplicationFailure, CancelledFailure, TimeoutFailure } from '@temporalio/workflow';
import type { LlmCallRequest } from '../contracts/jobs';

/** Marks runs that bound their calls (validator refusals, reservations, cancel at container end, failed-call billing). */
export const JOB_CALL_BOUNDS_PATCH = 'job-call-bounds';

/**
 * The largest request one call may carry (its JSON, UTF-8). A small model's context holds a few thousand tokens
 * (~4 bytes each), so a larger prompt would only be truncated by Ollama; it would still be written to history twice.
 */
export const MAX_CALL_REQUEST_BYTES = 64 * 1024;

/**
 * What a job's calls may write to its history (requests and replies, each counted twice: the Update and the
 * activity carry the same data). Temporal terminates a run past 50 MiB; this keeps every job far below it.
 */
export const JOB_HISTORY_BUDGET_BYTES = 8 * 1024 * 1024;

/** Calls of one job that run at once; more wait in the workflow (FIFO), holding no model slot. */
export const DEFAULT_JOB_CALLS_IN_FLIGHT = 4;

/** UTF-8 length of a string, without TextEncoder (deterministic, and available in every sandbox). */
export function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** The request's size as it travels (its JSON). */
export function requestBytes(req: LlmCallRequest): number {
  return utf8Bytes(JSON.stringify(req));
}

/**
 * Prompt tokens a call is expected to use, before Ollama counts them: ~4 bytes of text per token. Used for the
 * reservation against the job's token cap, and to bill the prompt of a call cut short before Ollama's counts.
 */
export function promptTokenEstimate(req: LlmCallRequest): number {
  let bytes = utf8Bytes(req.prompt ?? '') + utf8Bytes(req.system ?? '');
  for (const m of req.messages ?? []) bytes += utf8Bytes(m.content);
  return Math.ceil(bytes / 4);
}

function chunksIn(details: unknown): number | undefined {
  // Failure details are a list; a timeout's last heartbeat details are the one value the activity sent.
  const first = (Array.isArray(details) ? details[0] : details) as { chunks?: unknown } | undefined;
  return typeof first?.chunks === 'number' && first.chunks >= 0 ? first.chunks : undefined;
}

/**
 * Completion tokens Ollama produced before a call failed or was cancelled (one streamed chunk is one token): the
 * llm activity puts its progress in the failure's details (timeout, failure after output, cancel) and in its
 * heartbeats (a node that died mid-call). 0 when nothing says.
 */
export function producedTokens(err: unknown): number {
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    let found: number | undefined;
    if (e instanceof ApplicationFailure || e instanceof CancelledFailure) found = chunksIn(e.details);
    else if (e instanceof TimeoutFailure) found = chunksIn(e.lastHeartbeatDetails);
    if (found !== undefined) return found;
    e = e instanceof ActivityFailure || e instanceof Error ? (e as Error).cause : undefined;
  }
  return 0;
}
