/**
 * Every signal, query and update of every workflow, defined once. The API imports these, never a string name.
 * Sections are grouped per workflow.
 */
import { defineQuery } from '@temporalio/workflow';
import { defineSignal } from '@temporalio/workflow';
import { defineUpdate } from '@temporalio/workflow';
import type { ChatInboundMessage, ChatStatus } from './chat';
import type { PromptStatus } from './prompt';
import type { GraphSnapshot } from './graph';
import type { DesignAnswers, DesignAnswersAck, DesignEventsPage, DesignFollowUp, DesignStatus } from './design';
import type { JobLiveStatus, LlmCallReply, LlmCallRequest } from './jobs';
import type { BrowsingEventsSignal, UserRecommendationStatus } from './user-recommendation';

// ---------------------------------------------------------------- promptWorkflow
export const promptStatusQuery = defineQuery<PromptStatus>('promptStatus');

// ---------------------------------------------------------------- chatWorkflow
/** A message from the channel (customer or manager); redeliveries are ignored by id. */
export const chatMessageSignal = defineSignal<[ChatInboundMessage]>('chatMessage');
/** Ends a manager's pause: the bot answers again from the next customer message. */
export const chatResumeSignal = defineSignal('chatResume');
export const chatStatusQuery = defineQuery<ChatStatus>('chatStatus');

// ---------------------------------------------------------------- graph engine (workflows/graph)
/** Current node(s), state and steps of the graph a workflow runs (registered by `compile()`). */
export const graphStateQuery = defineQuery<GraphSnapshot<unknown>>('graphState');
/** Generic human input for a graph's pending `interrupt` (fire-and-forget). */
export const graphResumeSignal = defineSignal<[unknown]>('graphResume');
/** The same, acknowledged: rejected when the graph is not waiting; returns the node that was waiting. */
export const graphResumeUpdate = defineUpdate<{ node: string }, [unknown]>('graphResume');

// ---------------------------------------------------------------- infraDesignWorkflow / infraDesignV1Workflow
/** Phase, node, pending questions, plan, files, validation and usage of a design. */
export const designStatusQuery = defineQuery<DesignStatus>('designStatus');
/** The design's progress events after `after` (GET /designs/:id/events). */
export const designEventsQuery = defineQuery<DesignEventsPage, [{ after: number }]>('designEvents');
/** Answers to the pending questions, fire-and-forget (unknown question ids are ignored). */
export const designAnswersSignal = defineSignal<[DesignAnswers]>('designAnswers');
/** Answers, validated and acknowledged synchronously: rejected when the design does not wait or an id is unknown. */
export const submitDesignAnswersUpdate = defineUpdate<DesignAnswersAck, [DesignAnswers]>('submitDesignAnswers');
/** A follow-up change: revises the design from `gather` (queued while a revision runs). */
export const designMessageSignal = defineSignal<[DesignFollowUp]>('designMessage');

// ---------------------------------------------------------------- jobWorkflow
/** Live phase and metered usage of a job (the API's `GET /jobs/:id` while it runs). */
export const jobStatusQuery = defineQuery<JobLiveStatus>('jobStatus');
/**
 * One LLM call from the job's user code, sent by the executor's AI gateway. The handler runs the llm
 * activity on the model's queue and meters Ollama's own token counts; the SDK's call id is the update id,
 * so a retried call is answered once and metered once.
 */
export const llmCallUpdate = defineUpdate<LlmCallReply, [LlmCallRequest]>('llmCall');

// ---------------------------------------------------------------- userRecommendationWorkflow
/** A browsing event (or small batch) for a user's workflow (`POST /users/:userId/browsing-events`). */
export const browsingEventsSignal = defineSignal<[BrowsingEventsSignal]>('browsingEvents');
/** The user's latest recommendation, with when and why (`GET /users/:userId/recommendations`). */
export const userRecommendationsQuery = defineQuery<UserRecommendationStatus>('userRecommendations');
