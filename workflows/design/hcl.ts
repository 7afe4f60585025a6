/**
 * The deterministic HCL renderer: a planned resource plus the generator's JSON description of it become a
 * resource block (and its outputs) whose syntax is always valid, whatever the model wrote. Pure, workflow-safe.
 */
import type { GeneratedBlock, GeneratedResource, PlannedResource } from '../../contracts/design';

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
