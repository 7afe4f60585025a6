/**
 * The LLM nodes of both design graphs as they ran before DESIGN_STRUCTURED_PATCH: one call (two attempts, then
 * a varied one), an unreadable reply degrading the node, and (v2) a bad plan sent back to the model once before
 * the design fails with DesignPlanInvalid. Designs started before the patch replay through these, so their
 * commands stay the same; new designs never run them. Delete with the patch once no such design can still be
 * running.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { ErrorType } from '../../common/errors';
import type { ChatMessage, LlmResult } from '../../contracts/llm';
import type { GeneratedResource } from '../../contracts/design';
import { tallyOf, type DesignActs } from './activities';
import { askedQuestions, nonEmptyStrings, questionsOf, type DesignBase, type DesignNode } from './builder';
import { renderResource } from './hcl';
import { draftToPlan, normalizePlan, planLevels, salvageResources, type EngineerResource } from './plan-graph';
import {
  acceptFixedFiles,
  briefMessages,
  consultantMessages,
  engineerMessages,
  fixMessages,
  gatherMessages,
  generateMessages,
  leadMessages,
  planMessages,
  routeMessages,
  transcript,
} from './prompts';
import {
  ENGINEER_SCHEMA,
  FIX_SCHEMA,
  GATHER_SCHEMA,
  LEAD_SCHEMA,
  parseJson,
  PLAN_SCHEMA,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
} from './schemas';
import type { V1State } from './v1-graph';
import type { DesignState } from './v2-graph';

/** The JSON of a pre-patch reply; undefined when there was no reply or it was not JSON. */
const read = <T>(res: LlmResult | undefined): T | undefined => parseJson<T>(res?.content ?? '');

/** The pre-patch requirements call (v2 `gather`, v1 `consultant`) and its JSON. */
async function requirementsCall(acts: DesignActs, node: string, s: DesignBase, messages: ChatMessage[]) {
  const res = await acts.chat(
    node,
    `requirements, round ${s.questionRound + 1}`,
    messages,
    GATHER_SCHEMA,
    'design.gather',
  );
  return { res, out: read<{ requirements?: Record<string, unknown>; questions?: unknown[] }>(res) };
}

export function legacyV2Nodes(
  acts: DesignActs,
  maxRounds: number,
): Record<'route' | 'gather' | 'plan' | 'generate' | 'fix', DesignNode<DesignState>> {
  return {
    async route(s) {
      if (!s.request.trim()) return { category: 'end', reply: 'The request is empty.' };
      const res = await acts.chat('route', 'classify the request', routeMessages(s), ROUTE_SCHEMA, 'design.route');
      const out = read<{ category?: string; reply?: string }>(res);
      // A reply we cannot read is treated as a request: `gather` will ask if it is unclear.
      const category = out?.category === 'invalid' || out?.category === 'end' ? out.category : 'infrastructure';
      return { category, reply: out?.reply ?? '', tally: tallyOf(res) };
    },
    async gather(s) {
      const { res, out } = await requirementsCall(acts, 'gather', s, gatherMessages(s));
      const requirements: Record<string, string> = {};
      for (const [k, v] of Object.entries(out?.requirements ?? {})) {
        if (typeof v === 'string' && v.trim()) requirements[k] = v.trim();
      }
      const asked = askedQuestions(out?.questions ?? [], (q) =>
        typeof q === 'string' ? q : String((q as { text?: unknown })?.text ?? ''),
      );
      return { requirements, ...questionsOf(asked, s.questionRound, maxRounds), tally: tallyOf(res) };
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
      const norm = normalizePlan(read(res) ?? salvageResources(res?.content ?? ''));
      const lv = 'error' in norm ? norm : planLevels(norm.resources);
      const error = 'error' in lv ? lv.error : '';
      if (error && attempts >= 2) {
        throw ApplicationFailure.create({
          type: ErrorType.DesignPlanInvalid,
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
      const gen = read<GeneratedResource>(res) ?? {};
      return { snippets: { [r.id]: renderResource(r, gen, s.resources) }, tally: tallyOf(res) };
    },
    async fix(s) {
      const res = await acts.chat('fix', `fix pass ${s.fixIterations + 1}`, fixMessages(s), FIX_SCHEMA, 'design.fix');
      return {
        files: acceptFixedFiles(s.files, read(res)),
        fixIterations: s.fixIterations + 1,
        tally: tallyOf(res),
      };
    },
  };
}

export function legacyV1Nodes(
  acts: DesignActs,
  maxRounds: number,
): Record<'consultant' | 'promptGenerator' | 'engineer' | 'lead', DesignNode<V1State>> {
  return {
    async consultant(s) {
      const { res, out } = await requirementsCall(acts, 'consultant', s, consultantMessages(s));
      return {
        requirements: nonEmptyStrings(out?.requirements ?? {}),
        ...questionsOf(askedQuestions(out?.questions ?? []), s.questionRound, maxRounds),
        tally: tallyOf(res),
      };
    },
    async promptGenerator(s) {
      const res = await acts.chat('promptGenerator', 'engineering brief', briefMessages(s), undefined, 'design.plan');
      return { engineeringPrompt: res?.content.trim() || transcript(s.messages), tally: tallyOf(res) };
    },
    async engineer(s) {
      const res = await acts.chat(
        'engineer',
        s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
        engineerMessages(s),
        ENGINEER_SCHEMA,
        'design.plan',
      );
      const list = read<{ resources?: EngineerResource[] }>(res)?.resources ?? [];
      return { ...draftToPlan(Array.isArray(list) ? list : []), tally: tallyOf(res) };
    },
    async lead(s) {
      const res = await acts.chat(
        'lead',
        `review ${s.reviewRounds + 1}`,
        leadMessages(s),
        LEAD_SCHEMA,
        'design.gather',
      );
      const out = read<{ approved?: boolean; notes?: string }>(res);
      // No answer from the lead at all: nothing to review with, so the draft goes on.
      return {
        approved: res === undefined || out?.approved === true,
        reviewNotes: out?.notes ?? '',
        reviewRounds: s.reviewRounds + 1,
        tally: tallyOf(res),
      };
    },
  };
}
