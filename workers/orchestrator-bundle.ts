/**
 * How the orchestrator's workflow bundle is built (scripts/bundle-workflows.ts ahead of time, or the worker itself
 * from `workflowsPath`).
 *
 * With the SDK's reusable V8 context (the default), every workflow run evaluates every module of the bundle again,
 * in a module cache of its own: all of workflows/index.ts, so each open chat also holds the design workflows'
 * modules and OpenTelemetry's attribute tables. A preloaded module is evaluated once, before any workflow, and
 * shared by all runs. Only modules that keep no per-workflow state belong there: pure libraries, never
 * @temporalio/* (the workflow runtime holds each run's state) nor anything that imports it. docs/decisions.md,
 * "Chats at load".
 */
export const WORKFLOW_PRELOAD_MODULES = [require.resolve('./orchestrator-preload')];
