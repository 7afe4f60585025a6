/**
 * Jobs persistence activities (orchestrator queue): the job's final record, its full result and its usage
 * rows. Cost is priced here, from the price table in config, so workflows never read configuration.
 */
import { priceOf, type Config } from '../../common/config';
import type { Storage } from '../../lib/storage/clients';
import { recordJobResult } from '../../lib/jobs/store';
import { metrics } from '../../lib/telemetry/metrics';
import type { ExecutionResult, JobInput } from '../../contracts/jobs';

export interface JobsDeps {
  storage: Storage;
  config: Pick<Config, 'PRICE_TABLE'>;
}

/** Prices every model's tokens and the total (USD, rounded to 1e-9 so sums stay stable). */
export function priceResult(config: Pick<Config, 'PRICE_TABLE'>, result: ExecutionResult): ExecutionResult {
  const round = (n: number) => Math.round(n * 1e9) / 1e9;
  const byModel: ExecutionResult['byModel'] = {};
  let costUsd = 0;
  for (const [model, u] of Object.entries(result.byModel)) {
    const cost = round(priceOf(config, model, u.prompt, u.completion));
    byModel[model] = { ...u, costUsd: cost };
    costUsd += cost;
  }
  return { ...result, byModel, costUsd: round(costUsd) };
}

export function createJobsActivities(deps: JobsDeps) {
  return {
    /** Prices the result, then writes it (S3 + jobs record + usage rows). Idempotent: safe to retry. */
    async finishJob({ job, result }: { job: JobInput; result: ExecutionResult }): Promise<ExecutionResult> {
      const priced = priceResult(deps.config, result);
      await recordJobResult(
        deps.storage,
        {
          jobId: job.jobId,
          tenantId: job.tenantId,
          functionId: job.functionId,
          modelId: job.modelId,
          workflowId: job.jobId,
          createdAt: job.createdAt,
        },
        priced,
      );
      // Dashboards: outcomes and per-tenant tokens (the jobs and usage tables stay the record; a retry may count twice).
      metrics.jobOutcomes.inc({ outcome: priced.status });
      for (const [model, u] of Object.entries(priced.byModel)) {
        metrics.usageTokens.inc({ tenant: job.tenantId, model, kind: 'job' }, u.prompt + u.completion);
      }
      return priced;
    },
  };
}

export type JobsActivities = ReturnType<typeof createJobsActivities>;
