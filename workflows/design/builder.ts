/**
 * The design graph builder shared by v1 and v2: the state every design graph keeps (conversation,
 * requirements, questions, resources, files, validation, usage, paths, notes) and its channels, the graph's
 * start (current or pre-patch LLM nodes) and compile, and the node implementations both graphs use:
 * requirements from the model with the keyword fallback, the human `ask`, combine, the path record of a
 * structured call, the no-plan failure, the status view and the reset of a revision.
 * Workflow code, but not a workflow itself: the barrel exports only the workflow files.
 */
import { ApplicationFailure, log } from '@temporalio/workflow';
import { ErrorType } from '../../common/errors';
import type { ChatMessage } from '../../contracts/llm';
import type {
  CheckStatus,
  DesignFileRef,
  DesignPhase,
  DesignRevision,
  DesignPlan,
  DesignQuestion,
  InfraDesignInput,
  LlmPath,
  PlannedResource,
  TerraformValidation,
} from '../../contracts/design';
import { channels, StateGraph, type Channels, type CompiledGraph, type NodeFn, type PendingInterrupt } from '../graph';
import { addTally, emptyTally, type DesignActs, type StructuredOutcome, type UsageTally } from './activities';
import { keywordRequirements } from './fallback';
import { designDiagram } from './diagram';
import { questionsText } from './prompts';
import { GATHER_SCHEMA } from './schemas';
import { DESIGN_DEFAULTS } from './settings';

/** The state both design graphs keep; each graph adds its own keys. */
export interface DesignBase {
  messages: ChatMessage[];
  requirements: Record<string, string>;
  /** Questions `ask` waits on (numbered q1..qN per round). */
  questions: DesignQuestion[];
  questionRound: number;
  gatherDone: boolean;
  resources: PlannedResource[];
  files: Record<string, string>;
  validation: TerraformValidation | null;
  fileRefs: DesignFileRef[];
  tally: UsageTally;
  /** Which path gave each structured answer (the node's name, or `generate:<id>`). */
  llmPaths: Record<string, LlmPath>;
  /** Repairs and fallbacks, one line each. */
  notes: string[];
  /** The revisions committed to the design's git repository (designs started before DESIGN_SCHEMA_PATCH: none). */
  revisions: DesignRevision[];
}

/** Sees every node run start and end (the progress events of `runDesign`); no commands, replay-safe. */
export interface NodeTracker {
  start(node: string, state: DesignBase & { current?: string }): void;
  end(node: string, state: DesignBase & { current?: string }, update: Partial<DesignBase> | void): void;
}

/** What a design graph is built from: the input, and the hooks `runDesign` passes. */
export interface DesignGraphOptions {
  input: InfraDesignInput;
  onInterrupt?: (pending: PendingInterrupt | undefined) => void;
  onStep?: (node: string | undefined) => void;
  /** false: the node code of designs started before DESIGN_STRUCTURED_PATCH (default true). */
  structured?: boolean;
  /**
   * DESIGN_SCHEMA_PATCH: the generator works from the provider schema, a revision starts from the previous
   * files, and every revision is committed to git (default false: designs started before it replay unchanged).
   */
  providerSchema?: boolean;
  /** v1, DESIGN_V1_SCHEMA_PATCH: the engineer's draft is repaired against the schema, revisions keep the design. */
  schemaDraft?: boolean;
  /** The revision being run (1, then one more per follow-up) and what asked for it. */
  revision?: () => { revision: number; message: string };
  track?: NodeTracker;
}

/** A node that calls the model; each has a current and a pre-patch (legacy.ts) implementation. */
export type DesignNode<S> = (s: S) => Promise<Partial<S>>;

/**
 * A design graph with the shared channels plus `own`, and its LLM nodes: `nodes`, or `legacy` for a design
 * started before DESIGN_STRUCTURED_PATCH. The caller adds the other nodes and the edges, then `compileDesign`.
 */
