/**
 * The real AWS provider schema (hashicorp/aws, in the shape of `terraform providers schema -json`), and what the
 * design workflows do with it:
 *   - `schemaCheck`: resources and data sources of parsed HCL (hcl2json's JSON) against it: the type exists,
 *     every argument and block name exists, required arguments and blocks are present, block counts fit,
 *     literal values have the argument's type (expressions are left to terraform);
 *   - `generationSchema`: the JSON schema the generator's structured call is constrained by (the resource's
 *     own arguments, typed, its required ones required);
 *   - `conformResource`: drops what the schema does not know from a generated resource and fills what it
 *     requires from a fallback body.
 * The schema is `schemas/aws-provider.json.gz`, built by `scripts/update-aws-schema.sh` from the prebuilt CDKTF
 * provider bindings (@cdktf/provider-aws, generated from the provider's own schema); AINODE_AWS_SCHEMA
 * overrides the path. See docs/decisions.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { GeneratedBlock, GeneratedResource, TerraformDiagnostic } from '../../contracts/design';

export type TfType = string | [string, unknown];
export interface TfAttribute {
  type: TfType;
  required?: boolean;
  optional?: boolean;
}
export interface TfBlockType {
  nesting_mode: string;
  block: TfBlock;
  min_items?: number;
  max_items?: number;
}
export interface TfBlock {
  attributes?: Record<string, TfAttribute>;
  block_types?: Record<string, TfBlockType>;
}
interface TfSchemaFile {
  source: string;
  provider_version: string;
  provider_schemas: Record<
    string,
    {
      resource_schemas: Record<string, { block: TfBlock }>;
      data_source_schemas: Record<string, { block: TfBlock }>;
    }
  >;
}

export interface ProviderSchema {
  /** e.g. `hashicorp/aws 6.25.0 (@cdktf/provider-aws@21.22.1)`. */
  label: string;
  resources: Record<string, { block: TfBlock }>;
  dataSources: Record<string, { block: TfBlock }>;
}

/** Meta-arguments every resource accepts (not part of a provider's schema). */
const META_ATTRIBUTES = new Set(['count', 'for_each', 'provider', 'depends_on']);
const META_BLOCKS = new Set(['lifecycle', 'provisioner', 'connection']);
/** Arguments the generator never sets: computed ids, the provider-wide tags and region. */
const NOT_GENERATED = new Set(['id', 'tags_all', 'region']);

function schemaPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.AINODE_AWS_SCHEMA) return env.AINODE_AWS_SCHEMA;
  // lib/terraform → the repository root; dist/lib/terraform → dist (the build copies schemas/ there).
  return [path.resolve(__dirname, '..', '..', 'schemas'), path.resolve(__dirname, '..', '..', '..', 'schemas')]
    .map((d) => path.join(d, 'aws-provider.json.gz'))
    .find((p) => existsSync(p));
}

let cached: ProviderSchema | null | undefined;
/** The AWS provider schema, or null when the file is missing (then the schema check reports not_run). */
export function awsProviderSchema(): ProviderSchema | null {
  if (cached !== undefined) return cached;
  const file = schemaPath();
  if (!file || !existsSync(file)) return (cached = null);
  const raw = readFileSync(file);
  const json = JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8')) as TfSchemaFile;
  const p = json.provider_schemas['registry.terraform.io/hashicorp/aws'];
  if (!p) return (cached = null);
  cached = {
    label: `hashicorp/aws ${json.provider_version} (${json.source})`,
    resources: p.resource_schemas,
    dataSources: p.data_source_schemas,
  };
  return cached;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => Boolean(v) && typeof v === 'object' && !Array.isArray(v);
const isExpression = (v: unknown) => typeof v === 'string' && v.includes('${');
/**
 * A whole value that is one reference (`aws_vpc.main.id`, `var.x`): the design renderer writes it unquoted
 * (workflows/design/hcl.ts REFERENCE, the same pattern).
 */
const BARE_REFERENCE =
  /^((var|local|module)\.[\w-]+|data\.[a-z][a-z0-9]*_[a-z0-9_]+\.[\w-]+|(aws|google|azurerm|random|tls|null|local|archive|kubernetes|helm|cloudflare)_[a-z0-9_]+\.[\w-]+)(\.[\w-]+|\[(\d+|"[\w-]*"|\*)\])*$/;

/** A bare reference, or a non-empty list of them. */
function isReference(v: unknown): boolean {
  if (typeof v === 'string') return BARE_REFERENCE.test(v.trim());
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && BARE_REFERENCE.test(x.trim()));
}

