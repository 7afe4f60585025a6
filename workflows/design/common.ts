/**
 * Pieces shared by the v2 and v1 design graphs: activity proxies (with summaries that name the node, so the
 * Web UI history reads like the graph), tight JSON schemas for Ollama structured outputs and their validator,
 * the structured call (one repair request, then the caller's fallback), the plan's topological sort and a
 * deterministic HCL renderer. Pure workflow code: no I/O. Not a workflow (not in the barrel).
 */
import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  proxyActivities,
  type ActivityOptions,
} from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../../common/errors';
import type { LlmCallKind } from '../../common/llm-bounds';
import { llmQueue } from '../../common/task-queues';
import {
  addUsage,
  emptyUsage,
  type ChatMessage,
  type LlmFormat,
  type LlmOptions,
  type LlmResult,
  type LlmUsage,
} from '../../contracts/llm';
import type { LlmActivities } from '../../contracts/llm';
import type { TerraformActivities } from '../../activities/terraform';
import type { DesignActivities } from '../../activities/design';
import { AWS_RESOURCE_TYPES } from './catalog';
import { LLM_CALL, STORAGE } from '../policies';
import {
  DESIGN_FILE_NAMES,
  type GeneratedBlock,
  type GeneratedResource,
  type InfraDesignInput,
  type LlmPath,
  type PlannedResource,
} from '../../contracts/design';

export type { GeneratedBlock, GeneratedResource } from '../../contracts/design';

/**
 * Failure type of a design that has no usable plan: the model's plan stayed invalid after the repair request
 * and the request names nothing the keyword plan knows (or, before the patch, the plan was still invalid
 * after one retry).
 */
export const DESIGN_PLAN_INVALID = 'DesignPlanInvalid';

/**
 * Patch id of structured output with one repair request and deterministic fallbacks (and of the plan's
 * deterministic graph repair). Designs started before it replay the earlier node code (infra-design-legacy.ts).
 */
export const DESIGN_STRUCTURED_PATCH = 'design-structured-llm';

/** Validation may run `terraform init` + `validate`, which take tens of seconds; retried a few times only. */
export const TERRAFORM_VALIDATE: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES] },
};

export const DESIGN_DEFAULTS = {
  maxFixIterations: 2,
  maxQuestionRounds: 3,
  answerTimeout: '24 hours',
  followUpWindow: '1 hour',
  maxReviewRounds: 3,
  maxResources: 20,
} as const;

/** Attempts of a structured call: an InferenceTimeout (a loop the activity could not cut) is retried once. */
const STRUCTURED_ATTEMPTS = 2;
/** Longest part of a rejected reply shown back to the model in the repair request. */
const REPAIR_ECHO_CHARS = 600;

/** Accumulated LLM usage, kept in graph state through a summing reducer. */
export interface UsageTally {
  usage: LlmUsage;
  calls: number;
}
export const emptyTally = (): UsageTally => ({ usage: emptyUsage(), calls: 0 });
export const addTally = (a: UsageTally, b: UsageTally): UsageTally => ({
  usage: addUsage(a.usage, b.usage),
  calls: a.calls + b.calls,
});
/** Usage of one call; a call that gave no answer still counts as a call. */
export const tallyOf = (r: LlmResult | undefined): UsageTally => ({ usage: r?.usage ?? emptyUsage(), calls: 1 });

/** One structured call: its schema, and how a parsed reply becomes a value (or the error sent back once). */
export interface StructuredSpec<T> {
  node: string;
  what: string;
  kind: LlmCallKind;
  messages: ChatMessage[];
  schema: JsonSchema;
  accept: (parsed: unknown) => { value: T } | { error: string };
  /** A last look at a reply that is not JSON as a whole (e.g. complete items before a cut-off). */
  salvage?: (content: string) => unknown;
}

/** What a structured call gave: a value from the model (first reply or repair), or none: use the fallback. */
export interface StructuredOutcome<T> {
  value: T | undefined;
  path: LlmPath;
  tally: UsageTally;
  /** Why the first reply (and the repair) was rejected: for the notes. */
  problems: string[];
}

