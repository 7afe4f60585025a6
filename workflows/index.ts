/** The worker's workflowsPath: every workflow, one file each. */
export * from './prompt-workflow';
export * from './chat-workflow';
export * from './job-workflow';
export * from './infra-design-workflow';
export * from './infra-design-v1-workflow';
