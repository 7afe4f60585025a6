/**
 * Recorded workflow histories for replay tests. Integration tests call `recordHistory` after a representative
 * run; with AINODE_RECORD_HISTORIES=1 the history is written to test/fixtures/histories/<name>.json (commit it).
 * test/unit/replay.test.ts replays every committed history against today's workflow code, so a change that
 * breaks determinism for running workflows fails the suite.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';

export const HISTORIES_DIR = path.join(__dirname, '..', 'fixtures', 'histories');

export async function recordHistory(name: string, handle: WorkflowHandle): Promise<void> {
  if (process.env.AINODE_RECORD_HISTORIES !== '1') return;
  const history = temporal.api.history.v1.History.fromObject(await handle.fetchHistory());
  const obj = temporal.api.history.v1.History.toObject(history, { longs: String, enums: String, bytes: String });
  writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), JSON.stringify(obj, null, 1) + '\n');
}

export function loadHistory(file: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(HISTORIES_DIR, file), 'utf8')));
}

export function historyFiles(): string[] {
  return readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
}
