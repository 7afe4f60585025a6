/**
 * The plan as a dependency graph: loosely spelled model plans (and v1 drafts) normalised to Terraform types
 * and unique names, complete resources salvaged from a cut-off reply, and levels by topological sort (level k
 * depends only on earlier levels, so each level's resources are generated in parallel). Pure, workflow-safe.
 */
import { hclName, renderResource } from './hcl';
import { isKnownType } from './catalog';
import { repairPlanGraph } from './fallback';
import { acceptGenerated, ENGINEER_SCHEMA, PLAN_SCHEMA, validateJson } from './schemas';
import { DESIGN_DEFAULTS } from './settings';
import type { GeneratedResource, PlannedResource } from '../../contracts/design';

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

/** Each listed resource with its type coerced to Terraform spelling (small models rarely write it exactly). */
function coerceTypes(list: unknown[]): unknown[] {
  return list.map((r: unknown) =>
    r && typeof r === 'object' && typeof (r as { type?: unknown }).type === 'string'
      ? { ...r, type: normalizeType((r as { type: string }).type) }
      : r,
  );
}

/**
 * `accept` of the plan: types coerced to Terraform spelling, then the schema (known types only, bounded sizes),
 * then `normalizePlan`. Unknown dependencies and cycles pass: `repairPlanGraph` removes them deterministically.
 */
export function acceptPlan(parsed: unknown): { value: PlannedResource[] } | { error: string } {
  const list = (parsed as { resources?: unknown } | null)?.resources;
  const coerced = Array.isArray(list) ? { ...(parsed as object), resources: coerceTypes(list) } : parsed;
  const errors = validateJson(coerced, PLAN_SCHEMA);
  if (errors.length) return { error: errors.join('; ') };
  const norm = normalizePlan(coerced);
  return 'error' in norm ? norm : { value: norm.resources };
}

/** One resource of v1's engineer draft: its own type and name, and the generator's description of it. */
export type EngineerResource = GeneratedResource & { type: string; name: string };

/** `accept` of v1's engineer draft: types coerced to Terraform spelling first, then the schema. */
export function acceptDraft(parsed: unknown): { value: EngineerResource[] } | { error: string } {
  const list = (parsed as { resources?: unknown } | null)?.resources;
  // Only `resources` is kept: any other key of the reply is dropped before the schema sees it.
  const coerced = Array.isArray(list) ? { resources: coerceTypes(list) } : parsed;
  const errors = validateJson(coerced, ENGINEER_SCHEMA);
  return errors.length
    ? { error: errors.join('; ') }
    : { value: (coerced as { resources: EngineerResource[] }).resources };
}

/** Planned resources (ids r1..rN, no dependencies) and their HCL from v1's engineer draft. */
export function draftToPlan(list: EngineerResource[]): { resources: PlannedResource[]; snippets: string[] } {
  const valid = list.filter((r) => typeof r.type === 'string' && /^[a-z][a-z0-9]*_[a-z0-9_]+$/.test(r.type));
  const resources: PlannedResource[] = valid.map((r, i) => ({
    id: `r${i + 1}`,
    type: r.type,
    name: hclName(r.name ?? `r${i + 1}`),
    dependsOn: [],
    requirements: '',
  }));
  const snippets = resources.map((r, i) => renderResource(r, valid[i] ?? {}, resources));
  return { resources, snippets };
}

/**
 * `accept` of v1's engineer draft under DESIGN_V1_SCHEMA_PATCH: types coerced to Terraform spelling; the items
 * of a type the generator knows with an `attributes` object are kept (each as `acceptGenerated` reads it), the
 * others left out; an error only when none is left. What the items hold is repaired afterwards, as in v2.
 */
export function acceptDraftLoose(parsed: unknown): { value: EngineerResource[] } | { error: string } {
  const list = (parsed as { resources?: unknown } | null)?.resources;
  if (!Array.isArray(list) || list.length === 0) return { error: '$.resources: must be a non-empty array' };
  const out: EngineerResource[] = [];
  for (const item of coerceTypes(list).slice(0, DESIGN_DEFAULTS.maxResources) as Record<string, unknown>[]) {
    if (!item || typeof item.type !== 'string' || !isKnownType(item.type)) continue;
    const gen = acceptGenerated(item);
    if ('value' in gen)
      out.push({ ...gen.value, type: item.type, name: typeof item.name === 'string' ? item.name : '' });
  }
  if (out.length) return { value: out };
  const errors = validateJson({ resources: coerceTypes(list) }, ENGINEER_SCHEMA);
  return { error: errors.length ? errors.join('; ') : '$.resources: no item has a known type and "attributes"' };
}

/**
 * The planned resources of a v1 draft added to `kept` (the previous revision's resources): each drafted resource
 * whose address the design does not have yet, with an id of its own and the dependencies its references name
 * (`bucket = aws_s3_bucket.logs.id` → depends on that bucket), cycles broken. `drafts[i]` describes `added[i]`.
 */
export function draftResources(
  list: EngineerResource[],
  kept: PlannedResource[],
): { added: PlannedResource[]; drafts: GeneratedResource[]; notes: string[] } {
  const ids = new Set(kept.map((r) => r.id));
  const addresses = new Set(kept.map((r) => `${r.type}.${r.name}`));
  const added: PlannedResource[] = [];
  const drafts: GeneratedResource[] = [];
  let n = 0;
  for (const item of list) {
    const name = hclName(item.name || item.type.replace(/^aws_/, ''));
    if (addresses.has(`${item.type}.${name}`)) continue;
    addresses.add(`${item.type}.${name}`);
    let id: string;
    do id = `r${++n}`;
    while (ids.has(id));
    ids.add(id);
    added.push({ id, type: item.type, name, dependsOn: [], requirements: '' });
    const { type: _t, name: _n, ...gen } = item;
    drafts.push(gen);
  }
  const all = [...kept, ...added];
  const idOf = new Map(all.map((r) => [`${r.type}.${r.name}`, r.id]));
  added.forEach((r, i) => {
    const refs = JSON.stringify([drafts[i]!.attributes ?? {}, drafts[i]!.blocks ?? []]);
    r.dependsOn = [
      ...new Set(
        [...refs.matchAll(/\b(aws_[a-z0-9_]+\.[A-Za-z_][\w-]*)/g)]
          .map((m) => idOf.get(m[1]!))
          .filter((d): d is string => d !== undefined && d !== r.id),
      ),
    ];
  });
  const repaired = repairPlanGraph(all);
  const byId = new Map(repaired.resources.map((r) => [r.id, r]));
  return { added: added.map((r) => byId.get(r.id)!), drafts, notes: repaired.notes };
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
