/**
 * Bundles every workflow (workflows/index.ts) once, ahead of time. The orchestrator then loads the bundle
 * (WORKFLOW_BUNDLE_PATH) instead of running webpack at start, which saves seconds and ~100 MB of RSS.
 * Usage: tsx scripts/bundle-workflows.ts [out.js]   (default .ainode/workflow-bundle.js)
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { STATE_DIR } from './lib/toolchain';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../lib/telemetry/tracing';

export const DEFAULT_BUNDLE_PATH = path.join(STATE_DIR, 'workflow-bundle.js');

export async function bundleWorkflows(out = DEFAULT_BUNDLE_PATH): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    // Tracing's workflow interceptors live in the bundle (a worker given a bundle ignores workflowModules).
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, code);
  return out;
}

if (require.main === module) {
  const out = path.resolve(process.argv[2] ?? DEFAULT_BUNDLE_PATH);
  bundleWorkflows(out).then(
    (p) => console.log(`workflow bundle: ${path.relative(process.cwd(), p)}`),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
