/** Terraform activities (orchestrator queue): combine generated snippets into files, and validate them. */
import { combineTerraform } from '../../lib/terraform/combine';
import { findTerraformBinary, validateTerraform } from '../../lib/terraform/validate';
import type { TerraformValidation } from '../../contracts/design';

export interface TerraformDeps {
  /** terraform/tofu binary; default: AINODE_TERRAFORM_BIN or the first on PATH. `null` never runs it. */
  terraformBin?: string | null;
  timeoutMs?: number;
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
      return validateTerraform(input.files, { terraformBin: bin, timeoutMs: deps.timeoutMs });
    },
  };
}

export type TerraformActivities = ReturnType<typeof createTerraformActivities>;
export { combineTerraform, splitBlocks, stripFences } from '../../lib/terraform/combine';
export { staticValidate, validateTerraform, findTerraformBinary } from '../../lib/terraform/validate';
