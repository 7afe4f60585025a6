/**
 * infraDesignV1Workflow: the first-generation design agent on the same graph engine, to show the engine is
 * general: consultant (gathers requirements, ⇄ human) → prompt generator → engineer ⇄ lead (the lead approves
 * or sends the draft back with review notes, bounded) → combine → validate → store.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { channels, END, START, StateGraph, type CompiledGraph } from '../graph';
import { defaultResource, isKnownType } from './catalog';
import {
  addTally,
  AWS_TYPE_SCHEMA,
  bySchema,
  DESIGN_DEFAULTS,
  DESIGN_PLAN_INVALID,
  designActivities,
  emptyTally,
  GATHER_SCHEMA,
  hclName,
  MAX_PLAN_RESOURCES,
  normalizeType,
  parseJson,
  questionsText,
  renderResource,
  RESOURCE_PROPERTIES,
  tallyOf,
  text,
  type GeneratedResource,
  type JsonSchema,
  validateJson,
  type UsageTally,
} from './common';
import { keywordPlan, keywordRequirements, repairPlanGraph } from './fallback';
import { recordPath, regionOf, runDesign, userWords, type DesignGraphOptions } from './graph';
import type { ChatMessage } from '../../contracts/llm';
import type {
  DesignFileRef,
  DesignPhase,
  DesignQuestion,
  DesignResult,
  InfraDesignInput,
  LlmPath,
  PlannedResource,
  TerraformValidation,
} from '../../contracts/design';

interface V1State {
  messages: ChatMessage[];
  requirements: Record<string, string>;
  questions: DesignQuestion[];
  questionRound: number;
  gatherDone: boolean;
  engineeringPrompt: string;
  resources: PlannedResource[];
  snippets: string[];
  reviewNotes: string;
  reviewRounds: number;
  approved: boolean;
  files: Record<string, string>;
  validation: TerraformValidation | null;
  fileRefs: DesignFileRef[];
  tally: UsageTally;
  llmPaths: Record<string, LlmPath>;
  notes: string[];
}

type EngineerResource = GeneratedResource & { type: string; name: string };

const ENGINEER_SCHEMA: JsonSchema = {
  type: 'object',
  properties: {
    resources: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_PLAN_RESOURCES,
      items: {
        type: 'object',
        properties: { type: AWS_TYPE_SCHEMA, name: text(40), ...RESOURCE_PROPERTIES },
        required: ['type', 'name', 'attributes'],
        additionalProperties: false,
      },
    },
  },
  required: ['resources'],
  additionalProperties: false,
};
const LEAD_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { approved: { type: 'boolean' }, notes: text(300) },
  required: ['approved', 'notes'],
  additionalProperties: false,
};

/** The engineer's draft: types coerced to Terraform spelling first, then the schema. */
function acceptDraft(parsed: unknown): { value: EngineerResource[] } | { error: string } {
  const list = (parsed as { resources?: unknown } | null)?.resources;
  const coerced = Array.isArray(list)
    ? {
        resources: list.map((r: unknown) =>
          r && typeof r === 'object' && typeof (r as { type?: unknown }).type === 'string'
            ? { ...r, type: normalizeType((r as { type: string }).type) }
            : r,
        ),
      }
    : parsed;
  const errors = validateJson(coerced, ENGINEER_SCHEMA);
  return errors.length
    ? { error: errors.join('; ') }
    : { value: (coerced as { resources: EngineerResource[] }).resources };
}

const sys = (node: string, text: string): ChatMessage => ({
  role: 'system',
  content: `ainode design: ${node}\n${text}`,
});
const transcript = (s: V1State) =>
  s.messages.map((m) => `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`).join('\n');

