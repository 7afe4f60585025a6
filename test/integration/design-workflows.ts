/** workflowsPath for the design tests: only the design workflows, so other workflows' code plays no part. */
export * from '../../workflows/design/workflow';
export * from '../../workflows/design/v1-workflow';
