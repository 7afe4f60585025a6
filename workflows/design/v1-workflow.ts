/**
 * infraDesignV1Workflow: the first-generation design agent on the same graph engine, to show the engine is
 * general: consultant (gathers requirements, ⇄ human) → prompt generator → engineer ⇄ lead (the lead approves
 * or sends the draft back with review notes, bounded) → combine → validate → store.
 */
import { patched } from '@temporalio/workflow';
import { runDesign } from './run';
import { DESIGN_V1_SCHEMA_PATCH } from './settings';
import { buildV1Graph, v1StateForRevision, viewV1State, type V1State } from './v1-graph';
import type { DesignResult, InfraDesignInput } from '../../contracts/design';

/** The v1 design agent; same API, handlers and result shape as infraDesignWorkflow. */
export async function infraDesignV1Workflow(input: InfraDesignInput): Promise<DesignResult> {
  return runDesign<V1State>({
    input,
    version: 'v1',
    // Decided once, when the graph is built at the start (see runDesign).
    build: (hooks) => buildV1Graph({ input, ...hooks, schemaDraft: patched(DESIGN_V1_SCHEMA_PATCH) }),
    initial: { messages: [{ role: 'user', content: input.request }] },
    revise: (final, message) => ({
      startAt: 'consultant',
      state: v1StateForRevision(final),
      input: { messages: [{ role: 'user', content: `Change request: ${message}` }] },
    }),
    view: viewV1State,
  });
}
