/**
 * The JSON schemas of the design nodes' structured outputs (the subset Ollama's grammar and `validateJson`
 * both enforce), the table of requirements and their clarifying questions, and the parsing and validation of
 * a structured reply. String bounds are sized so a whole answer fits the kind's default num_predict
 * (common/llm-bounds.ts). Pure, workflow-safe.
 */
import { AWS_RESOURCE_TYPES } from './catalog';
import { DESIGN_FILE_NAMES, type GeneratedResource } from '../../contracts/design';

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

/** An object with one key, `resources`: a list of 1 to MAX_PLAN_RESOURCES items of `item`'s shape. */
const resourceList = (item: JsonSchema): JsonSchema => ({
  type: 'object',
  properties: { resources: { type: 'array', minItems: 1, maxItems: MAX_PLAN_RESOURCES, items: item } },
  required: ['resources'],
  additionalProperties: false,
});

export const PLAN_SCHEMA: JsonSchema = resourceList({
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
});

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

/**
 * `accept` of a generated resource under the provider schema: any reply with an `attributes` object is used.
 * What the reply holds beyond that is not judged here but repaired deterministically afterwards (references
 * outside the design, then `conformResource`: arguments the provider does not know or of the wrong type
 * dropped, required ones from the default body); malformed blocks and outputs are left out here.
 */
export function acceptGenerated(parsed: unknown): { value: GeneratedResource } | { error: string } {
  const o = parsed as Record<string, unknown> | null;
  const isObj = (v: unknown): v is Record<string, unknown> => Boolean(v) && typeof v === 'object' && !Array.isArray(v);
  if (!isObj(o)) return { error: '$: must be an object' };
  if (!isObj(o.attributes)) return { error: '$: missing "attributes" (an object of argument name → value)' };
  const blocks = (Array.isArray(o.blocks) ? o.blocks : [])
    .filter((b): b is Record<string, unknown> => isObj(b) && typeof b.type === 'string')
    .map((b) => ({ type: b.type as string, attributes: isObj(b.attributes) ? b.attributes : {} }));
  const outputs = (Array.isArray(o.outputs) ? o.outputs : [])
    .filter((x): x is Record<string, unknown> => isObj(x) && typeof x.name === 'string' && typeof x.value === 'string')
    .map((x) => ({ name: x.name as string, value: x.value as string }));
  return {
    value: {
      attributes: o.attributes,
      ...(blocks.length ? { blocks } : {}),
      ...(Array.isArray(o.outputs) ? { outputs } : {}),
    },
  };
}

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

/** v1's engineer: every resource of the draft, each with its type and name. */
export const ENGINEER_SCHEMA: JsonSchema = resourceList({
  type: 'object',
  properties: { type: AWS_TYPE_SCHEMA, name: text(40), ...RESOURCE_PROPERTIES },
  required: ['type', 'name', 'attributes'],
  additionalProperties: false,
});

/** v1's lead: approve the draft, or send it back with review notes. */
export const LEAD_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { approved: { type: 'boolean' }, notes: text(300) },
  required: ['approved', 'notes'],
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

/** Parses a structured-output reply; undefined when the model returned something else. */
export function parseJson<T>(content: string): T | undefined {
  const parsed = parseStructured(content);
  return 'value' in parsed ? (parsed.value as T) : undefined;
}