/** Why a literal `v` cannot be a value of `type`, or undefined when it can (expressions always can). */
export function typeProblem(type: TfType, v: unknown): string | undefined {
  if (v === null || isExpression(v)) return undefined;
  const kind = Array.isArray(type) ? type[0] : type;
  switch (kind) {
    case 'string':
      return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? undefined : 'a string';
    case 'number':
      return typeof v === 'number' || (typeof v === 'string' && v.trim() !== '' && !isNaN(Number(v)))
        ? undefined
        : 'a number';
    case 'bool':
      return typeof v === 'boolean' || v === 'true' || v === 'false' ? undefined : 'a bool';
    case 'list':
    case 'set':
      if (!Array.isArray(v)) return `a ${kind}`;
      for (const x of v) if (typeProblem((type as [string, TfType])[1], x)) return `a ${kind} of ${describe(type)}`;
      return undefined;
    case 'map':
      if (!isObject(v)) return 'a map';
      for (const x of Object.values(v)) if (typeProblem((type as [string, TfType])[1], x)) return describe(type);
      return undefined;
    case 'object':
      return isObject(v) ? undefined : 'an object';
    default:
      return undefined;
  }
}

function describe(type: TfType): string {
  return Array.isArray(type) ? `${type[0]}(${describe(type[1] as TfType)})` : type;
}

/** Schema errors of one resource/data body (hcl2json shape: blocks are arrays of objects). */
function checkBody(body: Json, block: TfBlock, where: string, out: string[], top: boolean): void {
  const attrs = block.attributes ?? {};
  const blocks = block.block_types ?? {};
  for (const [name, value] of Object.entries(body)) {
    if (top && (META_ATTRIBUTES.has(name) || META_BLOCKS.has(name))) continue;
    const attr = attrs[name];
    if (attr) {
      const problem = typeProblem(attr.type, value);
      if (problem)
        out.push(`${where}: argument "${name}" must be ${problem} (got ${JSON.stringify(value).slice(0, 60)})`);
      continue;
    }
    const bt = blocks[name];
    if (bt) {
      const items = Array.isArray(value) ? value : [value];
      if (bt.max_items !== undefined && items.length > bt.max_items) {
        out.push(`${where}: at most ${bt.max_items} "${name}" block(s) allowed, got ${items.length}`);
      }
      items.forEach((item, i) => {
        if (isObject(item))
          checkBody(item, bt.block, `${where}.${name}${items.length > 1 ? `[${i}]` : ''}`, out, false);
        else if (!isExpression(item))
          out.push(`${where}: "${name}" is a block, not an argument (write ${name} { ... })`);
      });
      continue;
    }
    out.push(`${where}: unsupported argument or block "${name}" (not in the provider schema)`);
  }
  for (const [name, attr] of Object.entries(attrs)) {
    if (attr.required && !(name in body)) out.push(`${where}: missing required argument "${name}"`);
  }
  for (const [name, bt] of Object.entries(blocks)) {
    const n = name in body ? (Array.isArray(body[name]) ? (body[name] as unknown[]).length : 1) : 0;
    if ((bt.min_items ?? 0) > n) out.push(`${where}: missing required block "${name}" (at least ${bt.min_items})`);
  }
}

/** What the schema check found in parsed files; `ran: false` when there is no schema to check against. */
export interface SchemaCheckResult {
  ran: boolean;
  provider?: string;
  reason?: string;
  /** Resources and data sources checked. */
  checked: number;
  diagnostics: TerraformDiagnostic[];
}

