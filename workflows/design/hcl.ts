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
/**
 * A resource type of a provider the combiner knows (`aws_s3_bucket`): only these start a bare reference, so a
 * value such as `lambda_function.lambda_handler` (a Python handler) stays a string.
 */
export const PROVIDER_TYPE = String.raw`(?:aws|google|azurerm|random|tls|null|local|archive|kubernetes|helm|cloudflare)_[a-z0-9_]+`;
/** A bare Terraform reference (`aws_s3_bucket.main.id`, `var.region`, `data.aws_ami.x.id`, `x.y[0].z`). */
export const REFERENCE = new RegExp(
  String.raw`^((var|local|module)\.[\w-]+|data\.[a-z][a-z0-9]*_[a-z0-9_]+\.[\w-]+|${PROVIDER_TYPE}\.[\w-]+)(\.[\w-]+|${INDEX})*$`,
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

/**
 * A quoted HCL string of `s` that always parses: an interpolation `${...}` stays only when it holds one
 * reference (what the default bodies write inside policies); any other `${` or `%{` is escaped to a literal.
 */
export function hclString(s: string): string {
  const escaped = s.replace(/\$\{([^{}]*)\}|\$\{|%\{/g, (m: string, inner: string | undefined) => {
    if (inner !== undefined && REFERENCE.test(inner.trim())) return m;
    return m === '%{' ? '%%{' : `$$${m.slice(1)}`;
  });
  // JSON's escapes are HCL's, except \b and \f (HCL has none): those two control characters are left out.
  return JSON.stringify(escaped.replace(/[\b\f]/g, ''));
}

function renderValue(v: unknown, indent: string): string {
  if (typeof v === 'string') {
    if (REFERENCE.test(v.trim())) return v.trim();
    return hclString(v);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map((x) => renderValue(x, indent)).join(', ')}]`;
  const inner = `${indent}  `;
  const lines = uniqueEntries(v as Record<string, unknown>, (k) =>
    /^[A-Za-z_][\w-]*$/.test(k) ? k : hclString(k),
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
      ...(o.description ? [`  description = ${hclString(o.description)}`] : []),
      '}',
    );
  }
  for (const block of gen.extra ?? []) lines.push('', block);
  return lines.join('\n');
}
