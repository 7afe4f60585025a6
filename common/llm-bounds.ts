/**
 * Bounded generation: every LLM call has a kind, and every kind a default and a maximum `num_predict`.
 * A caller may ask for less than the maximum, never more; a call that names no bound gets the default.
 * The llm activity applies the bound on the worker (so no workflow or script can get past it) and the API
 * rejects a request above the maximum with a 400 naming the field. Workflow-safe: no I/O, no process.env.
 */

/** What a call is for; decides its `num_predict` bound. */
export type LlmCallKind =
  | 'prompt'
  | 'job'
  | 'chat.route'
  | 'chat.agent'
  | 'design.route'
  | 'design.gather'
  | 'design.plan'
  | 'design.generate'
  | 'design.fix';

export const LLM_CALL_KINDS: readonly LlmCallKind[] = [
  'prompt',
  'job',
  'chat.route',
  'chat.agent',
  'design.route',
  'design.gather',
  'design.plan',
  'design.generate',
  'design.fix',
];

export interface NumPredictBound {
  /** Used when the caller names no `num_predict` (or an unbounded one: -1, -2, 0). */
  default: number;
  /** The most a caller may ask for. */
  max: number;
}

export type NumPredictTable = Record<LlmCallKind, NumPredictBound>;

/**
 * Defaults sized for small models on CPU (tens of tokens/s): a free-text answer in a few seconds, structured
 * outputs just large enough for their schema. Override with LLM_NUM_PREDICT (`kind=default/max,...`).
 */
export const DEFAULT_NUM_PREDICT: NumPredictTable = {
  prompt: { default: 256, max: 2048 },
  job: { default: 256, max: 2048 },
  'chat.route': { default: 64, max: 128 },
  'chat.agent': { default: 160, max: 400 },
  'design.route': { default: 64, max: 128 },
  'design.gather': { default: 160, max: 400 },
  'design.plan': { default: 400, max: 1024 },
  'design.generate': { default: 256, max: 768 },
  'design.fix': { default: 400, max: 1024 },
};

export function isLlmCallKind(s: string): s is LlmCallKind {
  return (LLM_CALL_KINDS as readonly string[]).includes(s);
}

/**
 * Parses `kind=default/max,...` over the defaults. Returns the table, or the problems (for the config schema's
 * error message).
 */
export function parseNumPredictTable(spec: string): { table: NumPredictTable } | { problems: string[] } {
  const table: NumPredictTable = { ...DEFAULT_NUM_PREDICT };
  const problems: string[] = [];
  for (const part of spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([\w.]+)=(\d+)\/(\d+)$/.exec(part);
    if (!m) {
      problems.push(`"${part}" is not kind=default/max`);
      continue;
    }
    const [, kind, def, max] = m as unknown as [string, string, string, string];
    if (!isLlmCallKind(kind)) {
      problems.push(`"${kind}" is not a call kind (${LLM_CALL_KINDS.join(', ')})`);
      continue;
    }
    const bound = { default: Number(def), max: Number(max) };
    if (bound.default < 1 || bound.max < bound.default) {
      problems.push(`"${part}": need 1 ≤ default ≤ max`);
      continue;
    }
    table[kind] = bound;
  }
  return problems.length ? { problems } : { table };
}

/**
 * The `num_predict` a call runs with: the caller's value when it is a positive number within the maximum,
 * the maximum when it is above, the default when it is missing or unbounded (≤ 0: Ollama's -1 / -2 mean
 * "until the context is full").
 */
export function boundNumPredict(
  kind: LlmCallKind | undefined,
  requested: number | undefined,
  table: NumPredictTable = DEFAULT_NUM_PREDICT,
): number {
  const bound = table[kind ?? 'prompt'];
  if (requested === undefined || !Number.isFinite(requested) || requested <= 0) return bound.default;
  return Math.min(Math.floor(requested), bound.max);
}

/** Why a requested `num_predict` is refused (for a 400), or undefined when it is within bounds. */
export function numPredictProblem(
  kind: LlmCallKind,
  requested: number | undefined,
  table: NumPredictTable = DEFAULT_NUM_PREDICT,
): string | undefined {
  if (requested === undefined) return undefined;
  const { max } = table[kind];
  if (!Number.isInteger(requested) || requested < 1)
    return `must be an integer from 1 to ${max} (unbounded generation is not allowed)`;
  if (requested > max) return `must be at most ${max} for ${kind} calls (LLM_NUM_PREDICT)`;
  return undefined;
}

/**
 * Why a generation stopped, as results report it: Ollama's own `stop` (end of answer) and `length`
 * (num_predict reached), or ours: `repetition` (a loop was cut off), `invalid_json` (structured output that did
 * not parse after a repair attempt; a fallback was used).
 */
export type DoneReason = 'stop' | 'length' | 'repetition' | 'load' | 'unload' | string;