/** The activities a design graph calls, each with a summary `"<node>: <what>"` shown in the Web UI. */
export function designActivities(input: InfraDesignInput) {
  const llm = proxyActivities<LlmActivities>({ ...LLM_CALL, taskQueue: llmQueue(input.model) });
  const tf = proxyActivities<TerraformActivities>(TERRAFORM_VALIDATE);
  const store = proxyActivities<DesignActivities>(STORAGE);
  const options = input.llmOptions ?? {};
  const base: LlmOptions = { temperature: 0, repeat_penalty: 1.1, ...options };
  const call = (
    messages: ChatMessage[],
    format: LlmFormat | JsonSchema | undefined,
    kind: LlmCallKind,
    opts: LlmOptions,
    label: string,
    attempts: number,
  ) =>
    llm.llmChat.executeWithOptions({ summary: label, retry: { ...LLM_CALL.retry, maximumAttempts: attempts } }, [
      { model: input.model, messages, format: format as LlmFormat | undefined, options: opts, purpose: label, kind },
    ]);
  /** One call; a failure a new request cannot fix (or a cancel) is rethrown, any other is returned as text. */
  const attempt = async (...args: Parameters<typeof call>): Promise<LlmResult | { failed: string }> => {
    try {
      return await call(...args);
    } catch (err) {
      if (!degradable(err)) throw err;
      return { failed: failureMessage(err) };
    }
  };
  return {
    /**
     * Structured output that cannot loop: a tight schema as `format`, a bounded num_predict per `kind` (the
     * activity clamps it and cuts repetition), one retry of the call itself, then the reply is parsed and
     * validated. An invalid reply gets exactly one repair request (the error sent back); still invalid, or no
     * answer at all → `value` undefined and `path: 'fallback'`, and the node uses its deterministic fallback.
     */
    async structured<T>(spec: StructuredSpec<T>): Promise<StructuredOutcome<T>> {
      const summary = `${spec.node}: ${spec.what}`;
      let tally = emptyTally();
      const problems: string[] = [];
      const judge = (res: LlmResult): { value: T } | { error: string } => {
        const parsed = parseStructured(res.content, res.doneReason);
        if ('value' in parsed) return spec.accept(parsed.value);
        const salvaged = spec.salvage?.(res.content);
        if (salvaged !== undefined) {
          const out = spec.accept(salvaged);
          if ('value' in out) return out;
        }
        return parsed;
      };
      const first = await attempt(spec.messages, spec.schema, spec.kind, base, summary, STRUCTURED_ATTEMPTS);
      if ('failed' in first) {
        // No reply to repair: the call itself failed (after its retry).
        return {
          value: undefined,
          path: 'fallback',
          tally: addTally(tally, tallyOf(undefined)),
          problems: [first.failed],
        };
      }
      tally = addTally(tally, tallyOf(first));
      const judged = judge(first);
      if ('value' in judged) return { value: judged.value, path: 'model', tally, problems };
      problems.push(judged.error);
      const repair: ChatMessage[] = [
        ...spec.messages,
        { role: 'assistant', content: first.content.slice(0, REPAIR_ECHO_CHARS) },
        {
          role: 'user',
          content:
            `Your answer was rejected: ${judged.error}. ` +
            'Reply again with only the JSON object, following the schema exactly and keeping every text short.',
        },
      ];
      const second = await attempt(repair, spec.schema, spec.kind, base, `${summary} (repair)`, 1);
      if ('failed' in second) {
        problems.push(second.failed);
        return { value: undefined, path: 'fallback', tally: addTally(tally, tallyOf(undefined)), problems };
      }
      tally = addTally(tally, tallyOf(second));
      const rejudged = judge(second);
      if ('value' in rejudged) return { value: rejudged.value, path: 'repaired', tally, problems };
      problems.push(rejudged.error);
      return { value: undefined, path: 'fallback', tally, problems };
    },
    /**
     * The call of designs started before DESIGN_STRUCTURED_PATCH (kept so they replay): after two attempts it
     * is asked once more with another seed and some temperature; still failing → undefined.
     */
    async chat(
      node: string,
      what: string,
      messages: ChatMessage[],
      format?: LlmFormat | JsonSchema,
      kind: LlmCallKind = 'design.generate',
    ): Promise<LlmResult | undefined> {
      const summary = `${node}: ${what}`;
      try {
        return await call(messages, format, kind, base, summary, 2);
      } catch (err) {
        if (!degradable(err)) throw err;
      }
      try {
        const varied = { ...base, seed: (base.seed ?? 0) + 1, temperature: 0.7, repeat_penalty: 1.3 };
        return await call(messages, format, kind, varied, `${summary} (varied)`, 1);
      } catch (err) {
        if (!degradable(err)) throw err;
        return undefined;
      }
    },
    /** A free-text call (two attempts); undefined when it gave no answer, and the node falls back. */
    async text(node: string, what: string, messages: ChatMessage[], kind: LlmCallKind): Promise<LlmResult | undefined> {
      const res = await attempt(messages, undefined, kind, base, `${node}: ${what}`, STRUCTURED_ATTEMPTS);
      return 'failed' in res ? undefined : res;
    },
    combine: (snippets: string[], region?: string) =>
      tf.terraformCombine.executeWithOptions({ summary: 'combine: providers/main/variables/outputs' }, [
        { snippets, region },
      ]),
    validate: (node: string, files: Record<string, string>) =>
      tf.terraformValidate.executeWithOptions({ summary: `${node}: validate HCL` }, [{ files }]),
    storeFiles: (files: Record<string, string>) =>
      store.designStoreFiles.executeWithOptions({ summary: 'store: files to S3' }, [
        { designId: input.designId, files },
      ]),
  };
}

