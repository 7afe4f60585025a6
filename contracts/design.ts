/**
 * Data shapes of the infrastructure-design workflows (v2 graph and v1 graph), shared by the workflows, their
 * activities and the API. Workflow-safe: types and plain constants only.
 */
import type { Duration } from '@temporalio/common';
import type { LlmUsage } from './llm';

/** One clarifying question; answers are keyed by `id`. */
export interface DesignQuestion {
  id: string;
  text: string;
}

/**
 * `{questionId: answer}`; several rounds may be needed. `answerId` (from the API: the request's Idempotency-Key,
 * or a random id) makes a repeated delivery a no-op: the workflow applies each answerId once.
 */
export interface DesignAnswers {
  answers: Record<string, string>;
  answerId?: string;
}

export interface DesignAnswersAck {
  accepted: string[];
  round: number;
  answerId?: string;
  /** True when this answerId had already been applied: nothing was applied again. */
  duplicate?: boolean;
}

/** A follow-up change request for a running or finished design. */
export interface DesignFollowUp {
  message: string;
}

/** One resource of the structured plan (`dependsOn` holds other resources' ids). */
export interface PlannedResource {
  id: string;
  type: string;
  name: string;
  dependsOn: string[];
  requirements: string;
}

/** A nested block of a generated resource (`versioning_configuration { ... }`); defaults may nest further. */
export interface GeneratedBlock {
  type: string;
  attributes: Record<string, unknown>;
  blocks?: GeneratedBlock[];
}

/** One resource as the generator describes it; rendered to HCL by `renderResource` (always parseable). */
export interface GeneratedResource {
  attributes?: Record<string, unknown>;
  blocks?: GeneratedBlock[];
  outputs?: { name: string; value: string; description?: string }[];
  /** Whole HCL blocks that go with the resource (a data source, an input variable); defaults only. */
  extra?: string[];
}

/**
 * How a node got its structured answer: the model's first reply, the reply to one repair request (the
 * parse/validation error sent back), or the deterministic fallback (keyword route/plan, default body, no fix).
 */
export type LlmPath = 'model' | 'repaired' | 'fallback';

export interface DesignPlan {
  resources: PlannedResource[];
  /** Topological levels of resource ids: each level depends only on earlier ones. */
  levels: string[][];
}

/** A Terraform file stored in S3 (contents never travel in results). */
export interface DesignFileRef {
  name: string;
  key: string;
  size: number;
}

/** Whether a check ran, and how it went: a check that did not run is never reported as passed. */
export type CheckStatus = 'passed' | 'failed' | 'not_run';

export interface TerraformDiagnostic {
  file?: string;
  severity: 'error' | 'warning';
  /** hcl-parse | reference | provider | duplicate | schema | terraform */
  check: string;
  message: string;
}

export interface TerraformValidation {
  ok: boolean;
  diagnostics: TerraformDiagnostic[];
  /** Human-readable validator output (what the fix pass shows the model). */
  output: string;
  /** Whether `terraform`/`tofu validate` ran, and why not. */
  terraform: { ran: boolean; binary?: string; ok?: boolean; reason?: string };
  /** The check against the AWS provider schema (absent in validations made before it existed). */
  schemaCheck?: { status: CheckStatus; provider?: string; reason?: string; checked: number; errors: number };
  /** `terraform validate`: passed | failed | not_run (absent before it was reported). */
  terraformValidate?: CheckStatus;
}

export type DesignGraphVersion = 'v2' | 'v1';

export interface InfraDesignInput {
  designId: string;
  request: string;
  model: string;
  tenant?: string;
  /** Fix passes after the first validation (default 2). */
  maxFixIterations?: number;
  /** Question rounds before planning with what is known (default 3). */
  maxQuestionRounds?: number;
  /** How long a question round waits for answers before continuing with defaults (default 24 h). */
  answerTimeout?: Duration;
  /** How long a finished design accepts follow-up messages before the run closes (default 1 h). */
  followUpWindow?: Duration;
  /** v1 only: engineer ⇄ lead rounds (default 3). */
  maxReviewRounds?: number;
  /** Ollama options for every call (e.g. a small num_predict in tests). */
  llmOptions?: { num_predict?: number; temperature?: number; seed?: number; repeat_penalty?: number };
}

