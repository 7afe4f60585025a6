/** workflowsPath for bench/design.bench.ts: the v2 design workflow and the engine's tiny test graphs. */
export * from '../workflows/design/workflow';
export { graphRoutingWorkflow, graphInterruptWorkflow } from '../test/integration/graph-workflows';
