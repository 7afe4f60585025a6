/**
 * The v2 design graph (route → gather ⇄ human → plan → generate per level in parallel → combine →
 * validate ⇄ fix → store) and `runDesign`, the handlers and follow-up loop shared by both design workflows.
 * Every LLM node makes one structured call (tight schema, bounded num_predict, one repair request) and falls
 * back to a deterministic answer; which path each took is kept in `llmPaths` and `notes`.
 * Workflow code, but not a workflow itself: the barrel exports only the workflow files.
 */
import {
  ApplicationFailure,
  condition,
  isCancellation,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';

import { ErrorType } from '../../common/errors';
import { type ChatMessage } from '../../contracts/llm';
import {
  designAnswersSignal,
  designMessageSignal,
  designStatusQuery,
  submitDesignAnswersUpdate,
} from '../../contracts/definitions';
import { channels, END, Send, START, StateGraph, type CompiledGraph, type PendingInterrupt } from '../graph';
import { defaultResource } from './catalog';
import {
  acceptPlan,
  addTally,
  bySchema,
  DESIGN_DEFAULTS,
  DESIGN_PLAN_INVALID,
  DESIGN_PLAN_COVERAGE_PATCH,
  DESIGN_QUESTIONS_PATCH,
  DESIGN_ROUTE_WORDS_PATCH,
  DESIGN_STRUCTURED_PATCH,
  designActivities,
  emptyTally,
  FIX_SCHEMA,
  GATHER_SCHEMA,
  MAX_QUESTIONS,
  PLAN_SCHEMA,
  planLevels,
  questionsText,
  renderResource,
  REQUIREMENT_KEYS,
  REQUIREMENT_QUESTIONS,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
  salvagePlan,
  type GeneratedResource,
  type StructuredOutcome,
  type UsageTally,
} from './common';
import { keywordPlan, keywordRequirements, keywordRoute, namedTypes, repairPlanGraph, routeDecision } from './fallback';
import { legacyV2Nodes } from './legacy';
import {
  acceptFixedFiles,
  fixMessages,
  gatherMessages,
  generateMessages,
  planMessages,
  routeMessages,
} from './prompts';
import type {
  DesignFileRef,
  DesignGraphVersion,
  DesignPhase,
  DesignQuestion,
  DesignResult,
  DesignStatus,
  InfraDesignInput,
  LlmPath,
  PlannedResource,
  TerraformValidation,
} from '../../contracts/design';
import { SearchAttributeKey } from '../../common/search-attributes';

export { DESIGN_PLAN_INVALID } from './common';

export interface DesignState {
  request: string;
  messages: ChatMessage[];
  category: '' | 'infrastructure' | 'invalid' | 'end';
  reply: string;
  requirements: Record<string, string>;
  /** Requirements the user gave as answers to the table's questions: they beat any reading by the model. */
  answered: Record<string, string>;
  /** Questions `ask` waits on (numbered q1..qN per round). */
  questions: DesignQuestion[];
  questionRound: number;
  gatherDone: boolean;
  planAttempts: number;
  /** Pre-patch designs only: the plan error sent back to the model. */
  planError: string;
  resources: PlannedResource[];
  levels: string[][];
  levelIndex: number;
  /** The resource a `generate` task works on (set per Send). */
  current: string;
  snippets: Record<string, string>;
  files: Record<string, string>;
  validation: TerraformValidation | null;
  fixIterations: number;
  /** The version with the fewest errors: stored when the fix budget runs out. */
  best: { files: Record<string, string>; validation: TerraformValidation } | null;
  fileRefs: DesignFileRef[];
  tally: UsageTally;
  /** Which path gave each structured answer (`route`, `gather`, `plan`, `generate:<id>`, `fix`). */
  llmPaths: Record<string, LlmPath>;
  /** Repairs and fallbacks, one line each. */
  notes: string[];
}

export function designChannels() {
  return {
    request: channels.replace(''),
    messages: channels.append<ChatMessage>(),
    category: channels.replace<DesignState['category']>(''),
    reply: channels.replace(''),
    requirements: channels.merge<string>(),
    answered: channels.merge<string>(),
    questions: channels.replace<DesignQuestion[]>([]),
    questionRound: channels.replace(0),
    gatherDone: channels.replace(false),
    planAttempts: channels.replace(0),
    planError: channels.replace(''),
    resources: channels.replace<PlannedResource[]>([]),
    levels: channels.replace<string[][]>([]),
    levelIndex: channels.replace(0),
    current: channels.replace(''),
    snippets: channels.merge<string>(),
    files: channels.replace<Record<string, string>>({}),
    validation: channels.replace<TerraformValidation | null>(null),
    fixIterations: channels.replace(0),
    best: channels.replace<DesignState['best']>(null),
    fileRefs: channels.replace<DesignFileRef[]>([]),
    tally: channels.reduce(emptyTally, addTally),
    llmPaths: channels.merge<LlmPath>(),
    notes: channels.append<string>(),
  };
}

/** Errors of a validation; a file that does not parse outweighs any number of other errors. */
const errorCount = (v: TerraformValidation) =>
  v.diagnostics.reduce((n, d) => n + (d.severity !== 'error' ? 0 : d.check === 'hcl-parse' ? 1000 : 1), 0);

/** `ap-northeast-2` out of "Seoul (ap-northeast-2)". */
export function regionOf(requirements: Record<string, string>): string | undefined {
  return /[a-z]{2}(-gov)?-[a-z]+-\d/.exec(requirements.region ?? '')?.[0];
}

/** What the user wrote (request, answers, change requests): the keyword fallbacks read only this. */
export const userWords = (messages: ChatMessage[]) =>
  messages
    .filter((m) => m.role === 'user')
    .map((m) => m.content)
    .join('\n');

/**
 * The state update recording how a structured call went: its path under `key`, and a note (also logged) when
 * it was not the model's first answer. `instead` says what the fallback used.
 */
export function recordPath(
  key: string,
  out: Pick<StructuredOutcome<unknown>, 'path' | 'problems'>,
  instead: string,
  extra: string[] = [],
): { llmPaths: Record<string, LlmPath>; notes: string[] } {
  const why = out.problems
    .map((p, i) => `${i === 0 ? 'first reply' : 'repair'}: ${p}`)
    .join('; ')
    .slice(0, 400);
  const notes =
    out.path === 'repaired'
      ? [`${key}: repaired (${why})`]
      : out.path === 'fallback'
        ? [`${key}: fallback, ${instead} (${why})`]
        : [];
  for (const note of [...notes, ...extra]) log.warn(note);
  return { llmPaths: { [key]: out.path }, notes: [...notes, ...extra] };
}

export interface DesignGraphOptions {
  input: InfraDesignInput;
  onInterrupt?: (pending: PendingInterrupt | undefined) => void;
  onStep?: (node: string | undefined) => void;
  /** false: the node code of designs started before DESIGN_STRUCTURED_PATCH (default true). */
  structured?: boolean;
}

/** The v2 graph. Exported so the bench and tests can build it the same way. */
export function buildInfraDesignGraph({
  input,
  onInterrupt,
  onStep,
  structured = true,
}: DesignGraphOptions): CompiledGraph<DesignState> {
  const acts = designActivities(input);
  const maxFix = input.maxFixIterations ?? DESIGN_DEFAULTS.maxFixIterations;
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const answerTimeout = input.answerTimeout ?? DESIGN_DEFAULTS.answerTimeout;
  const sendLevel = (s: DesignState, i: number) =>
    (s.levels[i] ?? []).map((id) => new Send<DesignState>('generate', { current: id }));
  const legacy = legacyV2Nodes(acts, maxRounds);

  const nodes = {
    async route(s: DesignState): Promise<Partial<DesignState>> {
      if (!s.request.trim()) return { category: 'end', reply: 'The request is empty.' };
      const out = await acts.structured<{ category: DesignState['category']; reply: string }>({
        node: 'route',
        what: 'classify the request',
        kind: 'design.route',
        messages: routeMessages(s),
        schema: ROUTE_SCHEMA,
        accept: bySchema(ROUTE_SCHEMA),
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
        reply: value.reply.trim(),
        tally: out.tally,
        ...recordPath('route', out, `keyword route → ${value.category}`),
      };
    },
    async gather(s: DesignState): Promise<Partial<DesignState>> {
      const out = await acts.structured<{ requirements: Record<string, string>; questions: string[] }>({
        node: 'gather',
        what: `requirements, round ${s.questionRound + 1}`,
        kind: 'design.gather',
        messages: gatherMessages(s),
        schema: GATHER_SCHEMA,
        accept: bySchema(GATHER_SCHEMA),
      });
      if (!out.value) {
        // No questions: plan with what the user wrote and sensible defaults.
        return {
          requirements: keywordRequirements(userWords(s.messages)),
          questions: [],
          gatherDone: true,
          tally: out.tally,
          ...recordPath('gather', out, 'requirements from keywords, no questions'),
        };
      }
      let requirements: Record<string, string> = {};
      for (const [k, v] of Object.entries(out.value.requirements)) if (v.trim()) requirements[k] = v.trim();
      // What the user answered to the table's questions stays as they wrote it, whatever the model reads.
      requirements = { ...requirements, ...s.answered };
      let asked = out.value.questions.map((q) => q.trim()).filter(Boolean);
      if (asked.length > 0 && patched(DESIGN_QUESTIONS_PATCH)) {
        // The model decided to ask; what it asks comes from the table, for what is still unknown. What the
        // user's own words state (a region, prod/dev, a database) beats the model's reading of them.
        requirements = { ...requirements, ...keywordRequirements(userWords(s.messages)), ...s.answered };
        asked = REQUIREMENT_KEYS.filter((k) => !requirements[k])
          .slice(0, MAX_QUESTIONS)
          .map((k) => REQUIREMENT_QUESTIONS[k]);
      }
      const done = asked.length === 0 || s.questionRound >= maxRounds;
      return {
        requirements,
        questions: done ? [] : asked.map((text, i) => ({ id: `q${i + 1}`, text })),
        gatherDone: done,
        tally: out.tally,
        ...recordPath('gather', out, ''),
      };
    },
    async plan(s: DesignState): Promise<Partial<DesignState>> {
      const out = await acts.structured<PlannedResource[]>({
        node: 'plan',
        what: 'resource plan',
        kind: 'design.plan',
        messages: planMessages(s),
        schema: PLAN_SCHEMA,
        accept: acceptPlan,
        salvage: salvagePlan,
      });
      let resources = out.value ?? keywordPlan(userWords(s.messages));
      let coverage: { path: 'fallback'; problems: string[] } | undefined;
      if (out.value && patched(DESIGN_PLAN_COVERAGE_PATCH)) {
        // The request's own words name resources (CloudFront, a database, ...): a plan that leaves one out is
        // worse than the keyword plan, which has each of them with what it needs.
        const keyword = keywordPlan(userWords(s.messages));
        const have = new Set(out.value.map((r) => r.type));
        const offered = new Set((keyword ?? []).map((r) => r.type));
        const missing = namedTypes(userWords(s.messages)).filter((t) => offered.has(t) && !have.has(t));
        if (keyword && missing.length) {
          resources = keyword;
          coverage = { path: 'fallback', problems: [`the model's plan lacked ${missing.join(', ')}`] };
        }
      }
      if (!resources) {
        throw ApplicationFailure.create({
          type: DESIGN_PLAN_INVALID,
          message:
            `no usable plan: the model's plan was invalid (${out.problems.join('; ').slice(0, 300)}) and the ` +
            'request names no resource the keyword plan knows',
          nonRetryable: true,
        });
      }
      // Unknown dependencies and cycles need no second opinion: drop the edge, and say so.
      const repaired = repairPlanGraph(resources);
      const lv = planLevels(repaired.resources);
      if ('error' in lv) {
        throw ApplicationFailure.create({ type: DESIGN_PLAN_INVALID, message: lv.error, nonRetryable: true });
      }
      return {
        planAttempts: s.planAttempts + 1,
        planError: '',
        resources: repaired.resources,
        levels: lv.levels,
        levelIndex: 0,
        snippets: {},
        tally: out.tally,
        ...recordPath('plan', coverage ?? out, 'keyword plan from the request', repaired.notes),
      };
    },
    async generate(s: DesignState): Promise<Partial<DesignState>> {
      const r = s.resources.find((x) => x.id === s.current)!;
      const out = await acts.structured<GeneratedResource>({
        node: 'generate',
        what: `${r.id} (${r.type}.${r.name})`,
        kind: 'design.generate',
        messages: generateMessages(r, s),
        schema: RESOURCE_SCHEMA,
        accept: bySchema(RESOURCE_SCHEMA),
      });
      const gen = out.value ?? defaultResource(r, s.resources);
      return {
        snippets: { [r.id]: renderResource(r, gen, s.resources) },
        tally: out.tally,
        ...recordPath(`generate:${r.id}`, out, `default body of ${r.type}`),
      };
    },
    async fix(s: DesignState): Promise<Partial<DesignState>> {
      const out = await acts.structured<{ files: { name: string; content: string }[] }>({
        node: 'fix',
        what: `fix pass ${s.fixIterations + 1}`,
        kind: 'design.fix',
        messages: fixMessages(s),
        schema: FIX_SCHEMA,
        accept: bySchema(FIX_SCHEMA),
      });
      return {
        files: out.value ? acceptFixedFiles(s.files, out.value) : s.files,
        // A fix pass that gave nothing usable ends fixing: another pass would see the same input.
        fixIterations: out.value ? s.fixIterations + 1 : maxFix,
        tally: out.tally,
        ...recordPath('fix', out, 'fixing skipped'),
      };
    },
  };
  const pick = (name: keyof typeof nodes) => (structured ? nodes[name] : legacy[name]);

  return new StateGraph<DesignState>(designChannels())
    .addNode('route', pick('route'))
    .addNode('invalid', (s) => {
      const reply =
        s.reply ||
        'I can only help design cloud infrastructure (for example: "an S3 bucket with versioning in eu-west-1").';
      return { reply, messages: [{ role: 'assistant', content: reply }] };
    })
    .addNode('gather', pick('gather'))
    .addNode('ask', async (s, ctx) => {
      const questions = s.questions;
      const answers = await ctx.interrupt<Record<string, string>>(questions, { timeout: answerTimeout, default: {} });
      const answered = questions.filter((q) => answers[q.id]?.trim());
      // An answer to one of the table's questions is that requirement's value, as the user wrote it.
      const byQuestion = new Map(Object.entries(REQUIREMENT_QUESTIONS).map(([k, text]) => [text, k]));
      const given: Record<string, string> = {};
      for (const q of answered) {
        const key = byQuestion.get(q.text);
        if (key) given[key] = answers[q.id]!.trim().slice(0, 200);
      }
      return {
        ...(Object.keys(given).length ? { answered: given, requirements: given } : {}),
        questions: [],
        questionRound: s.questionRound + 1,
        // No answer before the timeout: plan with sensible defaults rather than wait forever.
        gatherDone: answered.length === 0,
        messages: [
          { role: 'assistant', content: questionsText(questions) },
          {
            role: 'user',
            content: questions
              .map((q) => `${q.id}: ${answers[q.id]?.trim() || '(no answer: use a sensible default)'}`)
              .join('\n'),
          },
        ],
      };
    })
    .addNode('plan', pick('plan'))
    .addNode('generate', pick('generate'))
    .addNode('nextLevel', (s) => ({ levelIndex: s.levelIndex + 1 }))
    .addNode('combine', async (s) => {
      const snippets = s.levels.flat().map((id) => s.snippets[id] ?? '');
      return { files: await acts.combine(snippets, regionOf(s.requirements)), fixIterations: 0, best: null };
    })
    .addNode('validate', async (s) => {
      const validation = await acts.validate(
        s.fixIterations === 0 ? 'validate' : `validate (after fix ${s.fixIterations})`,
        s.files,
      );
      const better = !s.best || errorCount(validation) < errorCount(s.best.validation);
      return { validation, ...(better ? { best: { files: s.files, validation } } : {}) };
    })
    .addNode('fix', pick('fix'))
    .addNode('store', async (s) => {
      // When the budget ran out, keep the version with the fewest errors rather than the last attempt.
      const chosen = s.validation?.ok || !s.best ? { files: s.files, validation: s.validation } : s.best;
      const fileRefs = await acts.storeFiles(chosen.files);
      return { fileRefs, files: chosen.files, validation: chosen.validation };
    })
    .addEdge(START, 'route')
    .addConditionalEdges('route', (s) => s.category, { infrastructure: 'gather', invalid: 'invalid', end: END })
    .addEdge('invalid', END)
    .addConditionalEdges('gather', (s) => (s.gatherDone ? 'plan' : 'ask'))
    .addConditionalEdges('ask', (s) => (s.gatherDone ? 'plan' : 'gather'))
    .addConditionalEdges('plan', (s) => (s.planError ? 'plan' : sendLevel(s, 0)))
    .addEdge('generate', 'nextLevel')
    .addConditionalEdges('nextLevel', (s) => (s.levelIndex < s.levels.length ? sendLevel(s, s.levelIndex) : 'combine'))
    .addEdge('combine', 'validate')
    .addConditionalEdges('validate', (s) => (s.validation?.ok ? 'store' : s.fixIterations < maxFix ? 'fix' : 'store'))
    .addEdge('fix', 'validate')
    .addEdge('store', END)
    .compile({
      name: 'infra-design-v2',
      stepLimit: 200,
      onInterrupt,
      onStep: (snap) => onStep?.(snap.node),
    });
}

/** Resets the per-revision parts of a finished state; requirements, conversation and files carry over. */
export function stateForRevision(s: DesignState): DesignState {
  return {
    ...s,
    gatherDone: false,
    questions: [],
    questionRound: 0,
    planAttempts: 0,
    planError: '',
    levelIndex: 0,
    snippets: {},
    fixIterations: 0,
    best: null,
    llmPaths: {},
    notes: [],
  };
}

/**
 * Runs one design graph with the handlers every design workflow shares: status query, answers (signal and
 * validated update), follow-up messages, and the WaitingForInput search attribute.
 */
export async function runDesign<S extends object>(opts: {
  input: InfraDesignInput;
  version: DesignGraphVersion;
  build: (hooks: Pick<DesignGraphOptions, 'onInterrupt' | 'onStep' | 'structured'>) => CompiledGraph<S>;
  initial: Partial<S>;
  /** Where a follow-up restarts, and the update that carries the message. */
  revise: (final: S, message: string) => { startAt: string; state: S; input: Partial<S> };
  view: (s: S) => Omit<DesignStatus, 'designId' | 'graph' | 'phase' | 'node' | 'revision' | 'questions' | 'steps'> & {
    outcome: DesignPhase;
  };
}): Promise<DesignResult> {
  const { input } = opts;
  // Decided once, at the start: a design keeps the node code it started with for its whole run.
  const structured = patched(DESIGN_STRUCTURED_PATCH);
  let phase: DesignPhase = 'running';
  let revision = 1;
  const followUps: string[] = [];
  /** ` (fallback: plan; repaired: route)`: the Web UI's current details show which nodes did not use the model. */
  const pathsText = () => {
    const paths = opts.view(graph.snapshot().state).llmPaths;
    const by = (p: LlmPath) =>
      Object.entries(paths)
        .filter(([, v]) => v === p)
        .map(([k]) => k);
    const parts = (['repaired', 'fallback'] as const)
      .filter((p) => by(p).length)
      .map((p) => `${p}: ${by(p).join(', ')}`);
    return parts.length ? ` (${parts.join('; ')})` : '';
  };
  const graph = opts.build({
    structured,
    onInterrupt: (pending) => {
      upsertSearchAttributes([{ key: SearchAttributeKey.WaitingForInput, value: Boolean(pending) }]);
      const n = Array.isArray(pending?.request) ? pending.request.length : 0;
      setCurrentDetails(pending ? `Waiting for answers to ${n} question(s) (node ${pending.node})` : 'Running');
    },
    onStep: (node) => {
      if (!graph.pendingInterrupt) setCurrentDetails(`Revision ${revision}: ${node ?? ''}${pathsText()}`);
    },
  });
  const pendingQuestions = (): DesignQuestion[] => {
    const req = graph.pendingInterrupt?.request;
    return Array.isArray(req) ? (req as DesignQuestion[]) : [];
  };
  const status = (): DesignStatus => {
    const snap = graph.snapshot();
    const v = opts.view(snap.state);
    return {
      designId: input.designId,
      graph: opts.version,
      phase: snap.interrupt ? 'waiting_for_answers' : phase === 'running' ? 'running' : v.outcome,
      node: snap.node,
      revision,
      questions: pendingQuestions(),
      requirements: v.requirements,
      plan: v.plan,
      files: v.files,
      validation: v.validation,
      terraformValidated: v.terraformValidated,
      reply: v.reply,
      usage: v.usage,
      llmCalls: v.llmCalls,
      llmPaths: v.llmPaths,
      notes: v.notes,
      steps: snap.steps.map(({ step, node, taskIndex }) => ({ step, node, taskIndex })),
    };
  };

  setHandler(designStatusQuery, status);
  setHandler(designAnswersSignal, ({ answers }) => {
    const ids = new Set(pendingQuestions().map((q) => q.id));
    const known = Object.fromEntries(Object.entries(answers ?? {}).filter(([id]) => ids.has(id)));
    if (Object.keys(known).length > 0) graph.resume(known);
  });
  setHandler(
    submitDesignAnswersUpdate,
    ({ answers }) => {
      graph.resume(answers);
      return { accepted: Object.keys(answers), round: revision };
    },
    {
      validator: ({ answers }) => {
        const questions = pendingQuestions();
        if (!graph.pendingInterrupt || questions.length === 0) {
          throw ApplicationFailure.create({
            type: ErrorType.Conflict,
            message: `design ${input.designId} is not waiting for answers (phase: ${status().phase})`,
            nonRetryable: true,
          });
        }
        const ids = new Set(questions.map((q) => q.id));
        const entries = Object.entries(answers ?? {});
        const unknown = entries.filter(([id]) => !ids.has(id)).map(([id]) => id);
        if (entries.length === 0 || unknown.length > 0) {
          throw ApplicationFailure.create({
            type: ErrorType.InvalidRequest,
            message:
              entries.length === 0
                ? 'no answers given'
                : `unknown question id(s): ${unknown.join(', ')}; pending: ${[...ids].join(', ')}`,
            nonRetryable: true,
          });
        }
        const empty = entries.filter(([, text]) => typeof text !== 'string' || !text.trim()).map(([id]) => id);
        if (empty.length > 0) {
          throw ApplicationFailure.create({
            type: ErrorType.InvalidRequest,
            message: `empty answer for: ${empty.join(', ')}`,
            nonRetryable: true,
          });
        }
      },
    },
  );
  setHandler(designMessageSignal, ({ message }) => {
    if (typeof message === 'string' && message.trim()) followUps.push(message.trim());
  });

  let final = await graph.invoke(opts.initial);
  phase = opts.view(final).outcome;
  const followUpWindow = input.followUpWindow ?? DESIGN_DEFAULTS.followUpWindow;
  for (;;) {
    try {
      if (!(await condition(() => followUps.length > 0, followUpWindow))) break;
    } catch (err) {
      // Cancelled after it finished: the design stands, only the follow-up window closes.
      if (isCancellation(err)) break;
      throw err;
    }
    const next = opts.revise(final, followUps.shift()!);
    revision++;
    phase = 'running';
    final = await graph.invoke(next.input, { startAt: next.startAt, state: next.state });
    phase = opts.view(final).outcome;
  }
  setCurrentDetails(`Finished (${phase}), revision ${revision}${pathsText()}`);
  const { steps, questions: _q, ...rest } = status();
  return { ...rest, phase, steps: steps.length };
}

/** View of a v2 state for the status query and the result. */
export function viewDesignState(s: DesignState) {
  const outcome: DesignPhase = s.category === 'invalid' ? 'invalid' : s.category === 'end' ? 'ended' : 'completed';
  return {
    outcome,
    requirements: s.requirements,
    plan: s.resources.length ? { resources: s.resources, levels: s.levels } : undefined,
    files: s.fileRefs,
    validation: s.validation ?? undefined,
    terraformValidated: Boolean(s.validation?.ok) && s.fileRefs.length > 0,
    reply: s.reply || undefined,
    usage: s.tally.usage,
    llmCalls: s.tally.calls,
    llmPaths: s.llmPaths,
    notes: s.notes,
  };
}