export type DesignActs = ReturnType<typeof designActivities>;

/** The message of a failed call, from the activity's own failure when there is one. */
function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  const type = cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ` : '';
  return `no answer (${type}${cause instanceof Error ? cause.message : String(cause)})`.slice(0, 300);
}

/** Failures another request may avoid (not a missing model, a rejected request, or a cancel of the design). */
function degradable(err: unknown): boolean {
  if (isCancellation(err)) return false;
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  return !(type && (NON_RETRYABLE_ERROR_TYPES as readonly string[]).includes(type));
}

/** Parses a structured-output reply; undefined when the model returned something else. */
export function parseJson<T>(content: string): T | undefined {
  try {
    return JSON.parse(content) as T;
  } catch {
    const m = /\{[\s\S]*\}/.exec(content);
    if (!m) return undefined;
    try {
      return JSON.parse(m[0]) as T;
    } catch {
      return undefined;
    }
  }
}

// ------------------------------------------------------------------------------------------------ schemas

/** The JSON Schema subset the design schemas use, which both Ollama's grammar and `validateJson` enforce. */
export interface JsonSchema {
  type?: 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';
  enum?: readonly unknown[];
  properties?: Record<string, JsonSchema>;
  required?: readonly string[];
  additionalProperties?: boolean | JsonSchema;
  maxProperties?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  anyOf?: JsonSchema[];
}

export const text = (maxLength: number): JsonSchema => ({ type: 'string', maxLength });

export const ROUTE_CATEGORIES = ['infrastructure', 'invalid', 'end'] as const;

// String bounds are sized so a whole answer fits the kind's default num_predict (common/llm-bounds.ts).
export const ROUTE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { category: { type: 'string', enum: ROUTE_CATEGORIES }, reply: text(160) },
  required: ['category', 'reply'],
  additionalProperties: false,
};

export const REQUIREMENT_KEYS = ['region', 'environment', 'scale', 'budget', 'dataStores'] as const;
/** Most clarifying questions per round. */
export const MAX_QUESTIONS = 3;

/**
 * The clarifying question for each requirement. A small model decides whether to ask; what it asks is one of
 * these, for the requirements still unknown (its own question text was often noise such as "20m").
 */
export const REQUIREMENT_QUESTIONS: Record<(typeof REQUIREMENT_KEYS)[number], string> = {
  region: 'Which AWS region should it run in (for example eu-west-1)?',
  environment: 'Is this for development, staging or production?',
  scale: 'How much traffic do you expect (requests per second or users)?',
  budget: 'Do you have a monthly budget in mind?',
  dataStores: 'Does it need a database or other data store, and which one?',
};
/** Patch id: infrastructure words in the request decide the route for `infrastructure` over the model. */
export const DESIGN_ROUTE_WORDS_PATCH = 'design-route-words';
/** Patch id: a model plan missing a resource type the request's words name is replaced by the keyword plan. */
export const DESIGN_PLAN_COVERAGE_PATCH = 'design-plan-coverage';
/** Patch id: questions from REQUIREMENT_QUESTIONS, requirements the user's words state take precedence. */
export const DESIGN_QUESTIONS_PATCH = 'design-question-templates';

export const GATHER_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    requirements: {
      type: 'object',
      properties: Object.fromEntries(REQUIREMENT_KEYS.map((k) => [k, text(40)])),
      additionalProperties: false,
    },
    questions: { type: 'array', items: text(80), maxItems: MAX_QUESTIONS },
  },
  required: ['requirements', 'questions'],
  additionalProperties: false,
};

/** Most resources in a plan (the keyword plan stops there too). */
export const MAX_PLAN_RESOURCES = 12;

/** A resource type: one the generator knows (the grammar lets the model write nothing else). */
export const AWS_TYPE_SCHEMA: JsonSchema = { type: 'string', enum: AWS_RESOURCE_TYPES };

export const PLAN_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    resources: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_PLAN_RESOURCES,
      items: {
        type: 'object',
        properties: {
          id: text(30),
          type: AWS_TYPE_SCHEMA,
          name: text(30),
          dependsOn: { type: 'array', items: text(30), maxItems: 8 },
          requirements: text(80),
        },
        required: ['id', 'type', 'name', 'dependsOn', 'requirements'],
        additionalProperties: false,
      },
    },
  },
  required: ['resources'],
  additionalProperties: false,
};

/** A Terraform argument value as the generator may write it: scalars and short lists, never free nesting. */
const ARGUMENT: JsonSchema = {
  anyOf: [text(200), { type: 'number' }, { type: 'boolean' }, { type: 'array', items: text(200), maxItems: 8 }],
};
const ARGUMENTS: JsonSchema = { type: 'object', additionalProperties: ARGUMENT, maxProperties: 16 };

/** The properties of a generated resource (shared with v1's engineer, which lists several). */
export const RESOURCE_PROPERTIES: Record<string, JsonSchema> = {
  attributes: ARGUMENTS,
  blocks: {
    type: 'array',
    maxItems: 6,
    items: {
      type: 'object',
      properties: { type: text(60), attributes: ARGUMENTS },
      required: ['type', 'attributes'],
      additionalProperties: false,
    },
  },
  outputs: {
    type: 'array',
    maxItems: 4,
    items: {
      type: 'object',
      properties: { name: text(60), value: text(200), description: text(200) },
      required: ['name', 'value'],
      additionalProperties: false,
    },
  },
};

/** One resource as the generator describes it; rendered to HCL by `renderResource` (always parseable). */
export const RESOURCE_SCHEMA: JsonSchema = {
  type: 'object',
  properties: RESOURCE_PROPERTIES,
  required: ['attributes'],
  additionalProperties: false,
};

/** Whole files back from the fix pass (their length is bounded by the call's num_predict). */
export const FIX_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    files: {
      type: 'array',
      maxItems: DESIGN_FILE_NAMES.length,
      items: {
        type: 'object',
        properties: { name: { type: 'string', enum: DESIGN_FILE_NAMES }, content: { type: 'string' } },
        required: ['name', 'content'],
        additionalProperties: false,
      },
    },
  },
  required: ['files'],
  additionalProperties: false,
};

const MAX_SCHEMA_ERRORS = 4;

function typeOk(v: unknown, type: NonNullable<JsonSchema['type']>): boolean {
  switch (type) {
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
  }
}

/**
 * Checks `value` against `schema` (the subset in `JsonSchema`); returns at most a few errors, each naming its
 * JSON path (`$.resources[0].type: ...`), short enough to send back to the model in a repair request.
 */
export function validateJson(value: unknown, schema: JsonSchema, path = '$'): string[] {
  const errors: string[] = [];
  const walk = (v: unknown, s: JsonSchema, at: string): void => {
    if (errors.length >= MAX_SCHEMA_ERRORS) return;
    if (s.anyOf) {
      if (!s.anyOf.some((alt) => validateJson(v, alt, at).length === 0))
        errors.push(`${at}: has a shape that is not allowed`);
      return;
    }
    if (s.type && !typeOk(v, s.type)) {
      errors.push(`${at}: must be ${s.type === 'array' || s.type === 'integer' ? 'an' : 'a'} ${s.type}`);
      return;
    }
    if (s.enum && !s.enum.includes(v)) {
      const allowed =
        s.enum.length <= 6 ? `one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}` : 'one of the allowed values';
      errors.push(`${at}: must be ${allowed} (got ${JSON.stringify(v)?.slice(0, 60)})`);
      return;
    }
    if (typeof v === 'string') {
      if (s.maxLength !== undefined && v.length > s.maxLength)
        errors.push(`${at}: longer than ${s.maxLength} characters`);
      if (s.minLength !== undefined && v.length < s.minLength)
        errors.push(`${at}: shorter than ${s.minLength} characters`);
    }
    if (Array.isArray(v)) {
      if (s.maxItems !== undefined && v.length > s.maxItems) errors.push(`${at}: more than ${s.maxItems} items`);
      if (s.minItems !== undefined && v.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
      if (s.items) v.forEach((item, i) => walk(item, s.items!, `${at}[${i}]`));
    }
    if (typeOk(v, 'object')) {
      const o = v as Record<string, unknown>;
      for (const key of s.required ?? []) if (!(key in o)) errors.push(`${at}: missing "${key}"`);
      const keys = Object.keys(o);
      if (s.maxProperties !== undefined && keys.length > s.maxProperties) {
        errors.push(`${at}: more than ${s.maxProperties} properties`);
      }
      for (const key of keys) {
        const child = `${at}.${key}`;
        const prop = s.properties?.[key];
        if (prop) walk(o[key], prop, child);
        else if (s.additionalProperties === false && s.properties) errors.push(`${at}: unexpected property "${key}"`);
        else if (typeof s.additionalProperties === 'object') walk(o[key], s.additionalProperties, child);
      }
    }
  };
  walk(value, schema, path);
  return errors.slice(0, MAX_SCHEMA_ERRORS);
}

/** Parses a structured reply: the JSON value, or an error that says what was wrong (sent back to repair). */
export function parseStructured(content: string, doneReason?: string): { value: unknown } | { error: string } {
  const cut = doneReason === 'length' || doneReason === 'repetition' ? `; the reply was cut off (${doneReason})` : '';
  if (!content.trim()) return { error: `the reply was empty${cut}` };
  try {
    return { value: JSON.parse(content) as unknown };
  } catch (err) {
    const m = /\{[\s\S]*\}/.exec(content);
    if (m) {
      try {
        return { value: JSON.parse(m[0]) as unknown };
      } catch {
        // fall through to the first error
      }
    }
    return { error: `not valid JSON (${err instanceof Error ? err.message.slice(0, 120) : 'parse error'})${cut}` };
  }
}

/** `accept` for a schema with no further checks. */
export function bySchema<T>(schema: JsonSchema): (parsed: unknown) => { value: T } | { error: string } {
  return (parsed) => {
    const errors = validateJson(parsed, schema);
    return errors.length ? { error: errors.join('; ') } : { value: parsed as T };
  };
}

// ------------------------------------------------------------------------------------------------ plan

const PROVIDER_PREFIX = /^(aws|google|azurerm|random|tls|null|local|archive|kubernetes|helm|cloudflare)_/;

/** `S3 Bucket` / `s3-bucket` → `aws_s3_bucket`: small models rarely write the exact Terraform type. */
export function normalizeType(type: string): string {
  const t = type
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!t) return '';
  return PROVIDER_PREFIX.test(t) ? t : `aws_${t}`;
}

/**
 * Complete resource objects out of a reply that is not valid JSON as a whole (a small model that repeats
 * itself until `num_predict` cuts it off): every flat `{...}` with an id or a type.
 */
export function salvageResources(content: string): { resources: unknown[] } {
  const resources: unknown[] = [];
  for (const m of content.matchAll(/\{[^{}]*\}/g)) {
    try {
      const o = JSON.parse(m[0]) as Record<string, unknown>;
      if (o && (o.id !== undefined || o.type !== undefined)) resources.push(o);
    } catch {
      // an incomplete object at the cut-off point
    }
  }
  return { resources };
}

/**
 * Normalises the model's plan, repairing slips that need no second opinion (types spelled loosely, repeated
 * items, a resource listing itself, clashing names) and reporting what does: no resources, or no type.
 * Unknown dependencies and cycles are left to `planLevels`, whose error goes back to the model.
 */
export function normalizePlan(raw: unknown): { resources: PlannedResource[] } | { error: string } {
  const list = (raw as { resources?: unknown })?.resources;
  if (!Array.isArray(list) || list.length === 0) return { error: 'the plan has no resources' };
  const resources: PlannedResource[] = [];
  const ids = new Set<string>();
  const names = new Set<string>();
  for (const r of list as Record<string, unknown>[]) {
    if (!r || typeof r !== 'object') continue;
    const type = normalizeType(String(r.type ?? ''));
    const id = String(r.id ?? '').trim() || type;
    if (!type) return { error: `resource "${id}" has no type` };
    if (ids.has(id)) continue; // repeated item
    ids.add(id);
    let name = hclName(String(r.name ?? id));
    for (let i = 2; names.has(`${type}.${name}`); i++) name = `${hclName(String(r.name ?? id))}_${i}`;
    names.add(`${type}.${name}`);
    resources.push({
      id,
      type,
      name,
      dependsOn: Array.isArray(r.dependsOn) ? [...new Set(r.dependsOn.map(String))].filter((d) => d !== id) : [],
      requirements: String(r.requirements ?? ''),
    });
    if (resources.length >= DESIGN_DEFAULTS.maxResources) break;
  }
  if (resources.length === 0) return { error: 'the plan has no resources' };
  // A dependency named by the resource's type, name or `type.name` instead of its id is a slip: when it
  // points at exactly one resource, use that id (dropping it when it is the resource itself).
  const idOf = (ref: string): string | undefined => {
    if (ids.has(ref)) return ref;
    const t = normalizeType(ref);
    const matches = resources.filter(
      (r) => r.type === t || r.name === hclName(ref) || `${r.type}.${r.name}` === ref.trim(),
    );
    return matches.length === 1 ? matches[0]!.id : undefined;
  };
  for (const r of resources) {
    r.dependsOn = [...new Set(r.dependsOn.map((d) => idOf(d) ?? d))].filter((d) => d !== r.id);
  }
  return { resources };
}

/**
 * `accept` of the plan: types coerced to Terraform spelling, then the schema (known types only, bounded sizes),
 * then `normalizePlan`. Unknown dependencies and cycles pass: `repairPlanGraph` removes them deterministically.
 */
export function acceptPlan(parsed: unknown): { value: PlannedResource[] } | { error: string } {
  const list = (parsed as { resources?: unknown } | null)?.resources;
  const coerced = Array.isArray(list)
    ? {
        ...(parsed as object),
        resources: list.map((r: unknown) =>
          r && typeof r === 'object' && typeof (r as { type?: unknown }).type === 'string'
            ? { ...r, type: normalizeType((r as { type: string }).type) }
            : r,
        ),
      }
    : parsed;
  const errors = validateJson(coerced, PLAN_SCHEMA);
  if (errors.length) return { error: errors.join('; ') };
  const norm = normalizePlan(coerced);
  return 'error' in norm ? norm : { value: norm.resources };
}

/** `salvage` of the plan: the complete resource objects of a cut-off reply, when there are any. */
export function salvagePlan(content: string): unknown {
  const salvaged = salvageResources(content);
  return salvaged.resources.length ? salvaged : undefined;
}

/**
 * Levels by topological sort (Kahn): level 0 has no dependencies, level k depends only on earlier levels.
 * An unknown dependency or a cycle is an error the model gets back once.
 */
export function planLevels(resources: PlannedResource[]): { levels: string[][] } | { error: string } {
  const ids = new Set(resources.map((r) => r.id));
  for (const r of resources) {
    for (const d of r.dependsOn) {
      if (!ids.has(d)) return { error: `resource "${r.id}" depends on unknown resource "${d}"` };
      if (d === r.id) return { error: `resource "${r.id}" depends on itself` };
    }
  }
  const levels: string[][] = [];
  const placed = new Set<string>();
  while (placed.size < resources.length) {
    const level = resources
      .filter((r) => !placed.has(r.id) && r.dependsOn.every((d) => placed.has(d)))
      .map((r) => r.id);
    if (level.length === 0) {
      const stuck = resources.filter((r) => !placed.has(r.id)).map((r) => r.id);
      return { error: `dependency cycle among: ${stuck.join(', ')}` };
    }
    for (const id of level) placed.add(id);
    levels.push(level);
  }
  return { levels };
}

// ------------------------------------------------------------------------------------------------ HCL

/** A valid HCL identifier from any name. */
export function hclName(s: string): string {
  const id = s
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[a-z_]/.test(id) ? id : `r_${id || 'resource'}`;
}

const INDEX = String.raw`(\[(\d+|"[\w-]*"|\*)\])`;
/** A bare Terraform reference (`aws_s3_bucket.main.id`, `var.region`, `data.aws_ami.x.id`, `x.y[0].z`). */
const REFERENCE = new RegExp(
  String.raw`^((var|local|module|data)\.[\w-]+|[a-z][a-z0-9]*_[a-z0-9_]+\.[\w-]+)(\.[\w-]+|${INDEX})*$`,
);

/** Entries with unique keys after `toKey` (HCL rejects a repeated attribute): the first one wins. */
function uniqueEntries(obj: Record<string, unknown>, toKey: (k: string) => string): [string, unknown][] {
  const seen = new Set<string>();
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj ?? {})) {
    const key = toKey(k);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push([key, v]);
  }
  return out;
}

function renderValue(v: unknown, indent: string): string {
  if (typeof v === 'string') {
    if (REFERENCE.test(v.trim())) return v.trim();
    return JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map((x) => renderValue(x, indent)).join(', ')}]`;
  const inner = `${indent}  `;
  const lines = uniqueEntries(v as Record<string, unknown>, (k) =>
    /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k),
  ).map(([k, x]) => `${inner}${k} = ${renderValue(x, inner)}`);
  return lines.length ? `{\n${lines.join('\n')}\n${indent}}` : '{}';
}

