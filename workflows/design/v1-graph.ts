/**
 * The v1 design graph, the first-generation design agent on the same builder as v2: consultant (gathers
 * requirements, ⇄ human) → prompt generator → engineer ⇄ lead (the lead approves or sends the draft back with
 * review notes, bounded) → combine → validate → store; its state and its view.
 * Workflow code, but not a workflow itself (see v1-workflow.ts).
 */
import { channels, END, START, type Channels, type CompiledGraph } from '../graph';
import type { PlannedResource } from '../../contracts/design';
import { defaultResource, isKnownType } from './catalog';
import { designActivities, tallyOf } from './activities';
import {
  askedQuestions,
  askNode,
  combineNode,
  commitRevision,
  compileDesign,
  designGraph,
  designView,
  forRevision,
  nonEmptyStrings,
  noUsablePlan,
  questionsOf,
  recordCall,
  recordPath,
  requirementsNode,
  userWords,
  type DesignBase,
  type DesignGraphOptions,
} from './builder';
import { keywordPlan, repairPlanGraph } from './fallback';
import { renderResource } from './hcl';
import { legacyV1Nodes } from './legacy';
import { acceptDraft, acceptDraftLoose, draftResources, draftToPlan, type EngineerResource } from './plan-graph';
import { declaredFor, repairReferences } from './references';
import { briefMessages, consultantMessages, engineerMessages, leadMessages, transcript } from './prompts';
import { ENGINEER_SCHEMA, LEAD_SCHEMA } from './schemas';
import { DESIGN_DEFAULTS } from './settings';

export interface V1State extends DesignBase {
  engineeringPrompt: string;
  snippets: string[];
  reviewNotes: string;
  reviewRounds: number;
  approved: boolean;
  /**
   * DESIGN_V1_SCHEMA_PATCH: what a follow-up revision starts from (the previous revision's resources and their
   * code, kept as they are); empty in the first revision.
   */
  kept: { resources: PlannedResource[]; snippets: string[] };
}

/** The channels v1 adds to the shared ones. */
function v1Channels(): Channels<Omit<V1State, keyof DesignBase>> {
  return {
    engineeringPrompt: channels.replace(''),
    snippets: channels.replace<string[]>([]),
    reviewNotes: channels.replace(''),
    reviewRounds: channels.replace(0),
    approved: channels.replace(false),
    kept: channels.replace<V1State['kept']>({ resources: [], snippets: [] }),
  };
}