/** `cancelled` is reported by the API for a design cancelled with `POST /designs/:id/cancel`. */
export type DesignPhase =
  'running' | 'waiting_for_answers' | 'completed' | 'invalid' | 'ended' | 'failed' | 'cancelled';

/** What `GET /designs/:id` shows, from the `designStatus` query. */
export interface DesignStatus {
  designId: string;
  graph: DesignGraphVersion;
  phase: DesignPhase;
  /** The graph node running now (or last run). */
  node?: string;
  revision: number;
  questions: DesignQuestion[];
  requirements: Record<string, string>;
  plan?: DesignPlan;
  files: DesignFileRef[];
  validation?: TerraformValidation;
  /** The check against the AWS provider schema: passed | failed | not_run. */
  schemaCheck: CheckStatus;
  /** `terraform validate`: passed | failed | not_run (not_run where no binary or providers are present). */
  terraformValidate: CheckStatus;
  /**
   * True only when `terraform validate` ran and passed (before the schema check existed this reflected static
   * checks alone; a check that did not run never makes a design "validated").
   */
  terraformValidated: boolean;
  /** Mermaid flowchart of the resources and their dependencies ('' before a plan exists). */
  diagram: string;
  /** Every committed revision (designs started before revisions were committed: none). */
  revisions: DesignRevision[];
  reply?: string;
  usage: LlmUsage;
  llmCalls: number;
  /**
   * Per structured call (`route`, `gather`, `plan`, `generate:<resource id>`, `fix`; v1: `consultant`, `engineer`,
   * `lead`): which path gave the answer. Empty for designs started before the structured-output patch.
   */
  llmPaths: Record<string, LlmPath>;
  /** What was repaired or replaced deterministically, one line each (fallbacks, dropped plan edges). */
  notes: string[];
  steps: { step: number; node: string; taskIndex: number }[];
  /** The answerIds applied so far, in order (answers sent with an id; each is applied once). */
  answersApplied?: string[];
}

export type DesignResult = Omit<DesignStatus, 'steps' | 'questions'> & { steps: number };

/** One revision of a design, committed to the design's git repository (under the state dir, bundled in S3). */
export interface DesignRevision {
  revision: number;
  /** The commit's sha. */
  commit: string;
  /** `revision N: <request or change request>`. */
  message: string;
  files: string[];
  /** Lines added and removed against the previous revision (all lines for the first). */
  added: number;
  removed: number;
  /** `git diff` against the previous revision (cut at DESIGN_DIFF_MAX_CHARS). */
  diff: string;
}

/** Longest diff kept in a revision's record. */
export const DESIGN_DIFF_MAX_CHARS = 20_000;

/** S3 key of a design's git repository (a `git bundle` of every revision). */
export function designRepoKey(designId: string): string {
  return `designs/${designId}/repo.bundle`;
}

/**
 * One progress event of a design (`GET /designs/:id/events`); `seq` numbers them from 1 for the whole run
 * (every revision), and is the SSE id a client resumes from with Last-Event-ID.
 */
export type DesignEvent = { seq: number; revision: number } & (
  | { type: 'node_start'; node: string; resource?: string }
  | { type: 'node_end'; node: string; resource?: string }
  | { type: 'questions'; questions: DesignQuestion[] }
  | { type: 'plan'; plan: DesignPlan }
  | { type: 'resource'; resource: string; address: string; path: LlmPath | 'default'; hcl: string; dropped: string[] }
  | {
      type: 'validation';
      ok: boolean;
      schemaCheck: CheckStatus;
      terraformValidate: CheckStatus;
      errors: number;
      output: string;
    }
  | { type: 'files'; files: Record<string, string>; diagram: string }
  | { type: 'revision'; record: DesignRevision }
  | { type: 'done'; phase: DesignPhase }
);

/** What the events query answers: the events after `after`, and whether more can come. */
export interface DesignEventsPage {
  events: DesignEvent[];
  /** The last seq the workflow has produced (events older than the kept window are gone). */
  lastSeq: number;
  /** The design is not running a revision now (completed, invalid, ended): no event comes until a follow-up. */
  idle: boolean;
  phase: DesignPhase;
}

/** S3 key of a design file. */
export function designFileKey(designId: string, name: string): string {
  return `designs/${designId}/${name}`;
}

/** The files `combine` writes, in this order. */
export const DESIGN_FILE_NAMES = ['providers.tf', 'main.tf', 'variables.tf', 'outputs.tf'] as const;
