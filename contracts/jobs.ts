/**
 * Shapes of the job path (API → jobWorkflow → runJobContainer → persistence). Types only, so workflows can
 * `import type` them without pulling activity code into the workflow bundle (one constant, no imports).
 */
import type { ChatMessage, LlmFormat, LlmOptions } from './llm';

/** Per-job resource and metering limits; the API fills them from config and the request. */
export interface JobLimits {
  timeoutMs: number;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  /** Cap per stream (stdout, stderr); past it the container is killed and the stream marked truncated. */
  outputLimitBytes: number;
  maxLlmCalls: number;
  maxTokens: number;
  /** `num_predict` for calls that set none (otherwise the `job` kind's default, LLM_NUM_PREDICT). */
  defaultNumPredict?: number;
  /** The most `num_predict` a call may ask for (LLM_NUM_PREDICT `job` max; absent in older jobs: the default). */
  maxNumPredict?: number;
  /** Calls of the job that run at once; more wait in the workflow (default DEFAULT_JOB_CALLS_IN_FLIGHT). */
  maxConcurrentCalls?: number;
}

export interface JobInput {
  jobId: string;
  tenantId: string;
  functionId: string;
  /** S3 key of the code package (zip). */
  packageKey: string;
  /** Entry script inside the package, e.g. `main.py`. */
  entry: string;
  /** The job's default model; SDK calls without `model` use it. */
  modelId: string;
  /** Models an SDK call may name (the catalog when the job was started). */
  allowedModels: string[];
  /** S3 key of `input.json` (inputData); large values never travel as workflow payloads. */
  inputKey: string;
  limits: JobLimits;
  createdAt: string;
}

export interface RunContainerInput {
  jobId: string;
  /** The job's workflow id: the AI gateway sends each SDK call as an Update to it. */
  workflowId: string;
  packageKey: string;
  entry: string;
  modelId: string;
  inputKey: string;
  /** S3 prefix for the files the script writes to /out. */
  outputPrefix: string;
  limits: JobLimits;
}

/** Log bytes per stream that travel inline in workflow payloads (Temporal's payload limit is 2 MiB). */
export const INLINE_LOG_BYTES = 128 * 1024;

export interface OutputFile {
  name: string;
  key: string;
  size: number;
}

export interface ContainerResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  oomKilled: boolean;
  /** Why the executor killed the container, if it did. */
  killedBy?: 'timeout' | 'output_limit' | 'cancel' | 'disk_limit';
  durationMs: number;
  outputs: OutputFile[];
  /** Full stdout/stderr in S3 when longer than what travels inline. */
  stdoutKey?: string;
  stderrKey?: string;
}

export interface TokenCount {
  prompt: number;
  completion: number;
  total: number;
}

export interface ModelUsage extends TokenCount {
  calls: number;
  costUsd?: number;
}

/** Usage metered by the workflow from Ollama's own counts. */
export interface JobUsage {
  calls: number;
  /** Calls refused (limits, unknown model) or failed after retries; not metered. */
  rejectedCalls: number;
  failedCalls: number;
  /** Calls running now (live status only; `calls` counts finished ones). */
  callsInFlight?: number;
  llm_token_count: TokenCount;
  byModel: Record<string, ModelUsage>;
}

export type JobStatusName = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface ExecutionResult {
  jobId: string;
  status: Exclude<JobStatusName, 'queued' | 'running'>;
  exitCode: number | null;
  /** At most INLINE_LOG_BYTES of each stream; the rest (up to the job's output limit) is in S3. */
  stdout: string;
  stderr: string;
  stdoutKey?: string;
  stderrKey?: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  oomKilled: boolean;
  /** A one-line reason when the job did not succeed (stderr tail, OOMKilled, timeout, ...). */
  error?: string;
  durationMs: number;
  outputs: OutputFile[];
  llm_token_count: TokenCount;
  calls: number;
  /** Calls that failed or were cancelled (when the container ended); the tokens they produced are billed. */
  failedCalls?: number;
  byModel: Record<string, ModelUsage>;
  costUsd: number;
  startedAt: string;
  finishedAt: string;
}

/** One SDK call, as the AI gateway sends it to the workflow (Update `llmCall`). */
export interface LlmCallRequest {
  kind: 'generate' | 'chat';
  /** Defaults to the job's model. */
  model?: string;
  prompt?: string;
  system?: string;
  messages?: ChatMessage[];
  options?: LlmOptions;
  format?: LlmFormat;
}

export interface LlmCallReply {
  content: string;
  model: string;
  usage: TokenCount;
  /** 1-based index of this call within the job. */
  call: number;
}

/** Live view of a job (query `jobStatus`). */
export interface JobLiveStatus {
  phase: JobStatusName;
  usage: JobUsage;
  startedAt: string;
  /** Present once the job finished. */
  result?: ExecutionResult;
}

/** A job's record in DynamoDB (table `jobs`). */
export interface JobRecord {
  jobId: string;
  tenantId: string;
  functionId: string;
  modelId: string;
  workflowId: string;
  status: JobStatusName;
  createdAt: string;
  finishedAt?: string;
  idempotencyKey?: string;
  result?: ExecutionResult;
}

/** A function's record in DynamoDB (table `functions`). */
/**
 * A function id: generated (`fn-<uuid>`, POST /functions) or chosen by the user (`PUT /functions/func-123`).
 * Letters, digits, `_`, `.`, `-`; starts with a letter or digit.
 */
export const FUNCTION_ID_PATTERN = /^[A-Za-z0-9][\w.-]{0,127}$/;

export interface FunctionRecord {
  functionId: string;
  tenantId: string;
  /** 1, 2, ... : every upload under one id is kept; runs use the latest unless they name one. */
  version?: number;
  name?: string;
  entry: string;
  packageKey: string;
  sizeBytes: number;
  sha256: string;
  files: number;
  createdAt: string;
}
