/**
 * `runDesign`: runs one design graph (v1 or v2) with the handlers every design workflow shares (status query,
 * answers by signal and by validated update, follow-up messages), the WaitingForInput search attribute and the
 * Web UI's current details, then the follow-up loop that revises a finished design.
 * Workflow code, but not a workflow itself: the barrel exports only the workflow files.
 */
import {
  ApplicationFailure,
  condition,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { ErrorType } from '../../common/errors';
import { SearchAttributeKey } from '../../common/search-attributes';
import {
  designAnswersSignal,
  designEventsQuery,
  designMessageSignal,
  designStatusQuery,
  submitDesignAnswersUpdate,
} from '../../contracts/definitions';
import type {
  DesignEvent,
  DesignGraphVersion,
  DesignPhase,
  DesignQuestion,
  DesignResult,
  DesignStatus,
  InfraDesignInput,
  LlmPath,
} from '../../contracts/design';
import type { CompiledGraph } from '../graph';
import type { DesignBase, DesignGraphOptions, NodeTracker } from './builder';
import { designDiagram } from './diagram';
import { DESIGN_DEFAULTS, DESIGN_SCHEMA_PATCH, DESIGN_STRUCTURED_PATCH } from './settings';

/** Progress events a design keeps for readers that resume (older ones are dropped). */
const MAX_EVENTS = 1000;

type EventBody = DesignEvent extends infer E ? (E extends DesignEvent ? Omit<E, 'seq' | 'revision'> : never) : never;

/**
 * The progress events of node starts and ends: questions asked, the plan, each generated resource, each
 * validation, the stored files (with the diagram) and the committed revision, derived from the node's update.
 */
function nodeEvents(node: string, s: DesignBase & { current?: string }, u: Partial<DesignBase> | void): EventBody[] {
  const out: EventBody[] = [];
  if (!u) return out;
  if (u.questions?.length) out.push({ type: 'questions', questions: u.questions });
  const levels = (u as { levels?: string[][] }).levels;
  if (u.resources?.length) out.push({ type: 'plan', plan: { resources: u.resources, levels: levels ?? [] } });
  const snippets = (u as { snippets?: Record<string, string> | string[] }).snippets;
  if (node === 'generate' && snippets && !Array.isArray(snippets)) {
    for (const [id, hcl] of Object.entries(snippets)) {
      const r = s.resources.find((x) => x.id === id);
      const dropped = (u.notes ?? []).filter((n) => n.startsWith(`generate:${id}: dropped`));
      out.push({
        type: 'resource',
        resource: id,
        address: r ? `${r.type}.${r.name}` : id,
        path: u.llmPaths?.[`generate:${id}`] ?? 'default',
        hcl,
        dropped,
      });
    }
  }
  if (u.validation) {
    out.push({
      type: 'validation',
      ok: u.validation.ok,
      schemaCheck: u.validation.schemaCheck?.status ?? 'not_run',
      terraformValidate: u.validation.terraformValidate ?? 'not_run',
      errors: u.validation.diagnostics.filter((d) => d.severity === 'error').length,
      output: u.validation.output,
    });
  }
  if (u.fileRefs?.length && u.files) {
    out.push({ type: 'files', files: u.files, diagram: designDiagram(s.resources) });
  }
  for (const record of u.revisions ?? []) out.push({ type: 'revision', record });
  return out;
}

/**
 * Runs one design graph with the handlers every design workflow shares: status query, answers (signal and
 * validated update), follow-up messages, and the WaitingForInput search attribute.
 */
export async function runDesign<S extends object>(opts: {
  input: InfraDesignInput;
  version: DesignGraphVersion;
  build: (
    hooks: Pick<DesignGraphOptions, 'onInterrupt' | 'onStep' | 'structured' | 'providerSchema' | 'revision' | 'track'>,
  ) => CompiledGraph<S>;
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
  const providerSchema = patched(DESIGN_SCHEMA_PATCH);
  let phase: DesignPhase = 'running';
  let revision = 1;
  let revisionMessage = input.request;
  const followUps: string[] = [];
  /** Progress events (no commands: a query reads them), numbered across revisions. */
  const events: DesignEvent[] = [];
  let lastSeq = 0;
  const emit = (e: EventBody) => {
    events.push({ ...e, seq: ++lastSeq, revision } as DesignEvent);
    if (events.length > MAX_EVENTS) events.splice(0, events.length - MAX_EVENTS);
  };
  const track: NodeTracker = {
    start: (node, s) =>
      emit({ type: 'node_start', node, ...(node === 'generate' && s.current ? { resource: s.current } : {}) }),
    end: (node, s, u) => {
      for (const e of nodeEvents(node, s, u)) emit(e);
      emit({ type: 'node_end', node, ...(node === 'generate' && s.current ? { resource: s.current } : {}) });
    },
  };
  /** answerIds applied, in order (each at most once). */
  const answersApplied: string[] = [];
  /** The interrupt the last applied answers went to. */
  let answeredRound: unknown;
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
    providerSchema,
    revision: () => ({ revision, message: revisionMessage }),
    track,
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
      schemaCheck: v.schemaCheck,
      terraformValidate: v.terraformValidate,
      terraformValidated: v.terraformValidated,
      diagram: v.diagram,
      revisions: v.revisions,
      reply: v.reply,
      usage: v.usage,
      llmCalls: v.llmCalls,
      llmPaths: v.llmPaths,
      notes: v.notes,
      steps: snap.steps.map(({ step, node, taskIndex }) => ({ step, node, taskIndex })),
      answersApplied: [...answersApplied],
    };
  };

  setHandler(designStatusQuery, status);
  setHandler(designEventsQuery, ({ after }) => {
    const current = status().phase;
    return {
      events: events.filter((e) => e.seq > (Number(after) || 0)),
      lastSeq,
      idle: current !== 'running' && current !== 'waiting_for_answers',
      phase: current,
    };
  });
  // The API records answers as a signal even while no worker runs (a signal needs none); the same answerId
  // delivered twice (a client's retry, a redelivery) is applied once. Answers without an id behave as before.
  setHandler(designAnswersSignal, ({ answers, answerId }) => {
    if (answerId !== undefined && answersApplied.includes(answerId)) return;
    // A second answer to a round already answered (both arrived in one activation) would be dropped by the
    // graph: it is not counted as applied either.
    if (!graph.pendingInterrupt || graph.pendingInterrupt === answeredRound) return;
    const ids = new Set(pendingQuestions().map((q) => q.id));
    const known = Object.fromEntries(Object.entries(answers ?? {}).filter(([id]) => ids.has(id)));
    if (Object.keys(known).length === 0) return;
    graph.resume(known);
    answeredRound = graph.pendingInterrupt;
    if (answerId !== undefined) answersApplied.push(answerId);
  });
  setHandler(
    submitDesignAnswersUpdate,
    ({ answers, answerId }) => {
      if (answerId !== undefined && answersApplied.includes(answerId)) {
        return { accepted: Object.keys(answers), round: revision, answerId, duplicate: true };
      }
      graph.resume(answers);
      answeredRound = graph.pendingInterrupt;
      if (answerId !== undefined) answersApplied.push(answerId);
      return { accepted: Object.keys(answers), round: revision, ...(answerId !== undefined ? { answerId } : {}) };
    },
    {
      validator: ({ answers, answerId }) => {
        // A retried request whose answers were already applied is acknowledged again, not rejected.
        if (answerId !== undefined && answersApplied.includes(answerId)) return;
        const questions = pendingQuestions();
        if (!graph.pendingInterrupt || questions.length === 0 || graph.pendingInterrupt === answeredRound) {
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
  emit({ type: 'done', phase });
  const followUpWindow = input.followUpWindow ?? DESIGN_DEFAULTS.followUpWindow;
  for (;;) {
    try {
      if (!(await condition(() => followUps.length > 0, followUpWindow))) break;
    } catch (err) {
      // Cancelled after it finished: the design stands, only the follow-up window closes.
      if (isCancellation(err)) break;
      throw err;
    }
    const message = followUps.shift()!;
    const next = opts.revise(final, message);
    revision++;
    revisionMessage = message;
    phase = 'running';
    final = await graph.invoke(next.input, { startAt: next.startAt, state: next.state });
    phase = opts.view(final).outcome;
    emit({ type: 'done', phase });
  }
  setCurrentDetails(`Finished (${phase}), revision ${revision}${pathsText()}`);
  const { steps, questions: _q, ...rest } = status();
  return { ...rest, phase, steps: steps.length };
}
