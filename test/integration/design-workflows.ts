/** workflowsPath for the design tests: only the design workflows, so other workflows' code plays no part. */
export * from '../../workflows/infra-design-workflow';
export * from '../../workflows/infra-design-v1-workflow';
