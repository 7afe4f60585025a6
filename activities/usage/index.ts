/**
 * Metering for the AI server (orchestrator queue): one usage row per call, priced from the price table in
 * config, charged to the caller's tenant and API key. Idempotent: a retried write keeps the first row.
 */
import { priceOf, type Config } from '../../common/config';
import type { ApiUsageRecord } from '../../contracts/completion';
import { recordApiUsage } from '../../lib/jobs/store';
import type { Storage } from '../../lib/storage/clients';
import { metrics } from '../../lib/telemetry/metrics';

export interface UsageDeps {
  storage: Storage;
  config: Pick<Config, 'PRICE_TABLE'>;
}

export function createUsageActivities(deps: UsageDeps) {
  return {
    async recordApiUsage(rec: ApiUsageRecord): Promise<void> {
      const costUsd = Math.round(priceOf(deps.config, rec.model, rec.promptTokens, rec.completionTokens) * 1e9) / 1e9;
      await recordApiUsage(
        deps.storage,
        {
          tenantId: rec.caller.tenantId,
          keyId: rec.caller.keyId,
          callId: rec.callId,
          source: rec.source,
          model: rec.model,
        },
        { prompt: rec.promptTokens, completion: rec.completionTokens, costUsd },
      );
      // Per-tenant usage for dashboards; the usage table stays the record for billing (a retry may count twice here).
      metrics.usageTokens.inc(
        { tenant: rec.caller.tenantId, model: rec.model, kind: rec.source },
        rec.promptTokens + rec.completionTokens,
      );
    },
  };
}

export type UsageActivities = ReturnType<typeof createUsageActivities>;