/** Checks every `aws_*` resource and data source of the parsed files against the provider schema. */
export function schemaCheck(parsed: { file: string; body: Json }[], schema = awsProviderSchema()): SchemaCheckResult {
  if (!schema)
    return {
      ran: false,
      reason: 'no AWS provider schema file (schemas/aws-provider.json.gz)',
      checked: 0,
      diagnostics: [],
    };
  const diagnostics: TerraformDiagnostic[] = [];
  let checked = 0;
  for (const { file, body } of parsed) {
    for (const [kind, table] of [
      ['resource', schema.resources],
      ['data', schema.dataSources],
    ] as const) {
      for (const [type, byName] of Object.entries(isObject(body[kind]) ? (body[kind] as Json) : {})) {
        if (!type.startsWith('aws_')) continue;
        for (const [name, list] of Object.entries(isObject(byName) ? byName : {})) {
          const addr = `${kind === 'data' ? 'data.' : ''}${type}.${name}`;
          checked++;
          const entry = table[type];
          const problems: string[] = [];
          if (!entry) {
            problems.push(
              `${addr}: ${kind === 'data' ? 'data source' : 'resource'} type "${type}" does not exist in ${schema.label}`,
            );
          } else {
            for (const item of Array.isArray(list) ? list : [list]) {
              if (isObject(item)) checkBody(item, entry.block, addr, problems, true);
            }
          }
          for (const message of problems) diagnostics.push({ file, severity: 'error', check: 'schema', message });
        }
      }
    }
  }
  return { ran: true, provider: schema.label, checked, diagnostics };
}

type JsonSchema = Record<string, unknown>;

function jsonType(type: TfType, depth = 0): JsonSchema | undefined {
  const kind = Array.isArray(type) ? type[0] : type;
  switch (kind) {
    case 'string':
      return { type: 'string', maxLength: 200 };
    case 'number':
      return { type: 'number' };
    case 'bool':
      return { type: 'boolean' };
    case 'list':
    case 'set': {
      const inner = depth < 1 ? jsonType((type as [string, TfType])[1], depth + 1) : undefined;
      return inner ? { type: 'array', items: inner, maxItems: 5 } : undefined;
    }
    case 'map': {
      const inner = (type as [string, TfType])[1];
      return inner === 'string'
        ? { type: 'object', additionalProperties: { type: 'string', maxLength: 100 } }
        : undefined;
    }
    default:
      return undefined; // objects and dynamic values: left to the default body
  }
}

/**
 * The JSON schema of a generated resource of `type`: `attributes` holds the resource's own settable arguments,
 * typed (at most `maxAttributes`, required ones first), required ones required; `blocks` names only the
 * resource's block types. Undefined when the schema does not know the type.
 */
export function generationSchema(
  type: string,
  maxAttributes = 24,
  schema = awsProviderSchema(),
): JsonSchema | undefined {
  const entry = schema?.resources[type];
  if (!entry) return undefined;
  const attrs = Object.entries(entry.block.attributes ?? {})
    .filter(([name]) => !NOT_GENERATED.has(name))
    .map(([name, a]) => [name, a, jsonType(a.type)] as const)
    .filter((x): x is readonly [string, TfAttribute, JsonSchema] => x[2] !== undefined)
    .sort((a, b) => Number(Boolean(b[1].required)) - Number(Boolean(a[1].required)))
    .slice(0, maxAttributes);
  const blockNames = Object.keys(entry.block.block_types ?? {}).filter((n) => n !== 'timeouts');
  const properties: JsonSchema = {
    attributes: {
      type: 'object',
      properties: Object.fromEntries(attrs.map(([name, , js]) => [name, js])),
      required: attrs.filter(([, a]) => a.required).map(([name]) => name),
      additionalProperties: false,
    },
  };
  if (blockNames.length) {
    properties.blocks = {
      type: 'array',
      maxItems: 4,
      items: {
        type: 'object',
        properties: {
          type: { type: 'string', enum: blockNames },
          attributes: { type: 'object', additionalProperties: { type: 'string', maxLength: 100 } },
        },
        required: ['type', 'attributes'],
        additionalProperties: false,
      },
    };
  }
  // No `outputs`: the resource's outputs come from its default body. Offered them, smollm2 spent the rest of its
  // token budget on invented ones ("arn:aws:virtualbox::[VPC ID]...") until the reply was cut off mid-JSON, which
  // cost a repair call or the whole reply.
  return { type: 'object', properties, required: ['attributes'], additionalProperties: false };
}

