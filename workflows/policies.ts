/**
 * Named activity policies: one per profile, each timeout with a one-line why. Workflows proxy activities
 * through these so no number is inlined at call sites.
 */
import {
  ActivityCancellationType,
  proxyActivities,
  proxyLocalActivities,
  type ActivityInterfaceFor,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import { ErrorType, NON_RETRYABLE_ERROR_TYPES } from '../common/errors';
import { llmQueue } from '../common/task-queues';
import type { LlmActivities } from '../contracts/llm';
import type { ModelCheckActivities } from '../activities/llm/model-check';

/** One LLM call: a small model answers in seconds, but a cold load or a long generation can take minutes. */
export const LLM_CALL: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  // Waiting for a free GPU slot is normal: Temporal queues the task durably until a node polls it.
  scheduleToCloseTimeout: '30 minutes',
  // The activity heartbeats while tokens stream; a dead node is detected within this window.
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/**
 * One LLM call of a job's user code (jobWorkflow's `llmCall`): bounded like any call, but a timeout is final (the
 * same prompt will not go faster on a retry, and each retry would hold a model slot again for the tenant), the
 * activity is cancelled when the container ends and that cancel waits for the activity, so the tokens it had
 * produced come back with it and are billed. A short heartbeat timeout lets that cancel arrive within seconds.
 */
export const JOB_LLM_CALL: ActivityOptions = {
  ...LLM_CALL,
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: {
    ...LLM_CALL.retry,
    maximumAttempts: 3,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES, ErrorType.InferenceTimeout],
  },
};

/**
 * S3/DynamoDB and other light I/O: fast, and retried quickly. Retried for up to 15 minutes, not a number of
 * attempts: a storage outage of a few minutes must not fail a chat, a design or a job's record (10 attempts used
 * to give up after about 40 s of backoff). A 4xx our code maps to a typed failure is still final.
 */
export const STORAGE: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '15 minutes',
  retry: {
    initialInterval: '200 milliseconds',
    maximumInterval: '10 seconds',
    // No maximumAttempts: unlimited within scheduleToCloseTimeout.
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/** A job container: bounded by the job's own wall-clock limit plus the time to collect outputs. */
export const CONTAINER_RUN: ActivityOptions = {
  startToCloseTimeout: '70 minutes',
  // Heartbeats carry progress; a dead executor is detected within this window and the run is retried.
  heartbeatTimeout: '20 seconds',
  retry: {
    initialInterval: '2 seconds',
    maximumInterval: '30 seconds',
    maximumAttempts: 3,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};

/**
 * Terraform validation may run `terraform init` + `validate`, which take tens of seconds; retried a few times only.
 * The activity heartbeats while it runs, so a task lost with a killed worker is retried after 30 s, not 5 min.
 */
export const TERRAFORM_VALIDATE: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES] },
};

/**
 * The design's in-process Terraform steps (combine, schema lookup, conform): milliseconds of work, so a task lost
 * with a killed worker is retried after 30 s (the cluster kill test saw one wait out a 5-minute limit).
 */
export const TERRAFORM_STEP: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES] },
};

/**
 * The llm activities of `model`, pinned to the queue its nodes poll: the one place they are proxied. Each
 * also takes per-call options (`executeWithOptions`: a summary, a retry budget).
 */
export function llmActivities(model: string, overrides: ActivityOptions = {}): ActivityInterfaceFor<LlmActivities> {
  return proxyActivities<LlmActivities>({ ...LLM_CALL, ...overrides, taskQueue: llmQueue(model) });
}

/** Asking the catalog whether a model is served: a local activity, answered from a cache of node replies. */
export const MODEL_CHECK: LocalActivityOptions = {
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3, nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES] },
};

/** Fails the workflow with a non-retryable ModelNotFound when no available node serves `model`. */
export async function assertModelServed(model: string): Promise<void> {
  await proxyLocalActivities<ModelCheckActivities>(MODEL_CHECK).assertModelServed(model);
}
