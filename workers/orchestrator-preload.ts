/**
 * What the workflow bundle preloads (workers/orchestrator-bundle.ts). Importing it here and exporting it keeps
 * webpack from dropping it as unused (the package declares no side effects), so it is evaluated once and shared by
 * every workflow run. Nothing here may hold per-workflow state, nor touch workflow globals (Date, performance) when
 * it loads: it runs before any workflow exists.
 */
// OpenTelemetry's attribute-name tables (tracing's workflow interceptors import them): pure constants, and about
// 0.4 MB of every open workflow's memory when each run builds its own copy.
import * as semconv from '@opentelemetry/semantic-conventions';

export const PRELOADED: readonly unknown[] = [semconv];