/** A generated resource that keeps only what the schema knows, with required parts taken from `fallback`. */
export interface Conformed {
  resource: GeneratedResource;
  /** `name: why`, one per argument or block dropped or taken from the fallback. */
  dropped: string[];
  filled: string[];
  /** Whether the schema knew the type (false: the resource is returned unchanged). */
  known: boolean;
}

function conformBlock(
  attrs: Record<string, unknown>,
  blocks: GeneratedBlock[],
  block: TfBlock,
  fallback: { attributes: Record<string, unknown>; blocks: GeneratedBlock[] },
  where: string,
  dropped: string[],
  filled: string[],
): { attributes: Record<string, unknown>; blocks: GeneratedBlock[] } {
  const known = block.attributes ?? {};
  const types = block.block_types ?? {};
  const outAttrs: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(attrs ?? {})) {
    const a = known[name];
    if (!a) {
      if (!META_ATTRIBUTES.has(name)) dropped.push(`${where}${name}: unsupported argument`);
      continue;
    }
    const kind = Array.isArray(a.type) ? a.type[0] : a.type;
    if (typeof value === 'string' && BARE_REFERENCE.test(value.trim())) {
      // A bare reference (rendered unquoted) is an expression: a list or set of one is written as a list of it,
      // a map or object cannot be one resource attribute here and goes; a scalar stays for terraform to judge.
      if (kind === 'list' || kind === 'set') outAttrs[name] = [value.trim()];
      else if (kind === 'map' || kind === 'object') dropped.push(`${where}${name}: must be a ${kind}`);
      else outAttrs[name] = value;
      continue;
    }
    const problem = typeProblem(a.type, value);
    if (problem) {
      dropped.push(`${where}${name}: must be ${problem}`);
      continue;
    }
    outAttrs[name] = value;
  }
  for (const [name, a] of Object.entries(known)) {
    if (a.required && !(name in outAttrs) && name in (fallback.attributes ?? {})) {
      outAttrs[name] = fallback.attributes[name];
      filled.push(`${where}${name}`);
    }
  }
  const outBlocks: GeneratedBlock[] = [];
  for (const b of blocks ?? []) {
    const bt = b && typeof b.type === 'string' ? types[b.type] : undefined;
    if (!bt) {
      dropped.push(`${where}${String(b?.type)}: unsupported block`);
      continue;
    }
    if (bt.max_items !== undefined && outBlocks.filter((x) => x.type === b.type).length >= bt.max_items) {
      dropped.push(`${where}${b.type}: more blocks than allowed`);
      continue;
    }
    const fb = fallback.blocks.find((x) => x.type === b.type);
    const before = { dropped: dropped.length, filled: filled.length };
    const inner = conformBlock(
      b.attributes ?? {},
      b.blocks ?? [],
      bt.block,
      { attributes: fb?.attributes ?? {}, blocks: fb?.blocks ?? [] },
      `${where}${b.type}.`,
      dropped,
      filled,
    );
    const missing = [
      ...Object.entries(bt.block.attributes ?? {})
        .filter(([name, a]) => a.required && !(name in inner.attributes))
        .map(([name]) => name),
      ...Object.entries(bt.block.block_types ?? {})
        .filter(([name, t]) => (t.min_items ?? 0) > inner.blocks.filter((x) => x.type === name).length)
        .map(([name]) => name),
    ];
    if (missing.length) {
      // A block the reply cannot complete is left out (a required one then comes from the fallback below).
      dropped.splice(before.dropped);
      filled.splice(before.filled);
      dropped.push(`${where}${b.type}: block lacks required ${missing.join(', ')}`);
      continue;
    }
    outBlocks.push({
      type: b.type,
      attributes: inner.attributes,
      ...(inner.blocks.length ? { blocks: inner.blocks } : {}),
    });
  }
  for (const [name, bt] of Object.entries(types)) {
    const have = outBlocks.filter((x) => x.type === name).length;
    if ((bt.min_items ?? 0) > have) {
      const fbs = fallback.blocks.filter((x) => x.type === name);
      if (fbs.length) {
        outBlocks.push(...fbs);
        filled.push(`${where}${name}`);
      }
    }
  }
  return { attributes: outAttrs, blocks: outBlocks };
}

