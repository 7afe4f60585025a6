/**
 * Deterministic repair of the references in a generated resource: a value that points at something the module
 * will not declare (a resource outside the plan, an undeclared variable, a local or module that nothing
 * defines) is replaced by the default body's value for the same argument, or dropped (a required argument is
 * then filled from the default body by the schema conform). References the plan and the default body declare
 * stay. So a small model's guessed addresses (`aws_s3_bucket.main.id` when the bucket is `site`) never reach
 * the files as unresolved references. Pure, workflow-safe.
 */
import type { GeneratedBlock, GeneratedResource, PlannedResource } from '../../contracts/design';
import { PROVIDER_TYPE, REFERENCE } from './hcl';

/**
 * The references of an expression, as the key of what declares each one: `var.x`, `local.x`, `module.x`,
 * `data.<type>.<name>`, `<type>.<name>` (a resource, provider-prefixed). A bare reference (`aws_vpc.main.id`)
 * is one; a string with `${...}` has those inside the braces; any other string has none.
 */
export function referencesOf(value: string): string[] {
  const text = value.trim();
  const parts = REFERENCE.test(text) ? [text] : [...text.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1] ?? '');
  const out: string[] = [];
  for (const part of parts) {
    for (const m of part.matchAll(REF)) {
      const [root, a, b] = m[0].split('.');
      if (root === 'var' || root === 'local' || root === 'module') out.push(`${root}.${a}`);
      else if (root === 'data') {
        if (b) out.push(`data.${a}.${b}`);
      } else out.push(`${root}.${a}`);
    }
  }
  return out;
}

/** A reference inside an expression: var/local/module, a data source, or a provider-prefixed resource type. */
const REF = new RegExp(
  String.raw`\b(?:(?:var|local|module)\.[A-Za-z_][\w-]*|data\.[a-z][a-z0-9]*_[a-z0-9_]+\.[A-Za-z_][\w-]*|${PROVIDER_TYPE}\.[A-Za-z_][\w-]*)`,
  'g',
);

/** What a resource of the plan may reference: every planned resource, `var.region`, and what `extra` declares. */
export function declaredFor(plan: PlannedResource[], extra: string[] = []): Set<string> {
  const known = new Set<string>(['var.region']);
  for (const r of plan) known.add(`${r.type}.${r.name}`);
  for (const block of extra) {
    for (const m of block.matchAll(/^\s*variable\s+"([\w-]+)"/gm)) known.add(`var.${m[1]}`);
    for (const m of block.matchAll(/^\s*data\s+"([\w-]+)"\s+"([\w-]+)"/gm)) known.add(`data.${m[1]}.${m[2]}`);
  }
  return known;
}

/** The references of `v` (a string, or the strings of a list or map) that `known` does not declare. */
function unknownRefs(v: unknown, known: Set<string>): string[] {
  if (typeof v === 'string') return referencesOf(v).filter((r) => !known.has(r));
  if (Array.isArray(v)) return v.flatMap((x) => unknownRefs(x, known));
  if (v && typeof v === 'object') return Object.values(v).flatMap((x) => unknownRefs(x, known));
  return [];
}

/** Why these references cannot stay: outside the design, or the resource's own address (`self`). */
function whyNot(bad: string[], self: string | undefined): string {
  return bad.length === 1 && bad[0] === self
    ? `${self} is the resource itself`
    : `${bad.join(', ')} is not in the design`;
}

function repairAttributes(
  attrs: Record<string, unknown>,
  fallback: Record<string, unknown>,
  known: Set<string>,
  where: string,
  notes: string[],
  self?: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(attrs ?? {})) {
    let bad = unknownRefs(value, known);
    if (bad.length === 0) {
      out[name] = value;
      continue;
    }
    if (Array.isArray(value)) {
      // A list keeps its items that resolve; the bad ones go.
      const kept = value.filter((x) => unknownRefs(x, known).length === 0);
      if (kept.length) {
        out[name] = kept;
        notes.push(`${where}${name}: dropped item(s) referencing ${[...new Set(bad)].join(', ')}`);
        continue;
      }
    }
    bad = [...new Set(bad)];
    if (name in fallback && unknownRefs(fallback[name], known).length === 0) {
      out[name] = fallback[name];
      notes.push(`${where}${name}: ${whyNot(bad, self)}, default value used`);
    } else notes.push(`${where}${name}: dropped, ${whyNot(bad, self)}`);
  }
  return out;
}

function repairBlocks(
  blocks: GeneratedBlock[],
  fallback: GeneratedBlock[],
  known: Set<string>,
  where: string,
  notes: string[],
  self?: string,
): GeneratedBlock[] {
  return (blocks ?? []).map((b) => {
    if (!b || typeof b !== 'object') return b;
    const fb = fallback.find((x) => x.type === b.type);
    const at = `${where}${String(b.type)}.`;
    return {
      ...b,
      attributes: repairAttributes(b.attributes ?? {}, fb?.attributes ?? {}, known, at, notes, self),
      ...(b.blocks ? { blocks: repairBlocks(b.blocks, fb?.blocks ?? [], known, at, notes, self) } : {}),
    };
  });
}

/**
 * `gen` with every reference `known` does not declare replaced by the default body's value of that argument or
 * dropped (list items one by one; outputs whole). `notes` says what changed, one line per argument. With `self`
 * (the resource's own `type.name`), a reference to it in its own arguments goes too: Terraform refuses a
 * self-referential block (`name = aws_cloudwatch_log_group.logs` inside that log group); its outputs may name it.
 */
export function repairReferences(
  gen: GeneratedResource,
  fallback: GeneratedResource,
  known: Set<string>,
  opts: { self?: string } = {},
): { resource: GeneratedResource; notes: string[] } {
  const notes: string[] = [];
  const { self } = opts;
  const inside = self ? new Set([...known].filter((k) => k !== self)) : known;
  const attributes = repairAttributes(gen.attributes ?? {}, fallback.attributes ?? {}, inside, '', notes, self);
  const blocks = gen.blocks ? repairBlocks(gen.blocks, fallback.blocks ?? [], inside, '', notes, self) : undefined;
  const outputs = gen.outputs?.filter((o) => {
    const bad = unknownRefs(o?.value, known);
    if (bad.length)
      notes.push(`output ${String(o?.name)}: dropped, ${[...new Set(bad)].join(', ')} is not in the design`);
    return bad.length === 0;
  });
  return {
    resource: { ...gen, attributes, ...(blocks ? { blocks } : {}), ...(outputs ? { outputs } : {}) },
    notes,
  };
}
