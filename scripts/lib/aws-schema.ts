/**
 * Builds the AWS provider schema the design checker and generator use, in the shape of
 * `terraform providers schema -json` (resource_schemas / data_source_schemas → block: attributes, block_types),
 * from the jsii assembly of the prebuilt CDKTF AWS provider bindings (@cdktf/provider-aws). Those bindings are
 * generated from the provider's own schema (`terraform providers schema -json` of hashicorp/aws), so every
 * settable argument, its type, whether it is required, and every nested block with its nesting are there;
 * computed-only attributes are not (they cannot be set, which is what the checker needs).
 *
 * Usage: npx tsx scripts/lib/aws-schema.ts <path to the package's .jsii> <out.json>
 * Run by scripts/lib/install-aws-schema.sh (setup).
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface JsiiType {
  primitive?: string;
  union?: { types: JsiiType[] };
  collection?: { kind: 'array' | 'map'; elementtype: JsiiType };
  fqn?: string;
}
interface JsiiProp {
  name: string;
  optional?: boolean;
  static?: boolean;
  type: JsiiType;
  docs?: { summary?: string; remarks?: string };
}
interface JsiiDecl {
  kind: string;
  fqn: string;
  datatype?: boolean;
  properties?: JsiiProp[];
  docs?: { summary?: string };
}

type TfType = string | [string, TfType] | ['object', Record<string, TfType>];
interface TfAttribute {
  type: TfType;
  required?: boolean;
  optional?: boolean;
}
interface TfBlockType {
  nesting_mode: 'list' | 'single';
  block: TfBlock;
  min_items?: number;
  max_items?: number;
}
interface TfBlock {
  attributes?: Record<string, TfAttribute>;
  block_types?: Record<string, TfBlockType>;
}

const [jsiiPath, outPath] = process.argv.slice(2);
if (!jsiiPath || !outPath) {
  console.error('usage: aws-schema.ts <.jsii> <out.json>');
  process.exit(2);
}
const assembly = JSON.parse(readFileSync(jsiiPath, 'utf8')) as {
  name: string;
  version: string;
  types: Record<string, JsiiDecl>;
};
const types = assembly.types;

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
/** The Terraform name of a property: from its registry link (`...#bucket_prefix S3Bucket#bucket_prefix}`). */
function tfName(p: JsiiProp): string {
  const docs = `${p.docs?.summary ?? ''} ${p.docs?.remarks ?? ''}`;
  return /#([a-z0-9_]+) [A-Za-z0-9]+#[a-z0-9_]+\}/.exec(docs)?.[1] ?? snake(p.name);
}
const isBlock = (p: JsiiProp) => /^\S+ block\.$/.test(p.docs?.summary ?? '');
/** A union's useful member (cdktf adds IResolvable to most). */
function unwrap(t: JsiiType): JsiiType {
  if (t.union) return t.union.types.find((x) => x.fqn !== 'cdktf.IResolvable') ?? t.union.types[0]!;
  return t;
}
function struct(fqn: string | undefined): JsiiDecl | undefined {
  const d = fqn ? types[fqn] : undefined;
  return d?.kind === 'interface' && d.datatype ? d : undefined;
}

function tfType(t0: JsiiType, depth = 0): TfType {
  const t = unwrap(t0);
  if (t.primitive)
    return t.primitive === 'boolean'
      ? 'bool'
      : t.primitive === 'number'
        ? 'number'
        : t.primitive === 'string'
          ? 'string'
          : 'dynamic';
  if (t.collection) return [t.collection.kind === 'map' ? 'map' : 'list', tfType(t.collection.elementtype, depth)];
  const s = struct(t.fqn);
  if (s && depth < 6) {
    const fields: Record<string, TfType> = {};
    for (const p of s.properties ?? []) fields[tfName(p)] = tfType(p.type, depth + 1);
    return ['object', fields];
  }
  return 'dynamic';
}

function block(decl: JsiiDecl, depth = 0): TfBlock {
  const attributes: Record<string, TfAttribute> = {};
  const blockTypes: Record<string, TfBlockType> = {};
  for (const p of decl.properties ?? []) {
    if (p.static) continue;
    const name = tfName(p);
    const t = unwrap(p.type);
    if (isBlock(p) && depth < 8) {
      const single = struct(t.fqn);
      const listOf = t.collection?.kind === 'array' ? struct(unwrap(t.collection.elementtype).fqn) : undefined;
      const inner = single ?? listOf;
      if (inner) {
        blockTypes[name] = {
          nesting_mode: 'list',
          block: block(inner, depth + 1),
          ...(p.optional ? {} : { min_items: 1 }),
          ...(single ? { max_items: 1 } : {}),
        };
        continue;
      }
    }
    attributes[name] = { type: tfType(p.type), ...(p.optional ? { optional: true } : { required: true }) };
  }
  return {
    ...(Object.keys(attributes).length ? { attributes } : {}),
    ...(Object.keys(blockTypes).length ? { block_types: blockTypes } : {}),
  };
}

const resources: Record<string, { version: number; block: TfBlock }> = {};
const dataSources: Record<string, { version: number; block: TfBlock }> = {};
let providerVersion = '';
for (const decl of Object.values(types)) {
  if (decl.kind !== 'class') continue;
  const m = /Represents a \{@link (\S+) (aws_[a-z0-9_]+)\}/.exec(decl.docs?.summary ?? '');
  const config = types[`${decl.fqn}Config`];
  if (!m || !config) continue;
  providerVersion ||= /\/aws\/([\d.]+)\//.exec(m[1]!)?.[1] ?? '';
  const target = m[1]!.includes('/data-sources/') ? dataSources : resources;
  target[m[2]!] = { version: 0, block: block(config) };
}

const out = {
  format_version: '1.0',
  source: `${assembly.name}@${assembly.version}`,
  provider_version: providerVersion,
  provider_schemas: {
    'registry.terraform.io/hashicorp/aws': { resource_schemas: resources, data_source_schemas: dataSources },
  },
};
writeFileSync(outPath, JSON.stringify(out));
console.log(
  `${Object.keys(resources).length} resources, ${Object.keys(dataSources).length} data sources ` +
    `(hashicorp/aws ${providerVersion}, from ${out.source}) → ${outPath}`,
);
