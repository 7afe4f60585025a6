/**
 * `npm run bench [-- name ...]`: runs every bench/*.bench.ts (or the named ones) against services started for
 * this run, then writes bench/results/<timestamp>.json and bench/results/latest.md and prints the table.
 * A bench that throws becomes an error row; the others still run. Exit code 1 when any bench failed to run
 * (a missed target is a result, not a failure).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  // latest.md holds the newest figures of every bench: this run's rows, then those of benches it did not run
  // (each from the run named in its note), so a partial run (`npm run bench -- chat`) does not drop the others.
  const latestJson = path.join(dir, 'latest.json');
  const ran = new Set(rows.map((r) => r.bench));
  const earlier = readLatest(latestJson).filter((r) => !ran.has(r.bench));
  const merged = [...rows.map((r) => ({ ...r, at: startedAt })), ...earlier];
  writeFileSync(latestJson, JSON.stringify({ rows: merged }, null, 2) + '\n');
  const table = markdownTable(rows);
  const earlierNote = earlier.length
    ? [
        '',
        `Benches not run this time, from earlier runs (each row's run in its note):`,
        '',
        markdownTable(earlier.map((r) => ({ ...r, note: [r.note, `run ${r.at}`].filter(Boolean).join('; ') }))),
      ]
    : [];
  const md = [
    `# Benchmarks ${startedAt}`,
    '',
    `Model ${ctx.model}; ${machine.cpus} CPUs (${machine.cpuModel ?? 'unknown'}), ${machine.memoryGiB} GiB, Node ${machine.node}.`,
    'Baselines are measured in the same run; ratio = value / baseline.',
    '',
    table,
    ...earlierNote,
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

/** The rows of the previous latest.json (each with the run it came from), or none. */
function readLatest(file: string): (Row & { at: string })[] {
  if (!existsSync(file)) return [];
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { rows?: (Row & { at: string })[] };
    return Array.isArray(parsed.rows) ? parsed.rows : [];
  } catch {
    return [];
  }
}
