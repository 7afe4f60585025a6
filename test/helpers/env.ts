/** Addresses of the services `npm test` started (scripts/test.ts), and a Temporal dev server per test file. */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { loadConfig, type Config } from '../../common/config';
import { readDevServerFlags, readSearchAttributes } from '../../scripts/lib/services';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with \`npm test\`, which starts the services it needs.`);
  return v;
}

export const services = {
  get temporalBin() {
    return need('AINODE_TEMPORAL_BIN');
  },
  get ollamaBin() {
    return need('AINODE_OLLAMA_BIN');
  },
  get ollamaModels() {
    return need('AINODE_OLLAMA_MODELS');
  },
  get ggufDir() {
    return need('AINODE_GGUF_DIR');
  },
  get ollamaUrl() {
    return need('AINODE_TEST_OLLAMA_URL');
  },
  get awsEndpoint() {
    return need('AWS_ENDPOINT_URL');
  },
  get model() {
    return process.env.DEFAULT_MODEL ?? 'smollm2:135m';
  },
  get runtimeImage() {
    return process.env.JOB_RUNTIME_IMAGE ?? 'ainode/python-runtime:latest';
  },
};

let runtimeInstalled = false;
/** Quiet the Temporal runtime logger once per test process. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // already installed by another helper in this process
  }
}

/** A fresh Temporal dev server for this test file, with our search attributes registered. */
export async function createTemporalEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const searchAttributes = Object.entries(readSearchAttributes()).map(([name, type]) => ({
    name,
    type: type.toUpperCase() as 'KEYWORD',
  }));
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: services.temporalBin },
      searchAttributes,
      extraArgs: [
        '--dynamic-config-value',
        'frontend.enableUpdateWorkflowExecution=true',
        ...readDevServerFlags(),
        '--log-level',
        'error',
      ],
    },
  });
}

/** Config for in-process workers/API in tests: the real services, plus overrides. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env,
    OLLAMA_URL: process.env.AINODE_TEST_OLLAMA_URL,
    OLLAMA_NODES: process.env.AINODE_TEST_OLLAMA_URL ? `node-1=${process.env.AINODE_TEST_OLLAMA_URL}` : undefined,
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

/** A unique id for workflow ids, queues, buckets and keys in one test. */
export function uid(prefix = 't'): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
