/**
 * A workflow bundle written to a file once per fault test, for orchestrator children started with
 * WORKFLOW_BUNDLE_PATH: a restarted orchestrator then polls within seconds instead of running webpack again.
 * Tracing's workflow interceptors are bundled in, as in the production bundle (scripts/bundle-workflows.ts).
 */
import { writeFileSync } from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../../../lib/telemetry/tracing';

export async function bundleWorkflowsTo(workflowsPath: string, out: string): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
  });
  writeFileSync(out, code);
  return out;
}
