/**
 * When the cluster kill test sees a job end other than `succeeded` (or a workflow fail), it writes down why before it
 * fails: the job's record (error, stderr), its workflow history (every event, payload bytes left out), the lines of
 * every process log that name it and the tail of each worker log, and what the test did when (the kill). One file
 * per run under .ainode/logs/cluster-test/, kept after the cluster's own dir is removed; its path is in the failure.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import { STATE_DIR } from '../../scripts/lib/toolchain';
import type { ClusterProcess } from '../../scripts/lib/cluster';

export const DIAGNOSIS_DIR = path.join(STATE_DIR, 'logs', 'cluster-test');

const EventType = temporal.api.enums.v1.EventType;

/** Payload bytes say nothing here and may be large or encrypted: dropped; long strings cut. */
function lean(key: string, value: unknown): unknown {
  if (key === 'data' || key === 'metadata') return undefined;
  if (typeof value === 'string' && value.length > 600) return `${value.slice(0, 600)}…`;
  return value;
}

/** One line per history event: its id, time, type and attributes (without payload bytes). */
export async function historyLines(client: Client, workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).map((ev) => {
    const type = EventType[ev.eventType ?? 0] ?? String(ev.eventType);
    const attrsKey = Object.keys(ev).find((k) => k.endsWith('EventAttributes') && (ev as any)[k]);
    const attrs = attrsKey ? JSON.stringify((ev as any)[attrsKey], lean) : '';
    const secs = Number(ev.eventTime?.seconds ?? 0);
    const at = secs ? new Date(secs * 1000 + Math.floor((ev.eventTime?.nanos ?? 0) / 1e6)).toISOString() : '?';
    return `#${String(ev.eventId)} ${at} ${type.replace('EVENT_TYPE_', '')} ${attrs}`;
  });
}

function logLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
}

export interface Diagnosis {
  /** What the test did, in order (kills and the like), with times. */
  timeline: string[];
  processes: ClusterProcess[];
  client: Client;
}

/** Writes what is known about each bad job / workflow to one file and returns its path. */
export async function writeDiagnosis(
  d: Diagnosis,
  subjects: { id: string; record?: unknown }[],
  extra: string[] = [],
): Promise<string> {
  const out: string[] = ['# timeline', ...d.timeline, '', ...extra];
  for (const s of subjects) {
    out.push('', `# ${s.id}`, '## record', JSON.stringify(s.record, null, 1) ?? 'none');
    out.push('## history');
    try {
      out.push(...(await historyLines(d.client, s.id)));
    } catch (err) {
      out.push(`(no history: ${(err as Error).message})`);
    }
    out.push('## log lines naming it');
    for (const p of d.processes) {
      for (const line of logLines(p.logFile)) if (line.includes(s.id)) out.push(`[${p.name}] ${line.slice(0, 2000)}`);
    }
  }
  out.push('', '# worker log tails');
  for (const p of d.processes) {
    const exit = p.proc.signalCode ?? (p.proc.exitCode === null ? 'running' : `exit ${p.proc.exitCode}`);
    out.push(`## ${p.name} (${exit})`, ...logLines(p.logFile).slice(-60));
  }
  mkdirSync(DIAGNOSIS_DIR, { recursive: true });
  const file = path.join(DIAGNOSIS_DIR, `${new Date().toISOString().replace(/[:.]/g, '-')}.txt`);
  writeFileSync(file, out.join('\n') + '\n');
  return file;
}
