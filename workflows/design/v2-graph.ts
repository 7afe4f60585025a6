/**
 * The v2 design graph (route → gather ⇄ human → plan → generate per level in parallel → combine →
 * validate ⇄ fix → store), its state and its view. Every LLM node makes one structured call (tight schema,
 * bounded num_predict, one repair request) and falls back to a deterministic answer; which path each took is
 * kept in `llmPaths` and `notes`. Workflow code, but not a workflow itself (see workflow.ts).
 */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { ErrorType } from '../../common/errors';
import { channels, END, Send, START, type Channels, type CompiledGraph } from '../graph';
import { defaultResource } from './catalog';
import { designActivities } from './activities';
import {
  askNode,
  combineNode,
  commitRevision,
  compileDesign,
  designGraph,
  designView,
  forRevision,
  noUsablePlan,
  questionsOf,
  recordCall,
  recordPath,
  requirementsNode,
  userWords,
  type DesignBase,
  type DesignGraphOptions,
} from './builder';
import {
  KEYWORD_INVALID_REPLY,
  keywordPlan,
  keywordRequirements,
  keywordRoute,
  namedTypes,
  repairPlanGraph,
  routeDecision,
} from './fallback';
import { renderResource } from './hcl';
import { legacyV2Nodes } from './legacy';
import { acceptPlan, planLevels, salvagePlan } from './plan-graph';
import {
  acceptFixedFiles,
  fixMessages,
  gatherMessages,
  generateMessages,
  planMessages,
  routeMessages,
} from './prompts';
import { declaredFor, repairReferences } from './references';
import {
  acceptGenerated,
  bySchema,
  FIX_SCHEMA,
  MAX_QUESTIONS,
  PLAN_SCHEMA,
  REQUIREMENT_KEYS,
  REQUIREMENT_QUESTIONS,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
} from './schemas';
import {
  DESIGN_DEFAULTS,
  DESIGN_GENERATE_REPAIR_PATCH,
  DESIGN_PLAN_COVERAGE_PATCH,
  DESIGN_PLAN_PARTS_PATCH,
  DESIGN_QUESTIONS_PATCH,
  DESIGN_ROUTE_WORDS_PATCH,
} from './settings';
import type {
  DesignPhase,
  DesignQuestion,
  GeneratedResource,
  PlannedResource,
  TerraformValidation,
} from '../../contracts/design';

export interface DesignState extends DesignBase {
  request: string;
  category: '' | 'infrastructure' | 'invalid' | 'end';
  reply: string;
  /** Requirements the user gave as answers to the table's questions: they beat any reading by the model. */
  answered: Record<string, string>;
  planAttempts: number;
  /** Pre-patch designs only: the plan error sent back to the model. */
  planError: string;
  levels: string[][];
  levelIndex: number;
  /** The resource a `generate` task works on (set per Send). */
  current: string;
  snippets: Record<string, string>;
  fixIterations: number;
  /** The version with the fewest errors: stored when the fix budget runs out. */
  best: { files: Record<string, string>; validation: TerraformValidation } | null;
}

/** The channels v2 adds to the shared ones. */
function v2Channels(): Channels<Omit<DesignState, keyof DesignBase>> {
  return {
    request: channels.replace(''),
    category: channels.replace<DesignState['category']>(''),
    reply: channels.replace(''),
    answered: channels.merge<string>(),
    planAttempts: channels.replace(0),
    planError: channels.replace(''),
    levels: channels.replace<string[][]>([]),
    levelIndex: channels.replace(0),
    current: channels.replace(''),
    snippets: channels.merge<string>(),
    fixIterations: channels.replace(0),
    best: channels.replace<DesignState['best']>(null),
  };
}

/** The `resource` and `data` addresses the files declare, sorted. */
const addressesOf = (files: Record<string, string>) =>
  Object.values(files)
    .flatMap((text) => [...text.matchAll(/^\s*(resource|data)\s+"([^"]+)"\s+"([^"]+)"/gm)])
    .map((m) => `${m[1] === 'data' ? 'data.' : ''}${m[2]}.${m[3]}`)
    .sort();

