/**
 * The v2 design nodes as they ran before DESIGN_STRUCTURED_PATCH: one call (two attempts, then a varied one),
 * an unreadable reply degrading the node, and a bad plan sent back to the model once before the design fails
 * with DesignPlanInvalid. Designs started before the patch replay through these, so their commands stay the
 * same; new designs never run them. Delete with the patch once no such design can still be running.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import {
  DESIGN_PLAN_INVALID,
  FIX_SCHEMA,
  GATHER_SCHEMA,
  normalizePlan,
  parseJson,
  PLAN_SCHEMA,
  planLevels,
  renderResource,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
  salvageResources,
  tallyOf,
  type DesignActs,
  type GeneratedResource,
} from './common';
import type { DesignState } from './graph';
import {
  acceptFixedFiles,
  fixMessages,
  gatherMessages,
  generateMessages,
  planMessages,
  routeMessages,
} from './prompts';

type Node = (s: DesignState) => Promise<Partial<DesignState>>;

export function legacyV2Nodes(
  acts: DesignActs,
  maxRounds: number,
): Record<'route' | 'gather' | 'plan' | 'generate' | 'fix', Node> {
  return {
    async route(s) {
      if (!s.request.trim()) return { category: 'end', reply: 'The request is empty.' };
      const res = await acts.chat('route', 'classify the request', routeMessages(s), ROUTE_SCHEMA, 'design.route');
      const out = parseJson<{ category?: string; reply?: string }>(res?.content ?? '');
      // A reply we cannot read is treated as a request: `gather` will ask if it is unclear.
      const category = out?.category === 'invalid' || out?.category === 'end' ? out.category : 'infrastructure';
      return { category, reply: out?.reply ?? '', tally: tallyOf(res) };
    },
    async gather(s) {
      const res = await acts.chat(
        'gather',
        `requirements, round ${s.questionRound + 1}`,
        gatherMessages(s),
        GATHER_SCHEMA,
        'design.gather',
      );
      const out = parseJson<{ requirements?: Record<string, unknown>; questions?: unknown[] }>(res?.content ?? '');
      const requirements: Record<string, string> = {};
      for (const [k, v] of Object.entries(out?.requirements ?? {})) {
        if (typeof v === 'string' && v.trim()) requirements[k] = v.trim();
      }
      const asked = (out?.questions ?? [])
        .map((q) => (typeof q === 'string' ? q : String((q as { text?: unknown })?.text ?? '')).trim())
        .filter(Boolean)
        .slice(0, 5);
      const done = asked.length === 0 || s.questionRound >= maxRounds;
      return {
        requirements,
        questions: done ? [] : asked.map((text, i) => ({ id: `q${i + 1}`, text })),
        gatherDone: done,
        tally: tallyOf(res),
      };
    },
    async plan(s) {
      const res = await acts.chat(
        'plan',
        s.planError ? 'resource plan (retry)' : 'resource plan',
        planMessages(s, s.planError),
        PLAN_SCHEMA,
        'design.plan',
      );
      const attempts = s.planAttempts + 1;
      const norm = normalizePlan(parseJson(res?.content ?? '') ?? salvageResources(res?.content ?? ''));
      const lv = 'error' in norm ? norm : planLevels(norm.resources);
      const error = 'error' in lv ? lv.error : '';
      if (error && attempts >= 2) {
        throw ApplicationFailure.create({
          type: DESIGN_PLAN_INVALID,
          message: `the model could not produce a valid plan after ${attempts} attempts: ${error}`,
          nonRetryable: true,
        });
      }
      if (error) return { planAttempts: attempts, planError: error, tally: tallyOf(res) };
      return {
        planAttempts: attempts,
        planError: '',
        resources: 'resources' in norm ? norm.resources : [],
        levels: 'levels' in lv ? lv.levels : [],
        levelIndex: 0,
        snippets: {},
        tally: tallyOf(res),
      };
    },
    async generate(s) {
      const r = s.resources.find((x) => x.id === s.current)!;
      const res = await acts.chat(
        'generate',
        `${r.id} (${r.type}.${r.name})`,
        generateMessages(r, s),
        RESOURCE_SCHEMA,
        'design.generate',
      );
      const gen = parseJson<GeneratedResource>(res?.content ?? '') ?? {};
      return { snippets: { [r.id]: renderResource(r, gen, s.resources) }, tally: tallyOf(res) };
    },
    async fix(s) {
      const res = await acts.chat('fix', `fix pass ${s.fixIterations + 1}`, fixMessages(s), FIX_SCHEMA, 'design.fix');
      return {
        files: acceptFixedFiles(s.files, parseJson(res?.content ?? '')),
        fixIterations: s.fixIterations + 1,
        tally: tallyOf(res),
      };
    },
  };
}
