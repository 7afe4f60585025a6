/**
 * Pieces shared by the v2 and v1 design graphs: activity proxies (with summaries that name the node, so the
 * Web UI history reads like the graph), JSON schemas for Ollama structured outputs, the plan's topological
 * sort and a deterministic HCL renderer. Pure workflow code: no I/O. Not a workflow (not in the barrel).
 */
import { ActivityFailure, ApplicationFailure, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../common/errors';
import { llmQueue } from '../common/task-queues';
import {
  addUsage,
  emptyUsage,
  type ChatMessage,
  type LlmFormat,
  type LlmOptions,
  type LlmResult,
  type LlmUsage,
} from '../common/types';
import type { LlmActivities } from '../activities/llm/types';
import type { TerraformActivities } from '../activities/terraform';
import type { DesignActivities } from '../activities/design';
import { LLM_CALL, STORAGE } from './policies';
import type { InfraDesignInput, PlannedResource } from './infra-design-types';

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

/** The activities a design graph calls, each with a summary `"<node>: <what>"` shown in the Web UI. */
export function designActivities(input: InfraDesignInput) {
  const llm = proxyActivities<LlmActivities>({ ...LLM_CALL, taskQueue: llmQueue(input.model) });
  const tf = proxyActivities<TerraformActivities>(TERRAFORM_VALIDATE);
  const store = proxyActivities<DesignActivities>(STORAGE);
  const options = input.llmOptions ?? {};
  return {
    /**
     * One structured call. A small model can loop (e.g. digits forever) until Ollama drops the stream; the
     * same request retried gives the same loop, so after two attempts it is asked once more with another
     * seed and some temperature. Still failing → undefined, and the node degrades (see each node); a
     * ModelNotFound or InvalidRequest is rethrown: no variation fixes those.
     */
    async chat(
      node: string,
      what: string,
      messages: ChatMessage[],
      format?: LlmFormat,
    ): Promise<LlmResult | undefined> {
      const summary = `${node}: ${what}`;
      const base = { temperature: 0, repeat_penalty: 1.1, ...options };
      const call = (opts: LlmOptions, label: string, attempts: number) =>
        llm.llmChat.executeWithOptions({ summary: label, retry: { ...LLM_CALL.retry, maximumAttempts: attempts } }, [
          { model: input.model, messages, format, options: opts, purpose: label },
        ]);
      try {
        return await call(base, summary, 2);
      } catch (err) {
        if (!degradable(err)) throw err;
      }
      try {
        const varied = { ...base, seed: (base.seed ?? 0) + 1, temperature: 0.7, repeat_penalty: 1.3 };
        return await call(varied, `${summary} (varied)`, 1);
      } catch (err) {
        if (!degradable(err)) throw err;
        return undefined;
      }
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

/** Failures a different sampling may avoid (not a missing model or a rejected request). */
function degradable(err: unknown): boolean {
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

export const ROUTE_SCHEMA = {
  type: 'object',
  properties: {
    category: { type: 'string', enum: ['infrastructure', 'invalid', 'end'] },
    reply: { type: 'string' },
  },
  required: ['category', 'reply'],
};

export const REQUIREMENT_KEYS = ['region', 'environment', 'scale', 'budget', 'dataStores'] as const;

export const GATHER_SCHEMA = {
  type: 'object',
  properties: {
    requirements: {
      type: 'object',
      properties: Object.fromEntries(REQUIREMENT_KEYS.map((k) => [k, { type: 'string' }])),
    },
    questions: { type: 'array', items: { type: 'string' }, maxItems: 5 },
  },
  required: ['requirements', 'questions'],
};

export const PLAN_SCHEMA = {
  type: 'object',
  properties: {
    resources: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          type: { type: 'string' },
          name: { type: 'string' },
          dependsOn: { type: 'array', items: { type: 'string' } },
          requirements: { type: 'string' },
        },
        required: ['id', 'type', 'name', 'dependsOn', 'requirements'],
      },
    },
  },
  required: ['resources'],
};

/** One resource as the generator describes it; rendered to HCL by `renderResource` (always parseable). */
export const RESOURCE_SCHEMA = {
  type: 'object',
  properties: {
    attributes: { type: 'object' },
    blocks: {
      type: 'array',
      items: {
        type: 'object',
        properties: { type: { type: 'string' }, attributes: { type: 'object' } },
        required: ['type', 'attributes'],
      },
    },
    outputs: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, value: { type: 'string' }, description: { type: 'string' } },
        required: ['name', 'value'],
      },
    },
  },
  required: ['attributes'],
};

export const FIX_SCHEMA = {
  type: 'object',
  properties: {
    files: {
      type: 'array',
      items: {
        type: 'object',
        properties: { name: { type: 'string' }, content: { type: 'string' } },
        required: ['name', 'content'],
      },
    },
  },
  required: ['files'],
};

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

export interface GeneratedResource {
  attributes?: Record<string, unknown>;
  blocks?: { type: string; attributes: Record<string, unknown> }[];
  outputs?: { name: string; value: string; description?: string }[];
}

/** Renders a planned resource and the generator's description of it as HCL (syntax always valid). */
export function renderResource(r: PlannedResource, gen: GeneratedResource, all: PlannedResource[]): string {
  const lines = [`resource "${r.type}" "${r.name}" {`, ...renderBody(gen.attributes ?? {}, '  ')];
  for (const b of gen.blocks ?? []) {
    if (!b || typeof b.type !== 'string') continue;
    lines.push('', `  ${hclName(b.type)} {`, ...renderBody(b.attributes ?? {}, '    '), '  }');
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
  return lines.join('\n');
}

/** Transcript line for the prompts. */
export function questionsText(questions: { id: string; text: string }[]): string {
  return questions.map((q, i) => `${i + 1}. [${q.id}] ${q.text}`).join('\n');
}