/** Errors of a validation; a file that does not parse outweighs any number of other errors. */
const errorCount = (v: TerraformValidation) =>
  v.diagnostics.reduce((n, d) => n + (d.severity !== 'error' ? 0 : d.check === 'hcl-parse' ? 1000 : 1), 0);

/** `errorCount` with a schema error worth 100 others (a parse error still 1000). */
const schemaWeighted = (v: TerraformValidation) =>
  v.diagnostics.reduce(
    (n, d) => n + (d.severity !== 'error' ? 0 : d.check === 'hcl-parse' ? 1000 : d.check === 'schema' ? 100 : 1),
    0,
  );

/** An answer to one of the table's questions is that requirement's value, as the user wrote it. */
function answeredRequirements(answered: DesignQuestion[], answers: Record<string, string>): Partial<DesignState> {
  const byQuestion = new Map(Object.entries(REQUIREMENT_QUESTIONS).map(([k, text]) => [text, k]));
  const given: Record<string, string> = {};
  for (const q of answered) {
    const key = byQuestion.get(q.text);
    if (key) given[key] = answers[q.id]!.trim().slice(0, 200);
  }
  return Object.keys(given).length ? { answered: given, requirements: given } : {};
}

/** The v2 graph. Exported so the bench and tests can build it the same way. */
export function buildInfraDesignGraph(options: DesignGraphOptions): CompiledGraph<DesignState> {
  const { input, structured = true } = options;
  const acts = designActivities(input);
  const maxFix = input.maxFixIterations ?? DESIGN_DEFAULTS.maxFixIterations;
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const sendLevel = (s: DesignState, i: number) =>
    (s.levels[i] ?? []).map((id) => new Send<DesignState>('generate', { current: id }));

  /**
   * DESIGN_SCHEMA_PATCH: the model fills the resource's own arguments under a JSON schema built from the
   * provider schema; what the schema does not know is dropped (and noted), what it requires and the reply lacks
   * comes from the default body; the default body's outputs and variables go with it.
   */
  const generateFromSchema = async (s: DesignState, r: PlannedResource): Promise<Partial<DesignState>> => {
    const schema = await acts.resourceSchema(r.type);
    const out = await acts.structured<GeneratedResource>({
      node: 'generate',
      what: `${r.id} (${r.type}.${r.name})`,
      kind: 'design.generate',
      messages: generateMessages(r, s),
      // The model decodes under the resource's own schema; a reply is judged by the generic shape, so an
      // argument the provider does not know is dropped below (and noted), not a reason to discard the reply.
      schema: schema ?? RESOURCE_SCHEMA,
      // DESIGN_GENERATE_REPAIR_PATCH: whether a reply is accepted decides whether a repair call is made.
      accept: patched(DESIGN_GENERATE_REPAIR_PATCH) ? acceptGenerated : bySchema<GeneratedResource>(RESOURCE_SCHEMA),
    });
    const fallback = defaultResource(r, s.resources);
    // References to what the design does not declare are repaired first (the default body's value, or
    // dropped), then the schema decides what stays and fills what it requires.
    const repaired = out.value
      ? repairReferences(out.value, fallback, declaredFor(s.resources, fallback.extra), { self: `${r.type}.${r.name}` })
      : undefined;
    const conformed = repaired ? await acts.conform(r.type, repaired.resource, fallback) : undefined;
    const gen: GeneratedResource = conformed
      ? { ...conformed.resource, outputs: conformed.resource.outputs ?? fallback.outputs, extra: fallback.extra }
      : fallback;
    const extra = [
      ...(conformed?.dropped.length
        ? [`generate:${r.id}: dropped ${conformed.dropped.join('; ')} (not in the provider schema)`.slice(0, 400)]
        : []),
      ...(repaired?.notes.length ? [`generate:${r.id}: references ${repaired.notes.join('; ')}`.slice(0, 400)] : []),
    ];
    return {
      snippets: { [r.id]: renderResource(r, gen, s.resources) },
      levelIndex: s.levels.findIndex((l) => l.includes(r.id)),
      ...recordCall(`generate:${r.id}`, out, `default body of ${r.type}`, extra),
    };
  };
  /** DESIGN_SCHEMA_PATCH: the first level from `from` with a resource still to generate, or combine. */
  const sendWork = (s: DesignState, from: number) => {
    for (let i = from; i < s.levels.length; i++) {
      const todo = (s.levels[i] ?? []).filter((id) => !s.snippets[id]);
      if (todo.length) return todo.map((id) => new Send<DesignState>('generate', { current: id }));
    }
    return 'combine';
  };

  const nodes = {
    async route(s: DesignState): Promise<Partial<DesignState>> {
      if (!s.request.trim()) return { category: 'end', reply: 'The request is empty.' };
      const out = await acts.structured<{ category: DesignState['category']; reply: string }>({
        node: 'route',
        what: 'classify the request',
        kind: 'design.route',
        messages: routeMessages(s),
        schema: ROUTE_SCHEMA,
      });
      if (out.value && patched(DESIGN_ROUTE_WORDS_PATCH)) {
        const decided = routeDecision(out.value, s.request);
        if (decided.overridden) {
          const overridden = { path: 'fallback' as const, problems: [`the model said "${out.value.category}"`] };
          return {
            category: decided.category,
            reply: '',
            tally: out.tally,
            ...recordPath('route', overridden, 'the request names infrastructure'),
          };
        }
      }
      const value = out.value ?? keywordRoute(s.request);
      return {
        category: value.category,
        // The reply explains a refusal; for a design the model's words there are noise ("Your request has been
        // approved and will be delivered to the specified endpoint."), so they are not handed back.
        reply: value.category === 'infrastructure' ? '' : value.reply.trim(),
        ...recordCall('route', out, `keyword route → ${value.category}`),
      };
    },
    gather: requirementsNode<DesignState>(acts, 'gather', gatherMessages, (s, value) => {
      let requirements: Record<string, string> = {};
      for (const [k, v] of Object.entries(value.requirements)) if (v.trim()) requirements[k] = v.trim();
      // What the user answered to the table's questions stays as they wrote it, whatever the model reads.
      requirements = { ...requirements, ...s.answered };
      let asked = value.questions.map((q) => q.trim()).filter(Boolean);
      if (asked.length > 0 && patched(DESIGN_QUESTIONS_PATCH)) {
        // The model decided to ask; what it asks comes from the table, for what is still unknown. What the
        // user's own words state (a region, prod/dev, a database) beats the model's reading of them.
        requirements = { ...requirements, ...keywordRequirements(userWords(s.messages)), ...s.answered };
        asked = REQUIREMENT_KEYS.filter((k) => !requirements[k])
          .slice(0, MAX_QUESTIONS)
          .map((k) => REQUIREMENT_QUESTIONS[k]);
      }
      return { requirements, ...questionsOf(asked, s.questionRound, maxRounds) };
    }),
    async plan(s: DesignState): Promise<Partial<DesignState>> {
      const out = await acts.structured<PlannedResource[]>({
        node: 'plan',
        what: 'resource plan',
        kind: 'design.plan',
        messages:
          options.providerSchema && s.resources.length
            ? [
                ...planMessages(s),
                {
                  role: 'user' as const,
                  content:
                    'The design already has: ' +
                    s.resources.map((r) => `${r.id} (${r.type}.${r.name})`).join(', ') +
                    '. Plan only what the change request adds.',
                },
              ]
            : planMessages(s),
        schema: PLAN_SCHEMA,
        accept: acceptPlan,
        salvage: salvagePlan,
      });
      let resources = out.value ?? keywordPlan(userWords(s.messages), { kms: patched(DESIGN_PLAN_PARTS_PATCH) });
      let coverage: { path: 'fallback'; problems: string[] } | undefined;
      if (out.value && patched(DESIGN_PLAN_COVERAGE_PATCH)) {
        // The request's own words name resources (CloudFront, a database, ...): a plan that leaves one out is
        // worse than the keyword plan, which has each of them with what it needs.
        const parts = patched(DESIGN_PLAN_PARTS_PATCH);
        const keyword = keywordPlan(userWords(s.messages), { kms: parts });
        // A revision's plan adds to the design: what the design already has counts as covered.
        const previousTypes = parts && options.providerSchema ? s.resources.map((r) => r.type) : [];
        const have = new Set([...out.value.map((r) => r.type), ...previousTypes]);
        const offered = new Set((keyword ?? []).map((r) => r.type));
        const missing = namedTypes(userWords(s.messages), { parts }).filter((t) => offered.has(t) && !have.has(t));
        if (keyword && missing.length) {
          resources = keyword;
          coverage = { path: 'fallback', problems: [`the model's plan lacked ${missing.join(', ')}`] };
        }
      }
      if (!resources) throw noUsablePlan('plan', out.problems);
      const previous = options.providerSchema ? s.resources : [];
      if (previous.length) {
        // A revision starts from the previous design: its resources (and their generated code) stay; the plan
        // adds the resources whose id and address the design does not have yet.
        const have = new Set(previous.map((r) => `${r.type}.${r.name}`));
        const ids = new Set(previous.map((r) => r.id));
        const added = resources.filter((r) => !have.has(`${r.type}.${r.name}`) && !ids.has(r.id));
        const addedIds = new Set(added.map((r) => r.id));
        resources = [
          ...previous,
          ...added.map((r) => ({ ...r, dependsOn: r.dependsOn.filter((d) => ids.has(d) || addedIds.has(d)) })),
        ];
      }
      // Unknown dependencies and cycles need no second opinion: drop the edge, and say so.
      const repaired = repairPlanGraph(resources);
      const lv = planLevels(repaired.resources);
      if ('error' in lv) {
        throw ApplicationFailure.create({ type: ErrorType.DesignPlanInvalid, message: lv.error, nonRetryable: true });
      }
      return {
        planAttempts: s.planAttempts + 1,
        planError: '',
        resources: repaired.resources,
        levels: lv.levels,
        levelIndex: 0,
        ...(previous.length ? {} : { snippets: {} }),
        tally: out.tally,
        ...recordPath('plan', coverage ?? out, 'keyword plan from the request', repaired.notes),
      };
    },
    async generate(s: DesignState): Promise<Partial<DesignState>> {
      const r = s.resources.find((x) => x.id === s.current)!;
      if (options.providerSchema) return generateFromSchema(s, r);
      const out = await acts.structured<GeneratedResource>({
        node: 'generate',
        what: `${r.id} (${r.type}.${r.name})`,
        kind: 'design.generate',
        messages: generateMessages(r, s),
        schema: RESOURCE_SCHEMA,
      });
      const gen = out.value ?? defaultResource(r, s.resources);
      return {
        snippets: { [r.id]: renderResource(r, gen, s.resources) },
        ...recordCall(`generate:${r.id}`, out, `default body of ${r.type}`),
      };
    },
    async fix(s: DesignState): Promise<Partial<DesignState>> {
      const out = await acts.structured<{ files: { name: string; content: string }[] }>({
        node: 'fix',
        what: `fix pass ${s.fixIterations + 1}`,
        kind: 'design.fix',
        messages: fixMessages(s),
        schema: FIX_SCHEMA,
      });
      const fixed = out.value ? acceptFixedFiles(s.files, out.value) : s.files;
      // A fix keeps the design: files that lose a resource (or rename one) are not a fix, the pass is spent
      // and the files stay as they were.
      const lost = addressesOf(s.files).filter((a) => !addressesOf(fixed).includes(a));
      const extra = lost.length ? [`fix: pass ${s.fixIterations + 1} dropped ${lost.join(', ')}; not used`] : [];
      return {
        files: lost.length ? s.files : fixed,
        // A fix pass that gave nothing usable ends fixing: another pass would see the same input.
        fixIterations: out.value ? s.fixIterations + 1 : maxFix,
        ...recordCall('fix', out, 'fixing skipped', extra),
      };
    },
  };

  const graph = designGraph(v2Channels(), structured, nodes, legacyV2Nodes(acts, maxRounds), options.track)
    .addNode('invalid', (s) => {
      const reply = s.reply || KEYWORD_INVALID_REPLY;
      return { reply, messages: [{ role: 'assistant', content: reply }] };
    })
    .addNode('ask', askNode<DesignState>(input, '(no answer: use a sensible default)', answeredRequirements))
    .addNode('nextLevel', (s) => ({ levelIndex: s.levelIndex + 1 }))
    .addNode(
      'combine',
      combineNode<DesignState>(acts, (s) => s.levels.flat().map((id) => s.snippets[id] ?? ''), {
        fixIterations: 0,
        best: null,
      }),
    )
    .addNode('validate', async (s) => {
      const validation = await acts.validate(
        s.fixIterations === 0 ? 'validate' : `validate (after fix ${s.fixIterations})`,
        s.files,
      );
      // DESIGN_SCHEMA_PATCH: a schema error outweighs any number of reference errors, so a fix pass that
      // trades broken references for invented arguments never replaces the schema-valid generated version.
      const count = options.providerSchema ? schemaWeighted : errorCount;
      const better = !s.best || count(validation) < count(s.best.validation);
      return { validation, ...(better ? { best: { files: s.files, validation } } : {}) };
    })
    .addNode('store', async (s) => {
      // When the budget ran out, keep the version with the fewest errors rather than the last attempt.
      const chosen = s.validation?.ok || !s.best ? { files: s.files, validation: s.validation } : s.best;
      const fileRefs = await acts.storeFiles(chosen.files);
      return {
        fileRefs,
        files: chosen.files,
        validation: chosen.validation,
        ...(await commitRevision(acts, options, chosen.files)),
      };
    })
    .addEdge(START, 'route')
    .addConditionalEdges('route', (s) => s.category, { infrastructure: 'gather', invalid: 'invalid', end: END })
    .addEdge('invalid', END)
    .addConditionalEdges('gather', (s) => (s.gatherDone ? 'plan' : 'ask'))
    .addConditionalEdges('ask', (s) => (s.gatherDone ? 'plan' : 'gather'))
    .addConditionalEdges('plan', (s) =>
      s.planError ? 'plan' : options.providerSchema ? sendWork(s, 0) : sendLevel(s, 0),
    )
    .addEdge('generate', 'nextLevel')
    .addConditionalEdges('nextLevel', (s) =>
      options.providerSchema
        ? sendWork(s, s.levelIndex)
        : s.levelIndex < s.levels.length
          ? sendLevel(s, s.levelIndex)
          : 'combine',
    )
    .addEdge('combine', 'validate')
    .addConditionalEdges('validate', (s) => (s.validation?.ok ? 'store' : s.fixIterations < maxFix ? 'fix' : 'store'))
    .addEdge('fix', 'validate')
    .addEdge('store', END);
  return compileDesign(graph, 'infra-design-v2', 200, options);
}

/** Resets the per-revision parts of a finished state; requirements, conversation and files carry over. */
export function stateForRevision(s: DesignState): DesignState {
  return forRevision(s, {
    planAttempts: 0,
    planError: '',
    levelIndex: 0,
    // The snippets stay: a revision under DESIGN_SCHEMA_PATCH keeps the previous resources' code (before it,
    // `plan` resets them).
    fixIterations: 0,
    best: null,
  });
}

/** View of a v2 state for the status query and the result. */
export function viewDesignState(s: DesignState) {
  const outcome: DesignPhase = s.category === 'invalid' ? 'invalid' : s.category === 'end' ? 'ended' : 'completed';
  const plan = s.resources.length ? { resources: s.resources, levels: s.levels } : undefined;
  return designView(s, outcome, plan, s.reply || undefined);
}
