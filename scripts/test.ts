/**
 * `npm test`: after scripts/setup, start the shared services the suite needs (S3/DynamoDB emulator, an
 * Ollama node with the default model, the Docker engine is checked by setup), run jest with their
 * addresses in the environment, and stop what we started. Each integration test file runs its own
 * Temporal dev server (TestWorkflowEnvironment.createLocal with the installed binary), so task queues
 * never collide between files. `npm run test:unit` needs none of this: it is plain jest on the unit project.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { freePort, startMoto, startOllama, type Service } from './lib/services';
import { readToolchain, STATE_DIR } from './lib/toolchain';

async function run(): Promise<number> {
  const tc = readToolchain();
  const logs = path.join(STATE_DIR, 'logs', 'test');
  const started: Service[] = [];
  const stopAll = async () => {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));
  try {
    const t0 = Date.now();
    const [moto, ollama] = await Promise.all([
      startMoto(tc, { port: await freePort(), logFile: path.join(logs, 'moto.log') }),
      startOllama(tc, { port: await freePort(), logFile: path.join(logs, 'ollama.log'), numParallel: 4 }),
    ]);
    started.push(moto, ollama);
    console.log(`[test] services up in ${Date.now() - t0} ms: moto ${moto.url}, ollama ${ollama.url}`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AINODE_TEST_SERVICES: '1',
      AINODE_TEMPORAL_BIN: tc.temporal,
      AINODE_OLLAMA_BIN: tc.ollama,
      AINODE_OLLAMA_MODELS: tc.ollamaModels,
      AINODE_GGUF_DIR: tc.ggufDir,
      AINODE_TEST_OLLAMA_URL: ollama.url,
      AWS_ENDPOINT_URL: moto.url,
      DEFAULT_MODEL: tc.defaultModel,
      AINODE_EMBED_MODEL: tc.embedModel ?? '',
      JOB_RUNTIME_IMAGE: tc.runtimeImage,
      AINODE_TERRAFORM_BIN: tc.terraform,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    };
    const resultsFile = path.join(STATE_DIR, 'jest-results.json');
    rmSync(resultsFile, { force: true });
    const jestArgs = ['--ci', '--maxWorkers=2', '--json', `--outputFile=${resultsFile}`, ...process.argv.slice(2)];
    const code = await new Promise<number>((resolve) => {
      const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), ...jestArgs], { stdio: 'inherit', env });
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
    });
    // One plain closing line, whatever reads the log: "N passed, N failed".
    const line = closingLine(existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : undefined, code);
    console.log(`\n${line}`);
    return code;
  } finally {
    await stopAll();
  }
}

/**
 * "N passed, N failed" from jest's JSON results. A test file that crashed while loading has no failed tests but
 * counts as one failure; so does a run that failed (non-zero exit) without any failure in the results.
 */
export function closingLine(resultsJson: string | undefined, exitCode: number): string {
  let passed = 0;
  let failed = 0;
  if (resultsJson) {
    const r = JSON.parse(resultsJson) as {
      numPassedTests: number;
      numFailedTests: number;
      numRuntimeErrorTestSuites?: number;
    };
    passed = r.numPassedTests;
    failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  }
  if (exitCode !== 0 && failed === 0) failed = 1;
  return `${passed} passed, ${failed} failed`;
}

if (require.main === module)
  run().then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