export function designGraph<S extends DesignBase, K extends string>(
  own: Channels<Omit<S, keyof DesignBase>>,
  structured: boolean,
  nodes: Record<K, DesignNode<S>>,
  legacy: Record<K, DesignNode<S>>,
  track?: NodeTracker,
): StateGraph<S> {
  const base: Channels<DesignBase> = {
    messages: channels.append<ChatMessage>(),
    requirements: channels.merge<string>(),
    questions: channels.replace<DesignQuestion[]>([]),
    questionRound: channels.replace(0),
    gatherDone: channels.replace(false),
    resources: channels.replace<PlannedResource[]>([]),
    files: channels.replace<Record<string, string>>({}),
    validation: channels.replace<TerraformValidation | null>(null),
    fileRefs: channels.replace<DesignFileRef[]>([]),
    tally: channels.reduce(emptyTally, addTally),
    llmPaths: channels.merge<LlmPath>(),
    notes: channels.append<string>(),
    revisions: channels.append<DesignRevision>(),
  };
  const graph = new StateGraph<S>({ ...base, ...own } as Channels<S>);
  if (track) {
    // Every node, added here or by the caller, reports its start and end to the tracker.
    const add = graph.addNode.bind(graph);
    graph.addNode = (name, fn) =>
      add(name, async (s, ctx) => {
        track.start(name, s);
        const update = await fn(s, ctx);
        track.end(name, s, update as Partial<DesignBase> | void);
        return update;
      });
  }
  for (const name of Object.keys(nodes) as K[]) graph.addNode(name, structured ? nodes[name] : legacy[name]);
  return graph;
}

/** Compiles a design graph with `runDesign`'s hooks. */
export function compileDesign<S extends object>(
  graph: StateGraph<S>,
  name: string,
  stepLimit: number,
  { onInterrupt, onStep }: DesignGraphOptions,
): CompiledGraph<S> {
  return graph.compile({ name, stepLimit, onInterrupt, onStep: (snap) => onStep?.(snap.node) });
}

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

/** The update of a node's structured call: its usage, and its path recorded under `key` (see `recordPath`). */
export function recordCall(
  key: string,
  out: StructuredOutcome<unknown>,
  instead: string,
  extra: string[] = [],
): { tally: UsageTally; llmPaths: Record<string, LlmPath>; notes: string[] } {
  return { tally: out.tally, ...recordPath(key, out, instead, extra) };
}

/** The questions of a round (q1..qN), or none and gathering done when nothing is asked or the rounds ran out. */
export function questionsOf(
  asked: string[],
  round: number,
  maxRounds: number,
): Pick<DesignBase, 'questions' | 'gatherDone'> {
  const done = asked.length === 0 || round >= maxRounds;
  return { questions: done ? [] : asked.map((text, i) => ({ id: `q${i + 1}`, text })), gatherDone: done };
}

/** Up to five non-empty questions as the model wrote them (v1, and v2 before DESIGN_QUESTIONS_PATCH). */
export function askedQuestions(questions: unknown[], textOf: (q: unknown) => string = (q) => String(q)): string[] {
  return questions
    .map((q) => textOf(q).trim())
    .filter(Boolean)
    .slice(0, 5);
}

/** The entries whose value is a non-empty string, as written. */
export function nonEmptyStrings(o: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== ''),
  );
}

/** The model's reading of the requirements, and the questions it would ask. */
export interface Gathered {
  requirements: Record<string, string>;
  questions: string[];
}

/**
 * The requirements node (v2 `gather`, v1 `consultant`): one structured call; `use` turns the model's answer
 * into the update. No usable answer: requirements from the user's words and no questions.
 */
export function requirementsNode<S extends DesignBase>(
  acts: DesignActs,
  node: string,
  messages: (s: S) => ChatMessage[],
  use: (s: S, value: Gathered) => Partial<S>,
): DesignNode<S> {
  return async (s) => {
    const out = await acts.structured<Gathered>({
      node,
      what: `requirements, round ${s.questionRound + 1}`,
      kind: 'design.gather',
      messages: messages(s),
      schema: GATHER_SCHEMA,
    });
    if (!out.value) {
      // No questions: plan with what the user wrote and sensible defaults.
      const fallback: Partial<DesignBase> = {
        requirements: keywordRequirements(userWords(s.messages)),
        questions: [],
        gatherDone: true,
        ...recordCall(node, out, 'requirements from keywords, no questions'),
      };
      return fallback as Partial<S>;
    }
    return { ...use(s, out.value), ...recordCall(node, out, '') };
  };
}

