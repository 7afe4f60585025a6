/**
 * jobWorkflow: one user job. It runs the container on the executor queue and, while it runs, answers the
 * container's LLM calls (Update `llmCall`, sent by the AI gateway) by running the llm activity on the
 * model's pinned queue. Tokens are metered here from Ollama's own counts, so user code cannot forge usage.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { ErrorType } from '../common/errors';
import { DEFAULT_NUM_PREDICT, numPredictProblem } from '../common/llm-bounds';
import { EXECUTOR_QUEUE, normalizeModel } from '../common/task-queues';
import type { LlmResult } from '../contracts/llm';
import type { ExecutorActivities } from '../activities/executor';
import type { JobsActivities } from '../activities/jobs';
import type {
  ContainerResult,
  ExecutionResult,
  JobInput,
  JobLiveStatus,
  JobUsage,
  LlmCallReply,
  LlmCallRequest,
} from '../contracts/jobs';
import { jobStatusQuery, llmCallUpdate } from '../contracts/definitions';
import { CONTAINER_RUN, JOB_LLM_CALL, STORAGE, llmActivities } from './policies';
import {
  DEFAULT_JOB_CALLS_IN_FLIGHT,
  JOB_CALL_BOUNDS_PATCH,
  JOB_HISTORY_BUDGET_BYTES,
  MAX_CALL_REQUEST_BYTES,
  producedTokens,
  promptTokenEstimate,
  requestBytes,
  utf8Bytes,
} from './job-call-bounds';

const executor = proxyActivities<ExecutorActivities>({
  ...CONTAINER_RUN,
  taskQueue: EXECUTOR_QUEUE,
  // A cancelled job ends only once its container is really killed and removed.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});
const jobs = proxyActivities<JobsActivities>(STORAGE);

/** Lines of stderr kept in the one-line error of a failed job. */
const STDERR_TAIL_CHARS = 2000;

function emptyJobUsage(): JobUsage {
  return {
    calls: 0,
    rejectedCalls: 0,
    failedCalls: 0,
    llm_token_count: { prompt: 0, completion: 0, total: 0 },
    byModel: {},
  };
}

function failureReason(run: ContainerResult): string | undefined {
  if (run.killedBy === 'timeout') return 'timed out: killed at the wall-clock limit';
  if (run.oomKilled) return 'OOMKilled: the script exceeded its memory limit';
  if (run.killedBy === 'output_limit') return 'output limit exceeded: killed';
  if (run.exitCode !== 0) {
    const tail = run.stderr.slice(-STDERR_TAIL_CHARS).trim();
    return `exit code ${run.exitCode}${tail ? `: ${tail}` : ''}`;
  }
  return undefined;
}