/** Planned resources (ids r1..rN) and their HCL from the engineer's draft. */
function draftToPlan(list: EngineerResource[]): { resources: PlannedResource[]; snippets: string[] } {
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

function buildV1Graph({ input, onInterrupt, onStep, structured = true }: DesignGraphOptions): CompiledGraph<V1State> {
  const acts = designActivities(input);
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const maxReviews = input.maxReviewRounds ?? DESIGN_DEFAULTS.maxReviewRounds;
  const consultantMessages = (s: V1State): ChatMessage[] => [
    sys(
      'consultant',
      'You are a cloud consultant. Fill "requirements" from the conversation and ask in "questions" only what is missing (at most 3).',
    ),
    { role: 'user', content: `${transcript(s)}\nKnown requirements: ${JSON.stringify(s.requirements)}` },
  ];
  const engineerMessages = (s: V1State): ChatMessage[] => [
    sys(
      'engineer',
      'You are a Terraform engineer. Describe every resource as JSON: type, name, attributes, blocks, outputs.',
    ),
    {
      role: 'user',
      content: s.engineeringPrompt + (s.reviewNotes ? `\n\nReview notes to address:\n${s.reviewNotes}` : ''),
    },
  ];
  const leadMessages = (s: V1State): ChatMessage[] => [
    sys('lead', 'You are the lead engineer. Approve the draft, or return short review notes on what must change.'),
    { role: 'user', content: `Brief:\n${s.engineeringPrompt}\n\nDraft:\n${s.snippets.join('\n\n')}` },
  ];
  const briefMessages = (s: V1State): ChatMessage[] => [
    sys('promptGenerator', 'Write a concise engineering brief for a Terraform engineer from this conversation.'),
    { role: 'user', content: `${transcript(s)}\nRequirements: ${JSON.stringify(s.requirements)}` },
  ];
  const askedOf = (questions: unknown[], s: V1State) => {
    const asked = questions
      .map((q) => String(q).trim())
      .filter(Boolean)
      .slice(0, 5);
    const done = asked.length === 0 || s.questionRound >= maxRounds;
    return { gatherDone: done, questions: done ? [] : asked.map((text, i) => ({ id: `q${i + 1}`, text })) };
  };
  const nonEmpty = (o: Record<string, unknown>) =>
    Object.fromEntries(
      Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== ''),
    );

  // The nodes of designs started before DESIGN_STRUCTURED_PATCH, kept so those designs replay.
  const legacy = {
    async consultant(s: V1State): Promise<Partial<V1State>> {
      const res = await acts.chat(
        'consultant',
        `requirements, round ${s.questionRound + 1}`,
        consultantMessages(s),
        GATHER_SCHEMA,
        'design.gather',
      );
      const out = parseJson<{ requirements?: Record<string, unknown>; questions?: unknown[] }>(res?.content ?? '');
      return {
        requirements: nonEmpty(out?.requirements ?? {}),
        ...askedOf(out?.questions ?? [], s),
        tally: tallyOf(res),
      };
    },
    async promptGenerator(s: V1State): Promise<Partial<V1State>> {
      const res = await acts.chat('promptGenerator', 'engineering brief', briefMessages(s), undefined, 'design.plan');
      return { engineeringPrompt: res?.content.trim() || transcript(s), tally: tallyOf(res) };
    },
    async engineer(s: V1State): Promise<Partial<V1State>> {
      const res = await acts.chat(
        'engineer',
        s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
        engineerMessages(s),
        ENGINEER_SCHEMA,
        'design.plan',
      );
      const list = parseJson<{ resources?: EngineerResource[] }>(res?.content ?? '')?.resources ?? [];
      return { ...draftToPlan(Array.isArray(list) ? list : []), tally: tallyOf(res) };
    },
    async lead(s: V1State): Promise<Partial<V1State>> {
      const res = await acts.chat(
        'lead',
        `review ${s.reviewRounds + 1}`,
        leadMessages(s),
        LEAD_SCHEMA,
        'design.gather',
      );
      const out = parseJson<{ approved?: boolean; notes?: string }>(res?.content ?? '');
      // No answer from the lead at all: nothing to review with, so the draft goes on.
      return {
        approved: res === undefined || out?.approved === true,
        reviewNotes: out?.notes ?? '',
        reviewRounds: s.reviewRounds + 1,
        tally: tallyOf(res),
      };
    },
  };

  const nodes: typeof legacy = {
    async consultant(s) {
      const out = await acts.structured<{ requirements: Record<string, string>; questions: string[] }>({
        node: 'consultant',
        what: `requirements, round ${s.questionRound + 1}`,
        kind: 'design.gather',
        messages: consultantMessages(s),
        schema: GATHER_SCHEMA,
        accept: bySchema(GATHER_SCHEMA),
      });
      if (!out.value) {
        return {
          requirements: keywordRequirements(userWords(s.messages)),
          gatherDone: true,
          questions: [],
          tally: out.tally,
          ...recordPath('consultant', out, 'requirements from keywords, no questions'),
        };
      }
      return {
        requirements: nonEmpty(out.value.requirements),
        ...askedOf(out.value.questions, s),
        tally: out.tally,
        ...recordPath('consultant', out, ''),
      };
    },
    async promptGenerator(s) {
      const res = await acts.text('promptGenerator', 'engineering brief', briefMessages(s), 'design.plan');
      const brief = res?.content.trim();
      return {
        engineeringPrompt: brief || transcript(s),
        tally: tallyOf(res),
        ...recordPath(
          'promptGenerator',
          { path: brief ? 'model' : 'fallback', problems: brief ? [] : ['no brief'] },
          'the transcript as the brief',
        ),
      };
    },
    async engineer(s) {
      const out = await acts.structured<EngineerResource[]>({
        node: 'engineer',
        what: s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
        kind: 'design.plan',
        messages: engineerMessages(s),
        schema: ENGINEER_SCHEMA,
        accept: acceptDraft,
      });
      if (out.value) return { ...draftToPlan(out.value), tally: out.tally, ...recordPath('engineer', out, '') };
      const planned = keywordPlan(userWords(s.messages));
      if (!planned) {
        throw ApplicationFailure.create({
          type: DESIGN_PLAN_INVALID,
          message:
            `no usable draft: the model's draft was invalid (${out.problems.join('; ').slice(0, 300)}) and the ` +
            'request names no resource the keyword plan knows',
          nonRetryable: true,
        });
      }
      const { resources, notes } = repairPlanGraph(planned.filter((r) => isKnownType(r.type)));
      const snippets = resources.map((r) => renderResource(r, defaultResource(r, resources), resources));
      return {
        resources,
        snippets,
        tally: out.tally,
        ...recordPath('engineer', out, 'keyword plan with default bodies', notes),
      };
    },
    async lead(s) {
      const out = await acts.structured<{ approved: boolean; notes: string }>({
        node: 'lead',
        what: `review ${s.reviewRounds + 1}`,
        kind: 'design.gather',
        messages: leadMessages(s),
        schema: LEAD_SCHEMA,
        accept: bySchema(LEAD_SCHEMA),
      });
      // No usable review: nothing to review with, so the draft goes on.
      return {
        approved: out.value?.approved ?? true,
        reviewNotes: out.value?.notes.trim() ?? '',
        reviewRounds: s.reviewRounds + 1,
        tally: out.tally,
        ...recordPath('lead', out, 'draft approved'),
      };
    },
  };
  const pick = (name: keyof typeof nodes) => (structured ? nodes[name] : legacy[name]);

  return (
    new StateGraph<V1State>({
      messages: channels.append<ChatMessage>(),
      requirements: channels.merge<string>(),
      questions: channels.replace<DesignQuestion[]>([]),
      questionRound: channels.replace(0),
      gatherDone: channels.replace(false),
      engineeringPrompt: channels.replace(''),
      resources: channels.replace<PlannedResource[]>([]),
      snippets: channels.replace<string[]>([]),
      reviewNotes: channels.replace(''),
      reviewRounds: channels.replace(0),
      approved: channels.replace(false),
      files: channels.replace<Record<string, string>>({}),
      validation: channels.replace<TerraformValidation | null>(null),
      fileRefs: channels.replace<DesignFileRef[]>([]),
      tally: channels.reduce(emptyTally, addTally),
      llmPaths: channels.merge<LlmPath>(),
      notes: channels.append<string>(),
    })
      .addNode('consultant', pick('consultant'))
      .addNode('ask', async (s, ctx) => {
        const answers = await ctx.interrupt<Record<string, string>>(s.questions, {
          timeout: input.answerTimeout ?? DESIGN_DEFAULTS.answerTimeout,
          default: {},
        });
        return {
          questions: [],
          questionRound: s.questionRound + 1,
          gatherDone: !s.questions.some((q) => answers[q.id]?.trim()),
          messages: [
            { role: 'assistant', content: questionsText(s.questions) },
            {
              role: 'user',
              content: s.questions.map((q) => `${q.id}: ${answers[q.id]?.trim() || '(use a default)'}`).join('\n'),
            },
          ],
        };
      })
      .addNode('promptGenerator', pick('promptGenerator'))
      .addNode('engineer', pick('engineer'))
      .addNode('lead', pick('lead'))
      .addNode('combine', async (s) => ({ files: await acts.combine(s.snippets, regionOf(s.requirements)) }))
      .addNode('validate', async (s) => ({ validation: await acts.validate('validate', s.files) }))
      .addNode('store', async (s) => ({ fileRefs: await acts.storeFiles(s.files) }))
      .addEdge(START, 'consultant')
      .addConditionalEdges('consultant', (s) => (s.gatherDone ? 'promptGenerator' : 'ask'))
      .addConditionalEdges('ask', (s) => (s.gatherDone ? 'promptGenerator' : 'consultant'))
      .addEdge('promptGenerator', 'engineer')
      .addEdge('engineer', 'lead')
      // Bounded review: after maxReviewRounds the last draft goes on, and validation says how good it is.
      .addConditionalEdges('lead', (s) => (s.approved || s.reviewRounds >= maxReviews ? 'combine' : 'engineer'))
      .addEdge('combine', 'validate')
      .addEdge('validate', 'store')
      .addEdge('store', END)
      .compile({ name: 'infra-design-v1', stepLimit: 100, onInterrupt, onStep: (snap) => onStep?.(snap.node) })
  );
}

