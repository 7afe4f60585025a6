/**
 * Replays every committed history (test/fixtures/histories) against the production workflow bundle
 * (workflows/index.ts), so a change that would break running workflows (nondeterminism) fails here.
 * Histories are recorded by the integration tests with AINODE_RECORD_HISTORIES=1.
 */
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import * as workflows from '../../workflows';
import { historyFiles, loadHistory } from '../helpers/histories';
import { quietRuntime } from '../helpers/env';
import { WORKFLOW_INTERCEPTOR_MODULES } from '../../lib/telemetry/tracing';

jest.setTimeout(120_000);

let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  quietRuntime();
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    // As the production bundle (scripts/bundle-workflows.ts): with tracing's workflow interceptors.
    workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error, log() {} },
  });
});

const typeOf = (file: string) =>
  loadHistory(file).events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '';
// Histories of test-only workflows (e.g. the graph engine's) are replayed by their own tests.
const files = historyFiles().filter((f) => typeOf(f).endsWith('Workflow') && typeOf(f) in workflows);

it('has a recorded history for every production workflow', () => {
  const production = Object.keys(workflows).filter((k) => k.endsWith('Workflow'));
  expect(new Set(files.map(typeOf))).toEqual(new Set(production));
});

it.each(files)('replays %s deterministically', async (file) => {
  const history = loadHistory(file);
  expect(history.events?.length).toBeGreaterThan(3);
  await Worker.runReplayHistory({ workflowBundle: bundle }, history, file);
});

it('keeps zod out of the workflow bundle: a workflow re-evaluates every module it imports on each new run', () => {
  // The reusable V8 context shares only the SDK's own modules; ours (and what they import) run again per workflow
  // run, so a schema library there costs every start (docs/decisions.md, "What a new workflow run costs").
  const modules = [...bundle.code.matchAll(/^\/\*\*\*\/ "([^"]+)"$/gm)].map((m) => m[1]!);
  expect(modules.length).toBeGreaterThan(50);
  expect(modules.filter((m) => m.includes('node_modules/zod/'))).toEqual([]);
  // Nor OpenTelemetry: workflow spans are plain objects (workflows/tracing.ts), not the library's ~400 KB.
  expect(modules.filter((m) => m.includes('node_modules/@opentelemetry/'))).toEqual([]);
  expect(modules).toContain('./workflows/tracing.ts');
});
