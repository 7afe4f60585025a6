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

/** `{questionId: answer}`; several rounds may be needed. */
export interface DesignAnswers {
  answers: Record<string, string>;
}

export interface DesignAnswersAck {
  accepted: string[];
  round: number;
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

export interface TerraformDiagnostic {
  file?: string;
  severity: 'error' | 'warning';
  /** hcl-parse | reference | provider | duplicate | terraform */
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
  terraformValidated: boolean;
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
}

export type DesignResult = Omit<DesignStatus, 'steps' | 'questions'> & { steps: number };

/** S3 key of a design file. */
export function designFileKey(designId: string, name: string): string {
  return `designs/${designId}/${name}`;
}

/** The files `combine` writes, in this order. */
export const DESIGN_FILE_NAMES = ['providers.tf', 'main.tf', 'variables.tf', 'outputs.tf'] as const;
