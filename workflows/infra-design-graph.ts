/**
 * The v2 design graph (route → gather ⇄ human → plan → generate per level in parallel → combine →
 * validate ⇄ fix → store) and `runDesign`, the handlers and follow-up loop shared by both design workflows.
 * Workflow code, but not a workflow itself: the barrel exports only the workflow files.
 */
import {
  ApplicationFailure,
  condition,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { ErrorType } from '../common/errors';
import { SearchAttribute, type ChatMessage } from '../common/types';
import { designAnswersSignal, designMessageSignal, designStatusQuery, submitDesignAnswersUpdate } from './definitions';
import { channels, END, Send, START, StateGraph, type CompiledGraph, type PendingInterrupt } from './graph';
import {
  addTally,
  DESIGN_DEFAULTS,
  designActivities,
  emptyTally,
  FIX_SCHEMA,
  GATHER_SCHEMA,
  normalizePlan,
  parseJson,
  PLAN_SCHEMA,
  planLevels,
  questionsText,
  renderResource,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
  salvageResources,
  tallyOf,
  type GeneratedResource,
  type UsageTally,
} from './infra-design-common';
import type {
  DesignFileRef,
  DesignGraphVersion,
  DesignPhase,
  DesignQuestion,
  DesignResult,
  DesignStatus,
  InfraDesignInput,
  PlannedResource,
  TerraformValidation,
} from './infra-design-types';

/** Failure type when the model cannot produce a usable plan even with the error explained to it. */
export const DESIGN_PLAN_INVALID = 'DesignPlanInvalid';

const WAITING_KEY = defineSearchAttributeKey(SearchAttribute.WaitingForInput, SearchAttributeType.BOOL);

export interface DesignState {
  request: string;
  messages: ChatMessage[];
  category: '' | 'infrastructure' | 'invalid' | 'end';
  reply: string;
  requirements: Record<string, string>;
  /** Questions `ask` waits on (numbered q1..qN per round). */
  questions: DesignQuestion[];
  questionRound: number;
  gatherDone: boolean;
  planAttempts: number;
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
}

export function designChannels() {
  return {
    request: channels.replace(''),
    messages: channels.append<ChatMessage>(),
    category: channels.replace<DesignState['category']>(''),
    reply: channels.replace(''),
    requirements: channels.merge<string>(),
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
  };
}

const system = (node: string, text: string): ChatMessage => ({
  role: 'system',
  content: `ainode design: ${node}\n${text}`,
});

const transcript = (s: DesignState) =>
  s.messages.map((m) => `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`).join('\n');

/** Errors of a validation; a file that does not parse outweighs any number of other errors. */
const errorCount = (v: TerraformValidation) =>
  v.diagnostics.reduce((n, d) => n + (d.severity !== 'error' ? 0 : d.check === 'hcl-parse' ? 1000 : 1), 0);

/** `ap-northeast-2` out of "Seoul (ap-northeast-2)". */
export function regionOf(requirements: Record<string, string>): string | undefined {
  return /[a-z]{2}(-gov)?-[a-z]+-\d/.exec(requirements.region ?? '')?.[0];
}

/** Files a fix pass may write: the module's .tf files, by base name. */
function acceptFixedFiles(current: Record<string, string>, raw: unknown): Record<string, string> {
  const out = { ...current };
  const list = (raw as { files?: { name?: unknown; content?: unknown }[] })?.files;
  for (const f of Array.isArray(list) ? list : []) {
    const name = String(f?.name ?? '')
      .split('/')
      .pop();
    if (name && /^[\w-]+\.tf$/.test(name) && typeof f.content === 'string') out[name] = f.content;
  }
  return out;
}

export interface DesignGraphOptions {
  input: InfraDesignInput;
  onInterrupt?: (pending: PendingInterrupt | undefined) => void;
  onStep?: (node: string | undefined) => void;
}

/** The v2 graph. Exported so the bench and tests can build it the same way. */
export function buildInfraDesignGraph({ input, onInterrupt, onStep }: DesignGraphOptions): CompiledGraph<DesignState> {
  const acts = designActivities(input);
  const maxFix = input.maxFixIterations ?? DESIGN_DEFAULTS.maxFixIterations;
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const answerTimeout = input.answerTimeout ?? DESIGN_DEFAULTS.answerTimeout;
  const sendLevel = (s: DesignState, i: number) =>
    (s.levels[i] ?? []).map((id) => new Send<DesignState>('generate', { current: id }));

  return new StateGraph<DesignState>(designChannels())
    .addNode('route', async (s) => {
      if (!s.request.trim()) return { category: 'end', reply: 'The request is empty.' };
      const res = await acts.chat(
        'route',
        'classify the request',
        [
          system(
            'route',
            'Classify the user message. category "infrastructure": it asks to design or build cloud infrastructure. ' +
              'category "invalid": anything else (then reply with one polite sentence explaining what you can do). ' +
              'category "end": empty, abusive or meaningless. Answer in JSON.',
          ),
          { role: 'user', content: s.request },
        ],
        ROUTE_SCHEMA,
      );
      const out = parseJson<{ category?: string; reply?: string }>(res?.content ?? '');
      // A reply we cannot read is treated as a request: `gather` will ask if it is unclear.
      const category = out?.category === 'invalid' || out?.category === 'end' ? out.category : 'infrastructure';
      return { category, reply: out?.reply ?? '', tally: tallyOf(res) };
    })
    .addNode('invalid', (s) => {
      const reply =
        s.reply ||
        'I can only help design cloud infrastructure (for example: "an S3 bucket with versioning in eu-west-1").';
      return { reply, messages: [{ role: 'assistant', content: reply }] };
    })
    .addNode('gather', async (s) => {
      const res = await acts.chat(
        'gather',
        `requirements, round ${s.questionRound + 1}`,
        [
          system(
            'gather',
            'You collect requirements for a cloud infrastructure design: region, environment (dev/staging/prod), ' +
              'scale, budget, data stores. Fill "requirements" with what the conversation states. In "questions" ' +
              'ask only for what is still missing and matters (at most 5 short questions); ask nothing when enough is known.',
          ),
          { role: 'user', content: `${transcript(s)}\nKnown requirements: ${JSON.stringify(s.requirements)}` },
        ],
        GATHER_SCHEMA,
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
    })
    .addNode('ask', async (s, ctx) => {
      const questions = s.questions;
      const answers = await ctx.interrupt<Record<string, string>>(questions, { timeout: answerTimeout, default: {} });
      const answered = questions.filter((q) => answers[q.id]?.trim());
      return {
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
    .addNode('plan', async (s) => {
      const retry: ChatMessage[] = s.planError
        ? [{ role: 'user', content: `Your previous plan was rejected: ${s.planError}. Return a corrected plan.` }]
        : [];
      const res = await acts.chat(
        'plan',
        s.planError ? 'resource plan (retry)' : 'resource plan',
        [
          system(
            'plan',
            'Plan the Terraform resources (AWS provider unless stated otherwise). Each resource: a short unique id, ' +
              'its Terraform type (e.g. aws_s3_bucket), a snake_case name, dependsOn (ids of resources it needs) and ' +
              'its requirements in one sentence. No cycles.',
          ),
          {
            role: 'user',
            content: `${transcript(s)}\nRequirements: ${JSON.stringify(s.requirements)}`,
          },
          ...retry,
        ],
        PLAN_SCHEMA,
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
    })
    .addNode('generate', async (s) => {
      const r = s.resources.find((x) => x.id === s.current)!;
      const deps = r.dependsOn
        .map((d) => s.resources.find((x) => x.id === d))
        .map((d) => (d ? `${d.id} → ${d.type}.${d.name}` : ''))
        .filter(Boolean);
      const res = await acts.chat(
        'generate',
        `${r.id} (${r.type}.${r.name})`,
        [
          system(
            'generate',
            'Describe ONE Terraform resource as JSON: "attributes" (argument name → value; reference other resources ' +
              'by address, e.g. aws_s3_bucket.main.id, and variables as var.name), "blocks" (nested blocks, each ' +
              '{type, attributes}) and optional "outputs" ({name, value}).',
          ),
          {
            role: 'user',
            content:
              `Resource: ${r.type}.${r.name}\nPurpose: ${r.requirements}\n` +
              `Dependencies: ${deps.join('; ') || 'none'}\nRequirements: ${JSON.stringify(s.requirements)}`,
          },
        ],
        RESOURCE_SCHEMA,
      );
      const gen = parseJson<GeneratedResource>(res?.content ?? '') ?? {};
      return { snippets: { [r.id]: renderResource(r, gen, s.resources) }, tally: tallyOf(res) };
    })
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
    .addNode('fix', async (s) => {
      const res = await acts.chat(
        'fix',
        `fix pass ${s.fixIterations + 1}`,
        [
          system(
            'fix',
            'You fix Terraform files. Given the files and the validator output, return every file that needs a ' +
              'change, complete, as {files: [{name, content}]}. Keep everything that is correct.',
          ),
          {
            role: 'user',
            content:
              `Validator output:\n${s.validation?.output ?? ''}\n\n` +
              Object.entries(s.files)
                .map(([name, content]) => `--- ${name}\n${content}`)
                .join('\n'),
          },
        ],
        FIX_SCHEMA,
      );
      return {
        files: acceptFixedFiles(s.files, parseJson(res?.content ?? '')),
        fixIterations: s.fixIterations + 1,
        tally: tallyOf(res),
      };
    })
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
  };
}

/**
 * Runs one design graph with the handlers every design workflow shares: status query, answers (signal and
 * validated update), follow-up messages, and the WaitingForInput search attribute.
 */
export async function runDesign<S extends object>(opts: {
  input: InfraDesignInput;
  version: DesignGraphVersion;
  build: (hooks: Pick<DesignGraphOptions, 'onInterrupt' | 'onStep'>) => CompiledGraph<S>;
  initial: Partial<S>;
  /** Where a follow-up restarts, and the update that carries the message. */
  revise: (final: S, message: string) => { startAt: string; state: S; input: Partial<S> };
  view: (s: S) => Omit<DesignStatus, 'designId' | 'graph' | 'phase' | 'node' | 'revision' | 'questions' | 'steps'> & {
    outcome: DesignPhase;
  };
}): Promise<DesignResult> {
  const { input } = opts;
  let phase: DesignPhase = 'running';
  let revision = 1;
  const followUps: string[] = [];
  const graph = opts.build({
    onInterrupt: (pending) => {
      upsertSearchAttributes([{ key: WAITING_KEY, value: Boolean(pending) }]);
      const n = Array.isArray(pending?.request) ? pending.request.length : 0;
      setCurrentDetails(pending ? `Waiting for answers to ${n} question(s) (node ${pending.node})` : 'Running');
    },
    onStep: (node) => {
      if (!graph.pendingInterrupt) setCurrentDetails(`Revision ${revision}: ${node ?? ''}`);
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
  while (await condition(() => followUps.length > 0, followUpWindow)) {
    const next = opts.revise(final, followUps.shift()!);
    revision++;
    phase = 'running';
    final = await graph.invoke(next.input, { startAt: next.startAt, state: next.state });
    phase = opts.view(final).outcome;
  }
  setCurrentDetails(`Finished (${phase}), revision ${revision}`);
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
  };
}
