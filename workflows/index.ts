/** The worker's workflowsPath: every workflow, one file each. */
