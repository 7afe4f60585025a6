/**
 * The worker's workflowsPath: every workflow type, each loaded only when a run of that type calls it.
 *
 * With the SDK's reusable V8 context every workflow run evaluates the bundle's modules again, in a module cache
 * of its own, and keeps them while it is cached. A plain `export *` of every workflow made each run evaluate and
 * hold all of them: a chat carried the design graphs, a prompt the chat agents. Here each export is a thin
 * function that `require`s its module at its first call (webpack still bundles it; it is evaluated in that run's
 * own module cache, synchronously, before the workflow's first command), so a run holds only its own type's code.
 * docs/decisions.md, "What a new workflow run costs".
 *
 * Helpers and constants the modules also export (prompts, schemas, patch ids) are imported from the modules
 * themselves, never from here.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import type * as Prompt from './prompt-workflow';
import type * as Chat from './chat/chat-workflow';
import type * as Job from './job-workflow';
import type * as Design from './design/workflow';
import type * as DesignV1 from './design/v1-workflow';
import type * as Completion from './completion-workflow';
import type * as Ingest from './ingest-workflow';
import type * as Recommendation from './recommendation-workflow';
import type * as UserRecommendation from './user-recommendation-workflow';

export function promptWorkflow(...args: Parameters<typeof Prompt.promptWorkflow>) {
  return (require('./prompt-workflow') as typeof Prompt).promptWorkflow(...args);
}

export function chatWorkflow(...args: Parameters<typeof Chat.chatWorkflow>) {
  return (require('./chat/chat-workflow') as typeof Chat).chatWorkflow(...args);
}

export function jobWorkflow(...args: Parameters<typeof Job.jobWorkflow>) {
  return (require('./job-workflow') as typeof Job).jobWorkflow(...args);
}

export function infraDesignWorkflow(...args: Parameters<typeof Design.infraDesignWorkflow>) {
  return (require('./design/workflow') as typeof Design).infraDesignWorkflow(...args);
}

export function infraDesignV1Workflow(...args: Parameters<typeof DesignV1.infraDesignV1Workflow>) {
  return (require('./design/v1-workflow') as typeof DesignV1).infraDesignV1Workflow(...args);
}

export function completionWorkflow(...args: Parameters<typeof Completion.completionWorkflow>) {
  return (require('./completion-workflow') as typeof Completion).completionWorkflow(...args);
}

export function embeddingsWorkflow(...args: Parameters<typeof Completion.embeddingsWorkflow>) {
  return (require('./completion-workflow') as typeof Completion).embeddingsWorkflow(...args);
}

export function ingestWorkflow(...args: Parameters<typeof Ingest.ingestWorkflow>) {
  return (require('./ingest-workflow') as typeof Ingest).ingestWorkflow(...args);
}

export function recommendationWorkflow(...args: Parameters<typeof Recommendation.recommendationWorkflow>) {
  return (require('./recommendation-workflow') as typeof Recommendation).recommendationWorkflow(...args);
}

export function userRecommendationWorkflow(...args: Parameters<typeof UserRecommendation.userRecommendationWorkflow>) {
  return (require('./user-recommendation-workflow') as typeof UserRecommendation).userRecommendationWorkflow(...args);
}
