/**
 * Pieces shared by the v2 and v1 design graphs: activity proxies (with summaries that name the node, so the
 * Web UI history reads like the graph), JSON schemas for Ollama structured outputs, the plan's topological
 * sort and a deterministic HCL renderer. Pure workflow code: no I/O. Not a workflow (not in the barrel).
 */
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../common/errors';
import { llmQueue } from '../common/task-queues';
import { addUsage, emptyUsage, type ChatMessage, type LlmFormat, type LlmResult, type LlmUsage } from '../common/types';
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
export const tallyOf = (r: LlmResult): UsageTally => ({ usage: r.usage, calls: 1 });

/** The activities a design graph calls, each with a summary `"<node>: <what>"` shown in the Web UI. */
export function designActivities(input: InfraDesignInput) {
  const llm = proxyActivities<LlmActivities>({ ...LLM_CALL, taskQueue: llmQueue(input.model) });
  const tf = proxyActivities<TerraformActivities>(TERRAFORM_VALIDATE);
  const store = proxyActivities<DesignActivities>(STORAGE);
  const options = input.llmOptions ?? {};
  return {
    async chat(node: string, what: string, messages: ChatMessage[], format?: LlmFormat): Promise<LlmResult> {
      const summary = `${node}: ${what}`;
      return llm.llmChat.executeWithOptions({ summary }, [
        { model: input.model, messages, format, options: { temperature: 0, ...options }, purpose: summary },
      ]);
    },
    combine: (snippets: string[], region?: string) =>
      tf.terraformCombine.executeWithOptions({ summary: 'combine: providers/main/variables/outputs' }, [{ snippets, region }]),
    validate: (node: string, files: Record<string, string>) =>
      tf.terraformValidate.executeWithOptions({ summary: `${node}: validate HCL` }, [{ files }]),
    storeFiles: (files: Record<string, string>) =>
      store.designStoreFiles.executeWithOptions({ summary: 'store: files to S3' }, [{ designId: input.designId, files }]),
  };
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

/** Normalises the model's plan: identifiers safe for HCL, duplicates and self-dependencies reported. */
export function normalizePlan(raw: unknown): { resources: PlannedResource[] } | { error: string } {
  const list = (raw as { resources?: unknown })?.resources;
  if (!Array.isArray(list) || list.length === 0) return { error: 'the plan has no resources' };
  if (list.length > DESIGN_DEFAULTS.maxResources) {
    return { error: `the plan has ${list.length} resources; at most ${DESIGN_DEFAULTS.maxResources} are allowed` };
  }
  const resources: PlannedResource[] = [];
  const ids = new Set<string>();
  for (const r of list as Record<string, unknown>[]) {
    const id = String(r.id ?? '').trim();
    const type = String(r.type ?? '').trim();
    if (!id) return { error: 'a resource has no id' };
    if (ids.has(id)) return { error: `resource id "${id}" appears twice` };
    if (!/^[a-z][a-z0-9]*_[a-z0-9_]+$/.test(type)) return { error: `resource "${id}" has an invalid type "${type}"` };
    ids.add(id);
    resources.push({
      id,
      type,
      name: hclName(String(r.name ?? id)),
      dependsOn: Array.isArray(r.dependsOn) ? r.dependsOn.map(String) : [],
      requirements: String(r.requirements ?? ''),
    });
  }
  const names = new Set<string>();
  for (const r of resources) {
    const addr = `${r.type}.${r.name}`;
    if (names.has(addr)) return { error: `two resources are both named ${addr}` };
    names.add(addr);
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
    const level = resources.filter((r) => !placed.has(r.id) && r.dependsOn.every((d) => placed.has(d))).map((r) => r.id);
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

const REFERENCE =
  /^(var|local|module|data)\.[\w-]+(\.[\w-]+)*(\[[^\]]*\])?(\.[\w-]+)*$|^[a-z][a-z0-9]*_[a-z0-9_]+\.[\w-]+(\.[\w-]+|\[[^\]]*\])*$/;

function renderValue(v: unknown, indent: string): string {
  if (typeof v === 'string') {
    if (REFERENCE.test(v.trim())) return v.trim();
    return JSON.stringify(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map((x) => renderValue(x, indent)).join(', ')}]`;
  const inner = `${indent}  `;
  const lines = Object.entries(v as Record<string, unknown>).map(
    ([k, x]) => `${inner}${/^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k)} = ${renderValue(x, inner)}`,
  );
  return lines.length ? `{\n${lines.join('\n')}\n${indent}}` : '{}';
}

function renderBody(attrs: Record<string, unknown>, indent: string): string[] {
  return Object.entries(attrs ?? {})
    .filter(([k]) => k !== 'depends_on')
    .map(([k, v]) => {
      const key = hclName(k);
      // A nested object whose key names a known block style (e.g. versioning_configuration) stays an attribute
      // map here; the generator lists real nested blocks under `blocks`.
      return `${indent}${key} = ${renderValue(v, indent)}`;
    });
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
