/**
 * The activities a design graph calls, each with a summary `"<node>: <what>"` so the Web UI history reads like
 * the graph: the structured LLM call (tight schema, one repair request, then the caller's fallback), the
 * pre-patch call, a free-text call, and Terraform combine / validate / store. The usage tally of the calls
 * lives here too. Workflow code: proxies only, the activities run on their own queues.
 */
import { ActivityFailure, ApplicationFailure, isCancellation, proxyActivities } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../../common/errors';
import type { LlmCallKind } from '../../common/llm-bounds';
import type { ChatMessage, LlmFormat, LlmOptions, LlmResult } from '../../contracts/llm';
import { addUsage, emptyUsage, type LlmUsage } from '../../contracts/llm-usage';
import type { TerraformActivities } from '../../activities/terraform';
import type { DesignActivities } from '../../activities/design';
import { LLM_CALL, STORAGE, TERRAFORM_STEP, TERRAFORM_VALIDATE, llmActivities } from '../policies';
import type { GeneratedResource, InfraDesignInput, LlmPath } from '../../contracts/design';
import { bySchema, parseStructured, type JsonSchema } from './schemas';

/** Attempts of a structured call: an InferenceTimeout (a loop the activity could not cut) is retried once. */
const STRUCTURED_ATTEMPTS = 2;
/** Longest part of a rejected reply shown back to the model in the repair request. */
const REPAIR_ECHO_CHARS = 600;

/** Accumulated LLM usage, kept in graph state through a summing reducer. */
export interface UsageTally {
  usage: LlmUsage;
  calls: number;
}
export const emptyTally = (): UsageTally => ({ usage: emptyUsage(), calls: 0 });
export const addTally = (a: UsageTally, b: UsageTally): UsageTally => ({
  usage: addUsage(a.usage, b.usage),
  calls: a.calls + b.calls,
});
/** Usage of one call; a call that gave no answer still counts as a call. */
export const tallyOf = (r: LlmResult | undefined): UsageTally => ({ usage: r?.usage ?? emptyUsage(), calls: 1 });

/** One structured call: its schema, and how a parsed reply becomes a value (or the error sent back once). */
export interface StructuredSpec<T> {
  node: string;
  what: string;
  kind: LlmCallKind;
  messages: ChatMessage[];
  schema: JsonSchema;
  /** Defaults to the schema alone (`bySchema(schema)`). */
  accept?: (parsed: unknown) => { value: T } | { error: string };
  /** A last look at a reply that is not JSON as a whole (e.g. complete items before a cut-off). */
  salvage?: (content: string) => unknown;
}

/** What a structured call gave: a value from the model (first reply or repair), or none: use the fallback. */
export interface StructuredOutcome<T> {
  value: T | undefined;
  path: LlmPath;
  tally: UsageTally;
  /** Why the first reply (and the repair) was rejected: for the notes. */
  problems: string[];
}

