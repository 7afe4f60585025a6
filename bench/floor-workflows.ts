/** Workflows for bench/temporal-floor.bench.ts: the smallest shapes whose latency bounds every ainode path. */
import { proxyActivities, sleep } from '@temporalio/workflow';

const { floorNoop } = proxyActivities<{ floorNoop(): Promise<number> }>({ startToCloseTimeout: '10 seconds' });

export async function floorEmpty(): Promise<number> {
  return 1;
}

export async function floorOneActivity(): Promise<number> {
  return floorNoop();
}

export async function floorTimer(ms: number): Promise<void> {
  await sleep(ms);
}