/**
 * The human in the loop: waits for answers to the pending questions (no answer before the timeout: gathering
 * ends with sensible defaults rather than wait forever) and adds the round to the conversation. `noAnswer`
 * stands for a question left unanswered; `given` adds what the answers state to the update.
 */
export function askNode<S extends DesignBase>(
  input: InfraDesignInput,
  noAnswer: string,
  given: (questions: DesignQuestion[], answers: Record<string, string>) => Partial<S> = () => ({}),
): NodeFn<S> {
  const timeout = input.answerTimeout ?? DESIGN_DEFAULTS.answerTimeout;
  return async (s, ctx) => {
    const questions = s.questions;
    const answers = await ctx.interrupt<Record<string, string>>(questions, { timeout, default: {} });
    const answered = questions.filter((q) => answers[q.id]?.trim());
    return {
      ...given(answered, answers),
      questions: [],
      questionRound: s.questionRound + 1,
      gatherDone: answered.length === 0,
      messages: [
        { role: 'assistant', content: questionsText(questions) },
        {
          role: 'user',
          content: questions.map((q) => `${q.id}: ${answers[q.id]?.trim() || noAnswer}`).join('\n'),
        },
      ],
    };
  };
}

/** Combines the resources' snippets into the module's files (providers, main, variables, outputs). */
export function combineNode<S extends DesignBase>(
  acts: DesignActs,
  snippetsOf: (s: S) => string[],
  reset: Partial<S> = {},
): NodeFn<S> {
  return async (s) => ({ files: await acts.combine(snippetsOf(s), regionOf(s.requirements)), ...reset });
}

/** The failure of a design with no usable plan: the model's was invalid and the keywords name nothing known. */
export function noUsablePlan(what: 'plan' | 'draft', problems: string[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.DesignPlanInvalid,
    message:
      `no usable ${what}: the model's ${what} was invalid (${problems.join('; ').slice(0, 300)}) and the ` +
      'request names no resource the keyword plan knows',
    nonRetryable: true,
  });
}

/** The state a follow-up revision starts from: gathering again, paths and notes per revision. */
export function forRevision<S extends DesignBase>(s: S, reset: Partial<S>): S {
  return { ...s, gatherDone: false, questions: [], questionRound: 0, ...reset, llmPaths: {}, notes: [] };
}

const checkOf = (c: CheckStatus | undefined): CheckStatus => c ?? 'not_run';

/**
 * Commits the stored files as the next revision (DESIGN_SCHEMA_PATCH); nothing before it. The revision record
 * (commit, diff) joins the state's `revisions`.
 */
export async function commitRevision(
  acts: DesignActs,
  options: DesignGraphOptions,
  files: Record<string, string>,
): Promise<Pick<DesignBase, 'revisions'> | Record<string, never>> {
  if (!options.providerSchema || !options.revision) return {};
  const { revision, message } = options.revision();
  return { revisions: [await acts.commitRevision(revision, message, files)] };
}

/** The view of a design state for the status query and the result. */
export function designView(
  s: DesignBase,
  outcome: DesignPhase,
  plan: DesignPlan | undefined,
  reply: string | undefined,
) {
  return {
    outcome,
    requirements: s.requirements,
    plan,
    files: s.fileRefs,
    validation: s.validation ?? undefined,
    schemaCheck: s.fileRefs.length ? checkOf(s.validation?.schemaCheck?.status) : 'not_run',
    terraformValidate: s.fileRefs.length ? checkOf(s.validation?.terraformValidate) : 'not_run',
    // Only a terraform validate that ran and passed makes a design validated (static checks alone never do).
    terraformValidated:
      s.fileRefs.length > 0 && s.validation?.terraform.ran === true && s.validation.terraform.ok === true,
    diagram: designDiagram(plan?.resources ?? s.resources),
    revisions: s.revisions ?? [],
    reply,
    usage: s.tally.usage,
    llmCalls: s.tally.calls,
    llmPaths: s.llmPaths,
    notes: s.notes,
  };
}