export function buildV1Graph(options: DesignGraphOptions): CompiledGraph<V1State> {
  const { input, structured = true } = options;
  const acts = designActivities(input);
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const maxReviews = input.maxReviewRounds ?? DESIGN_DEFAULTS.maxReviewRounds;

  /**
   * DESIGN_V1_SCHEMA_PATCH: the engineer's draft, added to what the revision keeps, each drafted resource
   * repaired like v2's generator (references outside the design, then the provider schema with the default
   * body as fallback). No usable draft: the keyword plan's resources the design lacks, with default bodies; and
   * a revision that gets neither keeps the previous design rather than fail.
   */
  const schemaDraft = async (s: V1State): Promise<Partial<V1State>> => {
    const kept = s.kept ?? { resources: [], snippets: [] };
    const messages = engineerMessages(s);
    if (kept.resources.length) {
      messages.push({
        role: 'user',
        content:
          `Change request: ${options.revision?.().message ?? ''}\n` +
          'The design already has: ' +
          kept.resources.map((r) => `${r.type}.${r.name}`).join(', ') +
          '. Describe only the resources the change request adds.',
      });
    }
    const out = await acts.structured<EngineerResource[]>({
      node: 'engineer',
      what: s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
      kind: 'design.plan',
      messages,
      schema: ENGINEER_SCHEMA,
      accept: acceptDraftLoose,
    });
    if (out.value) {
      const { added, drafts, notes } = draftResources(out.value, kept.resources);
      const all = [...kept.resources, ...added];
      const made = await Promise.all(
        added.map(async (r, i) => {
          const fallback = defaultResource(r, all);
          const repaired = repairReferences(drafts[i]!, fallback, declaredFor(all, fallback.extra), {
            self: `${r.type}.${r.name}`,
          });
          const conformed = await acts.conform(r.type, repaired.resource, fallback);
          const gen = {
            ...conformed.resource,
            outputs: conformed.resource.outputs ?? fallback.outputs,
            extra: fallback.extra,
          };
          const lines = [
            ...(conformed.dropped.length
              ? [`engineer:${r.id}: dropped ${conformed.dropped.join('; ')} (not in the provider schema)`]
              : []),
            ...(repaired.notes.length ? [`engineer:${r.id}: references ${repaired.notes.join('; ')}`] : []),
          ].map((l) => l.slice(0, 400));
          return { snippet: renderResource(r, gen, all), lines };
        }),
      );
      return {
        resources: all,
        snippets: [...kept.snippets, ...made.map((m) => m.snippet)],
        ...recordCall('engineer', out, '', [...notes, ...made.flatMap((m) => m.lines)]),
      };
    }
    const planned = keywordPlan(userWords(s.messages));
    if (!planned && !kept.resources.length) throw noUsablePlan('draft', out.problems);
    const have = new Set(kept.resources.map((r) => `${r.type}.${r.name}`));
    const ids = new Set(kept.resources.map((r) => r.id));
    const added = (planned ?? []).filter(
      (r) => isKnownType(r.type) && !have.has(`${r.type}.${r.name}`) && !ids.has(r.id),
    );
    const { resources, notes } = repairPlanGraph([...kept.resources, ...added]);
    const addedIds = new Set(added.map((r) => r.id));
    const snippets = [
      ...kept.snippets,
      ...resources
        .filter((r) => addedIds.has(r.id))
        .map((r) => renderResource(r, defaultResource(r, resources), resources)),
    ];
    return {
      resources,
      snippets,
      ...recordCall(
        'engineer',
        out,
        planned ? 'keyword plan with default bodies' : 'the previous design kept (nothing to add)',
        notes,
      ),
    };
  };

  const nodes = {
    consultant: requirementsNode<V1State>(acts, 'consultant', consultantMessages, (s, value) => ({
      requirements: nonEmptyStrings(value.requirements),
      ...questionsOf(askedQuestions(value.questions), s.questionRound, maxRounds),
    })),
    async promptGenerator(s: V1State): Promise<Partial<V1State>> {
      const res = await acts.text('promptGenerator', 'engineering brief', briefMessages(s), 'design.plan');
      const brief = res?.content.trim();
      return {
        engineeringPrompt: brief || transcript(s.messages),
        tally: tallyOf(res),
        ...recordPath(
          'promptGenerator',
          { path: brief ? 'model' : 'fallback', problems: brief ? [] : ['no brief'] },
          'the transcript as the brief',
        ),
      };
    },
    async engineer(s: V1State): Promise<Partial<V1State>> {
      if (options.schemaDraft) return schemaDraft(s);
      const out = await acts.structured<EngineerResource[]>({
        node: 'engineer',
        what: s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
        kind: 'design.plan',
        messages: engineerMessages(s),
        schema: ENGINEER_SCHEMA,
        accept: acceptDraft,
      });
      if (out.value) return { ...draftToPlan(out.value), ...recordCall('engineer', out, '') };
      const planned = keywordPlan(userWords(s.messages));
      if (!planned) throw noUsablePlan('draft', out.problems);
      const { resources, notes } = repairPlanGraph(planned.filter((r) => isKnownType(r.type)));
      const snippets = resources.map((r) => renderResource(r, defaultResource(r, resources), resources));
      return {
        resources,
        snippets,
        ...recordCall('engineer', out, 'keyword plan with default bodies', notes),
      };
    },
    async lead(s: V1State): Promise<Partial<V1State>> {
      const out = await acts.structured<{ approved: boolean; notes: string }>({
        node: 'lead',
        what: `review ${s.reviewRounds + 1}`,
        kind: 'design.gather',
        messages: leadMessages(s),
        schema: LEAD_SCHEMA,
      });
      // No usable review: nothing to review with, so the draft goes on.
      return {
        approved: out.value?.approved ?? true,
        reviewNotes: out.value?.notes.trim() ?? '',
        reviewRounds: s.reviewRounds + 1,
        ...recordCall('lead', out, 'draft approved'),
      };
    },
  };

  const graph = designGraph(v1Channels(), structured, nodes, legacyV1Nodes(acts, maxRounds), options.track)
    .addNode('ask', askNode<V1State>(input, '(use a default)'))
    .addNode(
      'combine',
      combineNode<V1State>(acts, (s) => s.snippets),
    )
    .addNode('validate', async (s) => ({ validation: await acts.validate('validate', s.files) }))
    .addNode('store', async (s) => ({
      fileRefs: await acts.storeFiles(s.files),
      ...(await commitRevision(acts, options, s.files)),
    }))
    .addEdge(START, 'consultant')
    .addConditionalEdges('consultant', (s) => (s.gatherDone ? 'promptGenerator' : 'ask'))
    .addConditionalEdges('ask', (s) => (s.gatherDone ? 'promptGenerator' : 'consultant'))
    .addEdge('promptGenerator', 'engineer')
    .addEdge('engineer', 'lead')
    // Bounded review: after maxReviewRounds the last draft goes on, and validation says how good it is.
    .addConditionalEdges('lead', (s) => (s.approved || s.reviewRounds >= maxReviews ? 'combine' : 'engineer'))
    .addEdge('combine', 'validate')
    .addEdge('validate', 'store')
    .addEdge('store', END);
  return compileDesign(graph, 'infra-design-v1', 100, options);
}

/** Resets the per-revision parts of a finished state: the review starts again. */
export function v1StateForRevision(s: V1State): V1State {
  // Designs before DESIGN_V1_SCHEMA_PATCH ignore `kept` (their engineer drafts the whole design again).
  return forRevision(s, {
    reviewRounds: 0,
    reviewNotes: '',
    approved: false,
    kept: { resources: s.resources, snippets: s.snippets },
  });
}

/** View of a v1 state for the status query and the result: one level, the lead's notes as the reply. */
export function viewV1State(s: V1State) {
  const plan = s.resources.length ? { resources: s.resources, levels: [s.resources.map((r) => r.id)] } : undefined;
  return designView(s, 'completed', plan, s.reviewNotes || undefined);
}
