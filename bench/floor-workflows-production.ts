/**
 * The production workflow module (workflows/index.ts) plus the floor's empty workflow, for bench/temporal-floor.ts:
 * the same workflow run in this bundle and in the one-file floor bundle shows what the production bundle's own
 * modules cost each new run (a workflow re-evaluates every module it imports; docs/decisions.md).
 */
export * from '../workflows';
export { floorEmpty } from './floor-workflows';