function renderBody(attrs: Record<string, unknown>, indent: string): string[] {
  // Nested objects stay attribute maps here; the generator lists real nested blocks under `blocks`.
  return uniqueEntries(attrs, hclName)
    .filter(([k]) => k !== 'depends_on')
    .map(([k, v]) => `${indent}${k} = ${renderValue(v, indent)}`);
}

function renderBlock(b: GeneratedBlock, indent: string, depth: number): string[] {
  if (!b || typeof b.type !== 'string') return [];
  const inner = `${indent}  `;
  const nested = depth < 4 ? (b.blocks ?? []).flatMap((x) => renderBlock(x, inner, depth + 1)) : [];
  return [`${indent}${hclName(b.type)} {`, ...renderBody(b.attributes ?? {}, inner), ...nested, `${indent}}`];
}

/** Renders a planned resource and the generator's description of it as HCL (syntax always valid). */
export function renderResource(r: PlannedResource, gen: GeneratedResource, all: PlannedResource[]): string {
  const lines = [`resource "${r.type}" "${r.name}" {`, ...renderBody(gen.attributes ?? {}, '  ')];
  for (const b of gen.blocks ?? []) {
    const rendered = renderBlock(b, '  ', 0);
    if (rendered.length) lines.push('', ...rendered);
  }
  const deps = r.dependsOn.map((d) => all.find((x) => x.id === d)).filter((x): x is PlannedResource => Boolean(x));
  if (deps.length) lines.push('', `  depends_on = [${deps.map((d) => `${d.type}.${d.name}`).join(', ')}]`);
  lines.push('}');
  for (const o of gen.outputs ?? []) {
    if (!o?.name || !o.value) continue;
    lines.push(
      '',
      `output "${hclName(`${r.name}_${o.name}`)}" {`,
      `  value = ${renderValue(o.value, '  ')}`,
      ...(o.description ? [`  description = ${JSON.stringify(o.description)}`] : []),
      '}',
    );
  }
  for (const block of gen.extra ?? []) lines.push('', block);
  return lines.join('\n');
}

/** Transcript line for the prompts. */
export function questionsText(questions: { id: string; text: string }[]): string {
  return questions.map((q, i) => `${i + 1}. [${q.id}] ${q.text}`).join('\n');
}
