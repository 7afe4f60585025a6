/**
 * jobWorkflow: one user job. It runs the container on the executor queue and, while it runs, answers the
 * container's LLM calls (Update `llmCall`, sent by the AI gateway) by running the llm activity on the
 * model's pinned queue. Tokens are metered here from Ollama's own counts, so user code cannot forge usage.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  log,
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
import { CONTAINER_RUN, STORAGE, llmActivities } from './policies';

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

  // A call is reserved when it starts and counted in `usage.calls` when it ends; the difference is running now.
  setHandler(jobStatusQuery, () => ({
    phase,
    usage: { ...usage, callsInFlight: reserved - usage.calls },
    startedAt,
    result,
  }));
  // num_predict bounds of this job's calls: the max comes from the API's config (jobs started before it had
  // none: the built-in default). The llm activity bounds every call again with its worker's table.
  const numPredictBounds = {
    ...DEFAULT_NUM_PREDICT,
    job: { ...DEFAULT_NUM_PREDICT.job, max: input.limits.maxNumPredict ?? DEFAULT_NUM_PREDICT.job.max },
  };

  setHandler(llmCallUpdate, async (req: LlmCallRequest): Promise<LlmCallReply> => {
    const model = normalizeModel(req.model ?? defaultModel);
    const refuse = (type: ErrorType, message: string) => {
      usage.rejectedCalls++;
      return ApplicationFailure.create({ type, nonRetryable: true, message });
    };
    if (phase !== 'running') throw refuse(ErrorType.InvalidRequest, `the job is ${phase}`);
    const numPredict = numPredictProblem('job', req.options?.num_predict, numPredictBounds);
    if (numPredict) throw refuse(ErrorType.InvalidRequest, `num_predict ${numPredict}`);
    if (!allowed.has(model)) {
      throw refuse(
        ErrorType.ModelNotFound,
        `model "${model}" is not in the catalog (available: ${[...allowed].join(', ')})`,
      );
    }
    // Reserved before awaiting, so concurrent calls cannot all slip under the limit together.
    if (reserved >= input.limits.maxLlmCalls) {
      throw refuse(ErrorType.LimitExceeded, `LLM call limit reached: ${input.limits.maxLlmCalls} calls per job`);
    }
    if (usage.llm_token_count.total >= input.limits.maxTokens) {
      throw refuse(ErrorType.LimitExceeded, `token limit reached: ${input.limits.maxTokens} tokens per job`);
    }
    reserved++;
    const summary = `job ${input.jobId} · ${model} · ${req.kind}`;
    const llm = llmActivities(model, { summary });
    // A call that sets no length gets the job's default (else the activity's `job` default), so one rambling
    // answer cannot eat the whole job.
    const options =
      req.options?.num_predict === undefined && input.limits.defaultNumPredict !== undefined
        ? { ...req.options, num_predict: input.limits.defaultNumPredict }
        : req.options;
    let res: LlmResult;
    try {
      res =
        req.kind === 'chat'
          ? await llm.llmChat({
              model,
              messages: req.messages ?? [],
              options,
              format: req.format,
              purpose: summary,
              kind: 'job',
            })
          : await llm.llmGenerate({
              model,
              prompt: req.prompt ?? '',
              system: req.system,
              options,
              format: req.format,
              purpose: summary,
              kind: 'job',
            });
    } catch (err) {
      reserved--;
      usage.failedCalls++;
      throw err;
    }
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
  });

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
