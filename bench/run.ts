/**
 * `npm run bench [-- name ...]`: runs every bench/*.bench.ts (or the named ones) against services started for
 * this run, then writes bench/results/<timestamp>.json and bench/results/latest.md and prints the table.
 * A bench that throws becomes an error row; the others still run. Exit code 1 when any bench failed to run
 * (a missed target is a result, not a failure).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadBenches, markdownTable, startBenchServices, type Row } from './lib';

async function run(): Promise<number> {
  const benches = loadBenches(process.argv.slice(2));
  const t0 = Date.now();
  const { ctx, stop, abort } = await startBenchServices();
  ctx.log(
    `services up in ${Date.now() - t0} ms: temporal ${ctx.temporalAddress}, moto ${ctx.awsEndpoint}, ollama ${ctx.ollamaUrl}`,
  );

  let stopping = false;
  const onSignal = () => {
    if (stopping) process.exit(1);
    stopping = true;
    ctx.log('interrupted: stopping');
    abort();
    void stop().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const rows: Row[] = [];
  let errors = 0;
  try {
    for (const bench of benches) {
      if (ctx.signal.aborted) break;
      ctx.log(`${bench.name}: running`);
      const b0 = Date.now();
      try {
        const got = await bench.run(ctx);
        rows.push(...got);
        ctx.log(`${bench.name}: ${got.length} rows in ${Math.round((Date.now() - b0) / 1000)} s`);
      } catch (err) {
        errors++;
        const message = (err as Error).message ?? String(err);
        ctx.log(`${bench.name}: FAILED: ${(err as Error).stack ?? message}`);
        rows.push({ bench: bench.name, metric: 'error', value: NaN, unit: '', note: message.split('\n')[0] });
      }
    }
  } finally {
    await stop();
  }

  const startedAt = new Date(t0).toISOString();
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const jsonFile = path.join(dir, `${startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(jsonFile, JSON.stringify({ startedAt, model: ctx.model, machine, rows }, null, 2) + '\n');
  const table = markdownTable(rows);
  const md = [
    `# Benchmarks ${startedAt}`,
    '',
    `Model ${ctx.model}; ${machine.cpus} CPUs (${machine.cpuModel ?? 'unknown'}), ${machine.memoryGiB} GiB, Node ${machine.node}.`,
    'Baselines are measured in the same run; ratio = value / baseline.',
    '',
    table,
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'latest.md'), md);
  process.stdout.write(`\n${table}\n\nwrote ${path.relative(process.cwd(), jsonFile)} and bench/results/latest.md\n`);
  return errors ? 1 : 0;
}

run().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
