/**
 * What every design run shares before any node runs: its defaults (budgets, timeouts) and the patch ids that
 * choose its node code. A patch id is recorded in histories: never rename one. Pure data, workflow-safe.
 */

/** Defaults of a design run; the input may override each. */
export const DESIGN_DEFAULTS = {
  maxFixIterations: 2,
  maxQuestionRounds: 3,
  answerTimeout: '24 hours',
  followUpWindow: '1 hour',
  maxReviewRounds: 3,
  maxResources: 20,
} as const;

/**
 * Patch id of structured output with one repair request and deterministic fallbacks (and of the plan's
 * deterministic graph repair). Designs started before it replay the earlier node code (legacy.ts).
 */
export const DESIGN_STRUCTURED_PATCH = 'design-structured-llm';
/** Patch id: infrastructure words in the request decide the route for `infrastructure` over the model. */
export const DESIGN_ROUTE_WORDS_PATCH = 'design-route-words';
/** Patch id: a model plan missing a resource type the request's words name is replaced by the keyword plan. */
export const DESIGN_PLAN_COVERAGE_PATCH = 'design-plan-coverage';
/** Patch id: questions from REQUIREMENT_QUESTIONS, requirements the user's words state take precedence. */
export const DESIGN_QUESTIONS_PATCH = 'design-question-templates';
/**
 * Patch id: the generator works from the AWS provider schema (its JSON schema per resource type, the reply
 * conformed to it), a follow-up revision starts from the previous files, and each revision is committed to git.
 */
export const DESIGN_SCHEMA_PATCH = 'design-provider-schema';