/** The activities a design graph calls, each with a summary `"<node>: <what>"` shown in the Web UI. */
export function designActivities(input: InfraDesignInput) {
  const llm = llmActivities(input.model);
  const tf = proxyActivities<TerraformActivities>(TERRAFORM_STEP);
  const tfValidate = proxyActivities<TerraformActivities>(TERRAFORM_VALIDATE);
  const store = proxyActivities<DesignActivities>(STORAGE);
  const options = input.llmOptions ?? {};
  const base: LlmOptions = { temperature: 0, repeat_penalty: 1.1, ...options };
  const call = (
    messages: ChatMessage[],
    format: LlmFormat | JsonSchema | undefined,
    kind: LlmCallKind,
    opts: LlmOptions,
    label: string,
    attempts: number,
  ) =>
    llm.llmChat.executeWithOptions({ summary: label, retry: { ...LLM_CALL.retry, maximumAttempts: attempts } }, [
      { model: input.model, messages, format: format as LlmFormat | undefined, options: opts, purpose: label, kind },
    ]);
  /** One call; a failure a new request cannot fix (or a cancel) is rethrown, any other is returned as text. */
  const attempt = async (...args: Parameters<typeof call>): Promise<LlmResult | { failed: string }> => {
    try {
      return await call(...args);
    } catch (err) {
      if (!degradable(err)) throw err;
      return { failed: failureMessage(err) };
    }
  };
  return {
    /**
     * Structured output that cannot loop: a tight schema as `format`, a bounded num_predict per `kind` (the
     * activity clamps it and cuts repetition), one retry of the call itself, then the reply is parsed and
     * validated. An invalid reply gets exactly one repair request (the error sent back); still invalid, or no
     * answer at all → `value` undefined and `path: 'fallback'`, and the node uses its deterministic fallback.
     */
    async structured<T>(spec: StructuredSpec<T>): Promise<StructuredOutcome<T>> {
      const summary = `${spec.node}: ${spec.what}`;
      const accept = spec.accept ?? bySchema<T>(spec.schema);
      let tally = emptyTally();
      const problems: string[] = [];
      const judge = (res: LlmResult): { value: T } | { error: string } => {
        const parsed = parseStructured(res.content, res.doneReason);
        if ('value' in parsed) return accept(parsed.value);
        const salvaged = spec.salvage?.(res.content);
        if (salvaged !== undefined) {
          const out = accept(salvaged);
          if ('value' in out) return out;
        }
        return parsed;
      };
      const first = await attempt(spec.messages, spec.schema, spec.kind, base, summary, STRUCTURED_ATTEMPTS);
      if ('failed' in first) {
        // No reply to repair: the call itself failed (after its retry).
        return {
          value: undefined,
          path: 'fallback',
          tally: addTally(tally, tallyOf(undefined)),
          problems: [first.failed],
        };
      }
      tally = addTally(tally, tallyOf(first));
      const judged = judge(first);
      if ('value' in judged) return { value: judged.value, path: 'model', tally, problems };
      problems.push(judged.error);
      const repair: ChatMessage[] = [
        ...spec.messages,
        { role: 'assistant', content: first.content.slice(0, REPAIR_ECHO_CHARS) },
        {
          role: 'user',
          content:
            `Your answer was rejected: ${judged.error}. ` +
            'Reply again with only the JSON object, following the schema exactly and keeping every text short.',
        },
      ];
      const second = await attempt(repair, spec.schema, spec.kind, base, `${summary} (repair)`, 1);
      if ('failed' in second) {
        problems.push(second.failed);
        return { value: undefined, path: 'fallback', tally: addTally(tally, tallyOf(undefined)), problems };
      }
      tally = addTally(tally, tallyOf(second));
      const rejudged = judge(second);
      if ('value' in rejudged) return { value: rejudged.value, path: 'repaired', tally, problems };
      problems.push(rejudged.error);
      return { value: undefined, path: 'fallback', tally, problems };
    },
    /**
     * The call of designs started before DESIGN_STRUCTURED_PATCH (kept so they replay): after two attempts it
     * is asked once more with another seed and some temperature; still failing → undefined.
     */
    async chat(
      node: string,
      what: string,
      messages: ChatMessage[],
      format?: LlmFormat | JsonSchema,
      kind: LlmCallKind = 'design.generate',
    ): Promise<LlmResult | undefined> {
      const summary = `${node}: ${what}`;
      try {
        return await call(messages, format, kind, base, summary, 2);
      } catch (err) {
        if (!degradable(err)) throw err;
      }
      try {
        const varied = { ...base, seed: (base.seed ?? 0) + 1, temperature: 0.7, repeat_penalty: 1.3 };
        return await call(messages, format, kind, varied, `${summary} (varied)`, 1);
      } catch (err) {
        if (!degradable(err)) throw err;
        return undefined;
      }
    },
    /** A free-text call (two attempts); undefined when it gave no answer, and the node falls back. */
    async text(node: string, what: string, messages: ChatMessage[], kind: LlmCallKind): Promise<LlmResult | undefined> {
      const res = await attempt(messages, undefined, kind, base, `${node}: ${what}`, STRUCTURED_ATTEMPTS);
      return 'failed' in res ? undefined : res;
    },
    combine: (snippets: string[], region?: string) =>
      tf.terraformCombine.executeWithOptions({ summary: 'combine: providers/main/variables/outputs' }, [
        { snippets, region },
      ]),
    validate: (node: string, files: Record<string, string>) =>
      tfValidate.terraformValidate.executeWithOptions({ summary: `${node}: validate HCL` }, [{ files }]),
    /** The generator's JSON schema for a resource type, from the provider schema (null: type unknown). */
    resourceSchema: (type: string) =>
      tf.terraformResourceSchema.executeWithOptions({ summary: `generate: provider schema of ${type}` }, [{ type }]),
    /** Keeps what the provider schema knows of a generated resource; required parts from the default body. */
    conform: (type: string, generated: GeneratedResource, fallback: GeneratedResource) =>
      tf.terraformConform.executeWithOptions({ summary: `generate: conform ${type} to the provider schema` }, [
        { type, generated, fallback },
      ]),
    /** Commits a revision's files to the design's git repository (bundled to S3); returns it with its diff. */
    commitRevision: (revision: number, message: string, files: Record<string, string>) =>
      store.designCommitRevision.executeWithOptions({ summary: `store: commit revision ${revision}` }, [
        { designId: input.designId, revision, message, files },
      ]),
    storeFiles: (files: Record<string, string>) =>
      store.designStoreFiles.executeWithOptions({ summary: 'store: files to S3' }, [
        { designId: input.designId, files },
      ]),
  };
}

export type DesignActs = ReturnType<typeof designActivities>;

/** The message of a failed call, from the activity's own failure when there is one. */
function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  const type = cause instanceof ApplicationFailure && cause.type ? `${cause.type}: ` : '';
  return `no answer (${type}${cause instanceof Error ? cause.message : String(cause)})`.slice(0, 300);
}

/** Failures another request may avoid (not a missing model, a rejected request, or a cancel of the design). */
function degradable(err: unknown): boolean {
  if (isCancellation(err)) return false;
  const cause = err instanceof ActivityFailure ? err.cause : err;
  const type = cause instanceof ApplicationFailure ? cause.type : undefined;
  return !(type && (NON_RETRYABLE_ERROR_TYPES as readonly string[]).includes(type));
}
