/**
 * A query or Update that no worker answers: askWorkflow turns the client's deadline into a 503
 * workers_unavailable at once, and the error middleware maps a Temporal client error whose gRPC cause is
 * UNAVAILABLE / DEADLINE_EXCEEDED to 503 temporal_unavailable (it used to be a 500 for a query).
 */
import type { Client } from '@temporalio/client';
import { ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { HttpError } from '../../common/errors';
import { toHttpError } from '../../api/middleware/errors';
import { askWorkflow } from '../../api/workflow-routes';

function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
}

/** A client whose withDeadline records the deadline and runs the call, as the real one does. */
function clientRecording(deadlines: number[]): Client {
  return {
    withDeadline: async <R>(deadline: number | Date, fn: () => Promise<R>) => {
      deadlines.push(Number(deadline));
      return fn();
    },
  } as unknown as Client;
}

const config = { WORKFLOW_QUERY_TIMEOUT_MS: 2500 };

describe('askWorkflow', () => {
  it('answers what the workflow answered, under a deadline WORKFLOW_QUERY_TIMEOUT_MS ahead', async () => {
    const deadlines: number[] = [];
    const before = Date.now();
    await expect(askWorkflow(clientRecording(deadlines), config, 'Design d-1', async () => 'ok')).resolves.toBe('ok');
    expect(deadlines).toHaveLength(1);
    expect(deadlines[0]).toBeGreaterThanOrEqual(before + 2500);
    expect(deadlines[0]).toBeLessThanOrEqual(Date.now() + 2500);
  });

  it('a query past its deadline (ServiceError caused by DEADLINE_EXCEEDED) → 503 workers_unavailable', async () => {
    const query = async () => {
      throw new ServiceError('Failed to query Workflow', { cause: grpcError(4, 'Deadline exceeded after 2.5s') });
    };
    const err = await askWorkflow(clientRecording([]), config, 'Design d-1', query).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    const http = err as HttpError;
    expect([http.status, http.code, http.headers]).toEqual([503, 'workers_unavailable', { 'Retry-After': '5' }]);
    expect(http.message).toMatch(/^Design d-1 is running, but no worker answered within 2\.5 s/);
  });

  it('a query the client ended as CANCELLED at its deadline (seen under load) → 503 workers_unavailable', async () => {
    const query = async () => {
      throw new ServiceError('Failed to query Workflow', { cause: grpcError(1, 'Call cancelled') });
    };
    const err = (await askWorkflow(clientRecording([]), config, 'Design d-1', query).catch((e) => e)) as HttpError;
    expect([err.status, err.code]).toEqual([503, 'workers_unavailable']);
  });

  it('an Update past its deadline → 503 workers_unavailable', async () => {
    const update = async () => {
      throw new WorkflowUpdateRPCTimeoutOrCancelledError('Deadline exceeded', {
        cause: grpcError(4, 'Deadline exceeded'),
      });
    };
    const err = (await askWorkflow(clientRecording([]), config, 'Design d-2', update).catch((e) => e)) as HttpError;
    expect([err.status, err.code]).toEqual([503, 'workers_unavailable']);
  });

  it('other failures pass through unchanged', async () => {
    const boom = new Error('query handler threw');
    await expect(
      askWorkflow(clientRecording([]), config, 'Design d-3', async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
  });
});

describe('the error middleware and Temporal client errors', () => {
  it.each([
    [14, 'UNAVAILABLE'],
    [4, 'DEADLINE_EXCEEDED'],
  ])('a ServiceError caused by gRPC %d (%s) → 503 temporal_unavailable, not 500', (code, name) => {
    const http = toHttpError(new ServiceError('Failed to query Workflow', { cause: grpcError(code, name) }));
    expect([http.status, http.code, http.headers]).toEqual([503, 'temporal_unavailable', { 'Retry-After': '5' }]);
  });

  it('a bare gRPC UNAVAILABLE is the same 503', () => {
    expect(toHttpError(grpcError(14, 'connection refused')).code).toBe('temporal_unavailable');
  });

  it('a ServiceError with any other cause is still a 500', () => {
    expect(toHttpError(new ServiceError('Failed', { cause: grpcError(13, 'INTERNAL') })).status).toBe(500);
  });
});
