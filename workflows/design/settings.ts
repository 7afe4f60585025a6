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
/**
 * Patch id: the coverage check also knows the parts a request names besides services (a security group, a
 * subnet, versioning, an EC2 server, a log group, ...), so a model plan thinner than the request is replaced too.
 */
export const DESIGN_PLAN_PARTS_PATCH = 'design-plan-parts';
/** Patch id: questions from REQUIREMENT_QUESTIONS, requirements the user's words state take precedence. */
export const DESIGN_QUESTIONS_PATCH = 'design-question-templates';
/**
 * Patch id: the generator works from the AWS provider schema (its JSON schema per resource type, the reply
 * conformed to it), a follow-up revision starts from the previous files, and each revision is committed to git.
 */
export const DESIGN_SCHEMA_PATCH = 'design-provider-schema';
/**
 * Patch id (v1): the engineer's draft goes through the same repair as v2's generator (references outside the
 * design, then the provider schema with the default body as fallback), and a follow-up revision keeps the
 * previous resources and their code, the engineer drafting only what the change adds.
 */
export const DESIGN_V1_SCHEMA_PATCH = 'design-v1-schema-draft';
/**
 * Patch id (v2): a generator reply is used whenever it has an `attributes` object; what it holds is repaired
 * deterministically (references outside the design, then the provider schema) instead of being sent back
 * for repair over a value the schema would keep (a map of tags) or drop anyway.
 */
export const DESIGN_GENERATE_REPAIR_PATCH = 'design-generate-repair';