/** Runs one job to its end and returns its `ExecutionResult` (also persisted to DynamoDB). */
export async function jobWorkflow(input: JobInput): Promise<ExecutionResult> {
  const startedAt = new Date(workflowInfo().startTime).toISOString();
  const usage = emptyJobUsage();
  const allowed = new Set(input.allowedModels.map(normalizeModel));
  const defaultModel = normalizeModel(input.modelId);
  allowed.add(defaultModel);
  let phase: JobLiveStatus['phase'] = 'running';
  let result: ExecutionResult | undefined = undefined;
  let reserved = 0;
  /** Calls accepted and not finished (running, or waiting for a place). */
  let open = 0;

  // A call is reserved when it starts and counted in `usage.calls` when it ends; the difference is running now.
  setHandler(jobStatusQuery, () => ({
    phase,
    usage: { ...usage, callsInFlight: open },
    startedAt,
    result,
  }));
  // num_predict bounds of this job's calls: the max comes from the API's config (jobs started before it had
  // none: the built-in default). The llm activity bounds every call again with its worker's table.
  const numPredictBounds = {
    ...DEFAULT_NUM_PREDICT,
    job: { ...DEFAULT_NUM_PREDICT.job, max: input.limits.maxNumPredict ?? DEFAULT_NUM_PREDICT.job.max },
  };
  // Runs started before the call bounds replay as they ran (their refusals were written to history by the handler).
  const bounded = patched(JOB_CALL_BOUNDS_PATCH);
  const callsInFlightCap = input.limits.maxConcurrentCalls ?? DEFAULT_JOB_CALLS_IN_FLIGHT;
  /** Tokens reserved by calls accepted and not finished: each holds its prompt estimate + its num_predict. */
  let reservedTokens = 0;
  /** Calls running their activity now; the rest of the accepted ones wait in `waiting` for a place, FIFO. */
  let running = 0;
  const waiting: ((granted: boolean) => void)[] = [];
  /** A place among the job's `callsInFlightCap` running calls; false when the container ended while waiting. */
  const takePlace = (): Promise<boolean> => {
    if (running < callsInFlightCap && waiting.length === 0) {
      running++;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => waiting.push(resolve));
  };
  /** Hands the place to the next waiting call (it stays counted in `running`), or frees it. */
  const leavePlace = () => {
    const next = waiting.shift();
    if (next && phase === 'running') next(true);
    else {
      running--;
      next?.(false);
    }
  };
  let historyBytes = 0;
  const callScopes = new Set<CancellationScope>();

  /** Why a call is refused, or undefined. Pure: it runs in the Update validator (no state may change there). */
  const refusal = (req: LlmCallRequest): { type: ErrorType; message: string } | undefined => {
    const model = normalizeModel(req.model ?? defaultModel);
    if (phase !== 'running') {
      return { type: bounded ? ErrorType.JobFinished : ErrorType.InvalidRequest, message: `the job is ${phase}` };
    }
    const numPredict = numPredictProblem('job', req.options?.num_predict, numPredictBounds);
    if (numPredict) return { type: ErrorType.InvalidRequest, message: `num_predict ${numPredict}` };
    if (!allowed.has(model)) {
      return {
        type: ErrorType.ModelNotFound,
        message: `model "${model}" is not in the catalog (available: ${[...allowed].join(', ')})`,
      };
    }
    if (bounded) {
      const bytes = requestBytes(req);
      if (bytes > MAX_CALL_REQUEST_BYTES) {
        return {
          type: ErrorType.InvalidRequest,
          message: `the request is ${bytes} bytes; a call may send at most ${MAX_CALL_REQUEST_BYTES}`,
        };
      }
      if (historyBytes + 2 * bytes > JOB_HISTORY_BUDGET_BYTES) {
        return {
          type: ErrorType.LimitExceeded,
          message: `this job's calls have sent and received ${historyBytes} bytes; at most ${JOB_HISTORY_BUDGET_BYTES} per job`,
        };
      }
    }
    // Reserved before awaiting, so concurrent calls cannot all slip under the limit together.
    if (reserved >= input.limits.maxLlmCalls) {
      return {
        type: ErrorType.LimitExceeded,
        message: `LLM call limit reached: ${input.limits.maxLlmCalls} calls per job`,
      };
    }
    const used = usage.llm_token_count.total;
    if (!bounded && used >= input.limits.maxTokens) {
      return {
        type: ErrorType.LimitExceeded,
        message: `token limit reached: ${input.limits.maxTokens} tokens per job`,
      };
    }
    // Calls in flight count with what they may still use, so a burst of calls cannot overrun the cap together.
    if (bounded && used + reservedTokens + promptTokenEstimate(req) + 1 > input.limits.maxTokens) {
      return {
        type: ErrorType.LimitExceeded,
        message: `token limit reached: ${input.limits.maxTokens} tokens per job (${used} used, ${reservedTokens} reserved by calls in flight)`,
      };
    }
    return undefined;
  };

  /** Bills what a failed or cancelled call produced (Ollama's tokens so far; its prompt, estimated, once it ran). */
  const billFailed = (model: string, req: LlmCallRequest, err: unknown) => {
    const completion = producedTokens(err);
    const prompt = completion > 0 ? promptTokenEstimate(req) : 0;
    if (prompt + completion === 0) return;
    usage.llm_token_count.prompt += prompt;
    usage.llm_token_count.completion += completion;
    usage.llm_token_count.total += prompt + completion;
    const m = (usage.byModel[model] ??= { calls: 0, prompt: 0, completion: 0, total: 0 });
    m.prompt += prompt;
    m.completion += completion;
    m.total += prompt + completion;
  };

  setHandler(
    llmCallUpdate,
    async (req: LlmCallRequest): Promise<LlmCallReply> => {
      const model = normalizeModel(req.model ?? defaultModel);
      const refused = refusal(req);
      if (refused) {
        // Only replayed runs from before the validator get here: new refusals never enter history.
        usage.rejectedCalls++;
        throw ApplicationFailure.create({ type: refused.type, nonRetryable: true, message: refused.message });
      }
      reserved++;
      open++;
      const summary = `job ${input.jobId} · ${model} · ${req.kind}`;
      // A call that sets no length gets the job's default (else the activity's `job` default), so one rambling
      // answer cannot eat the whole job.
      let options =
        req.options?.num_predict === undefined && input.limits.defaultNumPredict !== undefined
          ? { ...req.options, num_predict: input.limits.defaultNumPredict }
          : req.options;
      let reservation = 0;
      if (bounded) {
        // The call may use at most what is left of the job's tokens once the other calls' reservations are held.
        const estimate = promptTokenEstimate(req);
        const left = input.limits.maxTokens - usage.llm_token_count.total - reservedTokens - estimate;
        const wanted = options?.num_predict ?? numPredictBounds.job.default;
        const numPredict = Math.max(1, Math.min(wanted, left));
        options = { ...options, num_predict: numPredict };
        reservation = estimate + numPredict;
        reservedTokens += reservation;
        historyBytes += 2 * requestBytes(req);
      }
      const llm = bounded
        ? llmActivities(model, {
            ...JOB_LLM_CALL,
            summary,
            // Tenants share the model queues: with fairness on in the server, each gets its share of dispatch.
            priority: { fairnessKey: input.tenantId.slice(0, 64) },
          })
        : llmActivities(model, { summary });
      let res: LlmResult;
      try {
        if (bounded) {
          // One job holds at most `callsInFlightCap` model slots; its other calls wait here, in order.
          if (!(await takePlace())) {
            throw ApplicationFailure.create({
              type: ErrorType.JobFinished,
              nonRetryable: true,
              message: `the job is ${phase}; the call was not run`,
            });
          }
        }
        const call = () =>
          req.kind === 'chat'
            ? llm.llmChat({
                model,
                messages: req.messages ?? [],
                options,
                format: req.format,
                purpose: summary,
                kind: 'job',
              })
            : llm.llmGenerate({
                model,
                prompt: req.prompt ?? '',
                system: req.system,
                options,
                format: req.format,
                purpose: summary,
                kind: 'job',
              });
        if (bounded) {
          // Cancelled when the container ends: nobody is left to read the answer, and the slot is someone else's.
          const scope = new CancellationScope();
          callScopes.add(scope);
          try {
            res = await scope.run(call);
          } finally {
            callScopes.delete(scope);
            leavePlace();
          }
        } else {
          res = await call();
        }
      } catch (err) {
        open--;
        if (!bounded) reserved--;
        usage.failedCalls++;
        if (bounded) {
          reservedTokens -= reservation;
          billFailed(model, req, err);
          if (isCancellation(err) && phase !== 'running') {
            throw ApplicationFailure.create({
              type: ErrorType.JobFinished,
              nonRetryable: true,
              message: `the job is ${phase}; the call was cancelled`,
            });
          }
          // The script sees the call's own failure type (inference_timeout, ...), not a generic LLM failure.
          const cause = err instanceof ActivityFailure ? err.cause : undefined;
          if (cause instanceof ApplicationFailure) {
            throw ApplicationFailure.create({
              type: cause.type ?? undefined,
              nonRetryable: true,
              message: cause.message,
            });
          }
        }
        throw err;
      }
      open--;
      reservedTokens -= reservation;
      if (bounded) historyBytes += 2 * utf8Bytes(res.content);
      const prompt = res.usage.promptTokens;
      const completion = res.usage.completionTokens;
      usage.calls++;
      usage.llm_token_count.prompt += prompt;
      usage.llm_token_count.completion += completion;
      usage.llm_token_count.total += prompt + completion;
      const m = (usage.byModel[model] ??= { calls: 0, prompt: 0, completion: 0, total: 0 });
      m.calls++;
      m.prompt += prompt;
      m.completion += completion;
      m.total += prompt + completion;
      setCurrentDetails(`${usage.calls} LLM calls · ${usage.llm_token_count.total} tokens`);
      return {
        content: res.content,
        model,
        usage: { prompt, completion, total: prompt + completion },
        call: usage.calls,
      };
    },
    {
      // Refused calls never reach history (nor their request, up to 1 MiB): a refusal costs the job nothing.
      validator: (req: LlmCallRequest) => {
        const refused = refusal(req);
        if (refused)
          throw ApplicationFailure.create({ type: refused.type, nonRetryable: true, message: refused.message });
      },
    },
  );

  let run: ContainerResult | undefined;
  let error: string | undefined;
  let cancelled = false;
  try {
    run = await executor.runJobContainer({
      jobId: input.jobId,
      workflowId: workflowInfo().workflowId,
      packageKey: input.packageKey,
      entry: input.entry,
      modelId: defaultModel,
      inputKey: input.inputKey,
      outputPrefix: `jobs/${input.jobId}/out/`,
      limits: input.limits,
    });
    error = failureReason(run);
  } catch (err) {
    if (isCancellation(err)) {
      cancelled = true;
      error = 'cancelled';
    } else {
      const cause = (err as { cause?: Error }).cause;
      error = cause?.message ?? (err as Error).message;
      log.warn('job container failed', { jobId: input.jobId, error });
    }
  }
  phase = cancelled ? 'cancelled' : error ? 'failed' : 'succeeded';
  // The container is gone: its calls still running are cancelled (and billed for what they produced), and the
  // ones waiting for a place are not run.
  for (const scope of callScopes) scope.cancel();
  for (const next of waiting.splice(0)) next(false);
  // Calls still in flight finish (and are metered) before the result is final.
  await CancellationScope.nonCancellable(() => condition(allHandlersFinished));

  const draft: ExecutionResult = {
    jobId: input.jobId,
    status: phase,
    exitCode: run?.exitCode ?? null,
    stdout: run?.stdout ?? '',
    stderr: run?.stderr ?? '',
    stdoutKey: run?.stdoutKey,
    stderrKey: run?.stderrKey,
    stdoutTruncated: run?.stdoutTruncated ?? false,
    stderrTruncated: run?.stderrTruncated ?? false,
    timedOut: run?.timedOut ?? false,
    oomKilled: run?.oomKilled ?? false,
    error,
    durationMs: run?.durationMs ?? 0,
    outputs: run?.outputs ?? [],
    llm_token_count: usage.llm_token_count,
    calls: usage.calls,
    ...(bounded ? { failedCalls: usage.failedCalls } : {}),
    byModel: usage.byModel,
    costUsd: 0,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
  // Prices come from config on the orchestrator; the record and usage rows are written in the same step.
  result = await CancellationScope.nonCancellable(() => jobs.finishJob({ job: input, result: draft }));
  setCurrentDetails(`${result.status} · ${result.calls} LLM calls · ${result.llm_token_count.total} tokens`);
  // Ends the run as Cancelled in the Web UI; the record already says `cancelled`.
  if (cancelled) throw new CancelledFailure('job cancelled');
  return result;
}
