/**
 * infraDesignWorkflow (v2): plain-language infrastructure request → validated Terraform, as a graph:
 * route → gather (⇄ human answers) → plan (⇄ once on a bad plan) → generate (per level, in parallel) →
 * combine → validate ⇄ fix → store. A follow-up message revises the design from `gather`.
 */
import { runDesign } from './run';
import { buildInfraDesignGraph, stateForRevision, viewDesignState, type DesignState } from './v2-graph';
import type { DesignResult, InfraDesignInput } from '../../contracts/design';

/** Designs infrastructure from a plain-language request; see the file header. */
export async function infraDesignWorkflow(input: InfraDesignInput): Promise<DesignResult> {
  return runDesign<DesignState>({
    input,
    version: 'v2',
    build: (hooks) => buildInfraDesignGraph({ input, ...hooks }),
    initial: { request: input.request, messages: [{ role: 'user', content: input.request }] },
    revise: (final, message) =>
      final.category === 'infrastructure'
        ? {
            startAt: 'gather',
            state: stateForRevision(final),
            input: { messages: [{ role: 'user', content: `Change request: ${message}` }] },
          }
        : // A design that never started (invalid/empty request) treats the message as a new request.
          {
            startAt: 'route',
            state: stateForRevision(final),
            input: { request: message, messages: [{ role: 'user', content: message }] },
          },
    view: viewDesignState,
  });
}
