/**
 * The orchestrator's sticky cache follows its heap limit (workers/orchestrator.ts, cachedWorkflowsFor): the full
 * 250 runs in the heap `npm start` gives it, fewer in a smaller one, so a low ORCHESTRATOR_HEAP_MB evicts sooner
 * instead of running the workflow thread out of heap (bench/rss: 250 chats did not fit in a 160 MB old space).
 */
import v8 from 'node:v8';
import { cachedWorkflowsFor, ORCHESTRATOR_MAX_CACHED_WORKFLOWS } from '../../workers/orchestrator';

// V8's reported limit is the old space given by --max-old-space-size plus 48 MB of young generation.
const limitFor = (oldSpaceMb: number) => oldSpaceMb + 48;

it('keeps the full cache in the 256 MB heap npm start and compose give the orchestrator, and in a default heap', () => {
  expect(ORCHESTRATOR_MAX_CACHED_WORKFLOWS).toBe(250);
  expect(cachedWorkflowsFor(limitFor(256))).toBe(250);
  expect(cachedWorkflowsFor(4144)).toBe(250);
});

it('caches fewer runs in a smaller heap, never fewer than 10', () => {
  expect(cachedWorkflowsFor(limitFor(160))).toBe(128);
  expect(cachedWorkflowsFor(limitFor(192))).toBe(170);
  expect(cachedWorkflowsFor(limitFor(64))).toBe(10);
});

it('reads this process’s own limit by default', () => {
  expect(cachedWorkflowsFor()).toBe(cachedWorkflowsFor(v8.getHeapStatistics().heap_size_limit / 2 ** 20));
});
