/**
 * Terraform activities (orchestrator queue): combine generated snippets into files, validate them, and the AWS
 * provider schema the generator works from (its JSON schema per resource type, and conforming a reply to it).
 */
import { Context } from '@temporalio/activity';
import { combineTerraform } from '../../lib/terraform/combine';
import { findTerraformBinary, validateTerraform } from '../../lib/terraform/validate';
import { conformResource, generationSchema } from '../../lib/terraform/schema';
import type { GeneratedResource, TerraformValidation } from '../../contracts/design';

export interface TerraformDeps {
  /** terraform/tofu binary; default: AINODE_TERRAFORM_BIN or the first on PATH. `null` never runs it. */
  terraformBin?: string | null;
  timeoutMs?: number;
}

/** Whether this runs as an activity (tests also call the functions directly). */
function inActivity(): boolean {
  try {
    Context.current();
    return true;
  } catch {
    return false;
  }
}

export interface CombineInput {
  snippets: string[];
  region?: string;
}

export function createTerraformActivities(deps: TerraformDeps = {}) {
  const bin = deps.terraformBin === null ? undefined : (deps.terraformBin ?? findTerraformBinary());
  return {
    /** Snippets → providers.tf, main.tf, variables.tf, outputs.tf (deduplicated). */
    async terraformCombine(input: CombineInput): Promise<Record<string, string>> {
      return combineTerraform(input.snippets, { region: input.region });
    },
    /** HCL parser + static checks (+ terraform validate when available). Never throws on invalid HCL. */
    async terraformValidate(input: { files: Record<string, string> }): Promise<TerraformValidation> {
      // Heartbeats while `terraform` runs, so a worker that dies meanwhile is noticed in 30 s (TERRAFORM_VALIDATE).
      const beat = inActivity() ? setInterval(() => Context.current().heartbeat(), 5_000) : undefined;
      try {
        return await validateTerraform(input.files, { terraformBin: bin, timeoutMs: deps.timeoutMs });
      } finally {
        clearInterval(beat);
      }
    },
    /** The JSON schema the generator's call for a resource of `type` is constrained by (null: type unknown). */
    async terraformResourceSchema(input: { type: string }): Promise<Record<string, unknown> | null> {
      return generationSchema(input.type) ?? null;
    },
    /** A generated resource with only what the provider schema knows; required parts from `fallback`. */
    async terraformConform(input: { type: string; generated: GeneratedResource; fallback: GeneratedResource }) {
      return conformResource(input.type, input.generated, input.fallback);
    },
  };
}

export type TerraformActivities = ReturnType<typeof createTerraformActivities>;
export { combineTerraform, splitBlocks, stripFences } from '../../lib/terraform/combine';
export { staticValidate, validateTerraform, findTerraformBinary } from '../../lib/terraform/validate';
