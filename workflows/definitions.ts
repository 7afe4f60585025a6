/**
 * Every signal, query and update of every workflow, defined once. The API imports these, never a string name.
 * Sections are grouped per workflow.
 */
import { defineQuery } from '@temporalio/workflow';

// ---------------------------------------------------------------- promptWorkflow
export interface PromptStatus {
  phase: 'running' | 'completed' | 'failed';
}
export const promptStatusQuery = defineQuery<PromptStatus>('promptStatus');
