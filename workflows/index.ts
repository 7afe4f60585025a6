/** The worker's workflowsPath: every workflow, one file each. */
export * from './prompt-workflow';
export * from './chat/chat-workflow';
export * from './job-workflow';
export * from './design/workflow';
export * from './design/v1-workflow';
export * from './completion-workflow';
export * from './ingest-workflow';
export * from './recommendation-workflow';
export * from './user-recommendation-workflow';