/**
 * Arguments the provider schema calls optional but without which the resource does nothing useful or cannot be
 * created (an instance with no AMI or type, a database with no engine), and the ones that wire it to the rest of
 * the design (its subnet, its security groups, its KMS key). A name is an argument or a block type. When the reply
 * lacks one that the type's default body sets, the default body's value (or blocks) is taken, unless the reply
 * itself set an argument or block that replaces it (`unless`).
 */
export const ESSENTIAL_ARGUMENTS: Readonly<Record<string, readonly { name: string; unless?: readonly string[] }[]>> = {
  aws_instance: [
    { name: 'ami', unless: ['launch_template'] },
    { name: 'instance_type', unless: ['launch_template'] },
    { name: 'subnet_id', unless: ['launch_template', 'network_interface'] },
    { name: 'vpc_security_group_ids', unless: ['launch_template', 'network_interface', 'security_groups'] },
  ],
  aws_launch_template: [{ name: 'image_id' }, { name: 'instance_type' }],
  aws_db_instance: [
    { name: 'engine', unless: ['snapshot_identifier', 'replicate_source_db'] },
    { name: 'allocated_storage', unless: ['snapshot_identifier', 'replicate_source_db'] },
    { name: 'db_subnet_group_name' },
    { name: 'vpc_security_group_ids' },
  ],
  aws_elasticache_cluster: [
    { name: 'engine', unless: ['replication_group_id'] },
    { name: 'node_type', unless: ['replication_group_id'] },
    { name: 'num_cache_nodes', unless: ['replication_group_id'] },
    { name: 'subnet_group_name', unless: ['replication_group_id'] },
  ],
  aws_lambda_function: [
    { name: 'runtime', unless: ['image_uri'] },
    { name: 'handler', unless: ['image_uri'] },
  ],
  aws_ecs_service: [{ name: 'cluster' }, { name: 'task_definition' }],
  aws_dynamodb_table: [
    { name: 'hash_key' },
    { name: 'attribute', unless: ['hash_key'] }, // a block: it must describe the reply's own hash key, if any
    { name: 'billing_mode', unless: ['read_capacity', 'write_capacity'] },
    { name: 'server_side_encryption' }, // a block: the design's KMS key, where it has one
  ],
};

/** Keeps what the schema knows of `gen` (a resource of `type`), filling required parts from `fallback`. */
export function conformResource(
  type: string,
  gen: GeneratedResource,
  fallback: GeneratedResource,
  schema = awsProviderSchema(),
): Conformed {
  const entry = schema?.resources[type];
  if (!entry) return { resource: gen, dropped: [], filled: [], known: false };
  const dropped: string[] = [];
  const filled: string[] = [];
  const out = conformBlock(
    gen.attributes ?? {},
    gen.blocks ?? [],
    entry.block,
    { attributes: fallback.attributes ?? {}, blocks: fallback.blocks ?? [] },
    '',
    dropped,
    filled,
  );
  // The wiring comes from the plan, not the model: where the default body points an argument at the design (a
  // subnet's `vpc_id = aws_vpc.main.id`, an instance's AMI from its SSM parameter), a literal the reply wrote for it
  // (`vpc_id = "1234567890"`) is replaced by that reference. A reference the reply made itself stays (the
  // reference repair has already checked it names something the design declares).
  for (const [name, value] of Object.entries(fallback.attributes ?? {})) {
    const mine = out.attributes[name];
    if (mine === undefined || !isReference(value) || isReference(mine)) continue;
    out.attributes[name] = value;
    filled.push(`${name} (wired to the design)`);
  }
  const given = new Set([...Object.keys(out.attributes), ...out.blocks.map((b) => b.type)]);
  for (const { name, unless = [] } of ESSENTIAL_ARGUMENTS[type] ?? []) {
    if (given.has(name) || unless.some((u) => given.has(u))) continue;
    const value = fallback.attributes?.[name];
    const blocks = (fallback.blocks ?? []).filter((b) => b.type === name);
    if (value !== undefined) out.attributes[name] = value;
    else if (blocks.length) out.blocks.push(...blocks);
    else continue;
    filled.push(name);
  }
  return {
    resource: { ...gen, attributes: out.attributes, blocks: out.blocks },
    dropped,
    filled,
    known: true,
  };
}