/** The v1 design agent; same API, handlers and result shape as infraDesignWorkflow. */
export async function infraDesignV1Workflow(input: InfraDesignInput): Promise<DesignResult> {
  return runDesign<V1State>({
    input,
    version: 'v1',
    build: (hooks) => buildV1Graph({ input, ...hooks }),
    initial: { messages: [{ role: 'user', content: input.request }] },
    revise: (final, message) => ({
      startAt: 'consultant',
      state: {
        ...final,
        gatherDone: false,
        questions: [],
        questionRound: 0,
        reviewRounds: 0,
        reviewNotes: '',
        approved: false,
        llmPaths: {},
        notes: [],
      },
      input: { messages: [{ role: 'user', content: `Change request: ${message}` }] },
    }),
    view: (s) => ({
      outcome: 'completed' as DesignPhase,
      requirements: s.requirements,
      plan: s.resources.length ? { resources: s.resources, levels: [s.resources.map((r) => r.id)] } : undefined,
      files: s.fileRefs,
      validation: s.validation ?? undefined,
      terraformValidated: Boolean(s.validation?.ok) && s.fileRefs.length > 0,
      reply: s.reviewNotes || undefined,
      usage: s.tally.usage,
      llmCalls: s.tally.calls,
      llmPaths: s.llmPaths,
      notes: s.notes,
    }),
  });
}
