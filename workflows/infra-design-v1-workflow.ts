/**
 * infraDesignV1Workflow: the first-generation design agent on the same graph engine, to show the engine is
 * general: consultant (gathers requirements, ⇄ human) → prompt generator → engineer ⇄ lead (the lead approves
 * or sends the draft back with review notes, bounded) → combine → validate → store.
 */
import { channels, END, START, StateGraph, type CompiledGraph } from './graph';
import {
  addTally,
  DESIGN_DEFAULTS,
  designActivities,
  emptyTally,
  GATHER_SCHEMA,
  hclName,
  parseJson,
  questionsText,
  renderResource,
  RESOURCE_SCHEMA,
  tallyOf,
  type GeneratedResource,
  type UsageTally,
} from './infra-design-common';
import { regionOf, runDesign, type DesignGraphOptions } from './infra-design-graph';
import type { ChatMessage } from '../common/types';
import type {
  DesignFileRef,
  DesignPhase,
  DesignQuestion,
  DesignResult,
  InfraDesignInput,
  PlannedResource,
  TerraformValidation,
} from './infra-design-types';

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
}

const ENGINEER_SCHEMA = {
  type: 'object',
  properties: {
    resources: {
      type: 'array',
      items: {
        type: 'object',
        properties: { type: { type: 'string' }, name: { type: 'string' }, ...RESOURCE_SCHEMA.properties },
        required: ['type', 'name', 'attributes'],
      },
    },
  },
  required: ['resources'],
};
const LEAD_SCHEMA = {
  type: 'object',
  properties: { approved: { type: 'boolean' }, notes: { type: 'string' } },
  required: ['approved', 'notes'],
};

const sys = (node: string, text: string): ChatMessage => ({
  role: 'system',
  content: `ainode design: ${node}\n${text}`,
});
const transcript = (s: V1State) =>
  s.messages.map((m) => `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`).join('\n');

function buildV1Graph({ input, onInterrupt, onStep }: DesignGraphOptions): CompiledGraph<V1State> {
  const acts = designActivities(input);
  const maxRounds = input.maxQuestionRounds ?? DESIGN_DEFAULTS.maxQuestionRounds;
  const maxReviews = input.maxReviewRounds ?? DESIGN_DEFAULTS.maxReviewRounds;
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
    })
      .addNode('consultant', async (s) => {
        const res = await acts.chat(
          'consultant',
          `requirements, round ${s.questionRound + 1}`,
          [
            sys(
              'consultant',
              'You are a cloud consultant. Fill "requirements" from the conversation and ask in "questions" only what is missing (at most 5).',
            ),
            { role: 'user', content: `${transcript(s)}\nKnown requirements: ${JSON.stringify(s.requirements)}` },
          ],
          GATHER_SCHEMA,
        );
        const out = parseJson<{ requirements?: Record<string, unknown>; questions?: unknown[] }>(res?.content ?? '');
        const requirements = Object.fromEntries(
          Object.entries(out?.requirements ?? {}).filter(
            (e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== '',
          ),
        );
        const asked = (out?.questions ?? [])
          .map((q) => String(q).trim())
          .filter(Boolean)
          .slice(0, 5);
        const done = asked.length === 0 || s.questionRound >= maxRounds;
        return {
          requirements,
          gatherDone: done,
          questions: done ? [] : asked.map((text, i) => ({ id: `q${i + 1}`, text })),
          tally: tallyOf(res),
        };
      })
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
      .addNode('promptGenerator', async (s) => {
        const res = await acts.chat('promptGenerator', 'engineering brief', [
          sys('promptGenerator', 'Write a concise engineering brief for a Terraform engineer from this conversation.'),
          { role: 'user', content: `${transcript(s)}\nRequirements: ${JSON.stringify(s.requirements)}` },
        ]);
        return { engineeringPrompt: res?.content.trim() || transcript(s), tally: tallyOf(res) };
      })
      .addNode('engineer', async (s) => {
        const res = await acts.chat(
          'engineer',
          s.reviewNotes ? `draft ${s.reviewRounds + 1} (with review notes)` : 'draft 1',
          [
            sys(
              'engineer',
              'You are a Terraform engineer. Describe every resource as JSON: type, name, attributes, blocks, outputs.',
            ),
            {
              role: 'user',
              content: s.engineeringPrompt + (s.reviewNotes ? `\n\nReview notes to address:\n${s.reviewNotes}` : ''),
            },
          ],
          ENGINEER_SCHEMA,
        );
        const list =
          parseJson<{ resources?: (GeneratedResource & { type?: string; name?: string })[] }>(res?.content ?? '')
            ?.resources ?? [];
        const valid = list.filter((r) => typeof r.type === 'string' && /^[a-z][a-z0-9]*_[a-z0-9_]+$/.test(r.type));
        const resources: PlannedResource[] = valid.map((r, i) => ({
          id: `r${i + 1}`,
          type: r.type!,
          name: hclName(r.name ?? `r${i + 1}`),
          dependsOn: [],
          requirements: '',
        }));
        const snippets = resources.map((r, i) => renderResource(r, valid[i] ?? {}, resources));
        return { resources, snippets, tally: tallyOf(res) };
      })
      .addNode('lead', async (s) => {
        const res = await acts.chat(
          'lead',
          `review ${s.reviewRounds + 1}`,
          [
            sys(
              'lead',
              'You are the lead engineer. Approve the draft, or return short review notes on what must change.',
            ),
            { role: 'user', content: `Brief:\n${s.engineeringPrompt}\n\nDraft:\n${s.snippets.join('\n\n')}` },
          ],
          LEAD_SCHEMA,
        );
        const out = parseJson<{ approved?: boolean; notes?: string }>(res?.content ?? '');
        // No answer from the lead at all: nothing to review with, so the draft goes on.
        return {
          approved: res === undefined || out?.approved === true,
          reviewNotes: out?.notes ?? '',
          reviewRounds: s.reviewRounds + 1,
          tally: tallyOf(res),
        };
      })
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
    }),
  });
}
