import {
  ActivityFailure,
  ApplicationFailure,
  RetryState,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
} from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import { describeFailure, toHttpError } from '../../api/middleware/errors';
import { ErrorType, HttpError } from '../../common/errors';

const failure = (type: ErrorType, message = `${type} happened`) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/** How a client sees an activity failure: WorkflowFailedError → ActivityFailure → ApplicationFailure. */
function viaWorkflow(cause: Error): WorkflowFailedError {
  const activity = new ActivityFailure(
    'activity failed',
    'llmChat',
    'act-1',
    RetryState.NON_RETRYABLE_FAILURE,
    'id',
    cause,
  );
  return new WorkflowFailedError('Workflow execution failed', activity, RetryState.NON_RETRYABLE_FAILURE);
}

describe('error → HTTP mapping', () => {
  it.each([
    [ErrorType.ModelNotFound, 400, 'model_not_found'],
    [ErrorType.InvalidRequest, 400, 'invalid_request'],
    [ErrorType.NotFound, 404, 'not_found'],
    [ErrorType.Conflict, 409, 'conflict'],
    [ErrorType.LimitExceeded, 429, 'limit_exceeded'],
  ])('%s → %i, directly and through a failed workflow', (type, status, code) => {
    for (const err of [failure(type), viaWorkflow(failure(type))]) {
      const http = toHttpError(err);
      expect([http.status, http.code, http.message]).toEqual([status, code, `${type} happened`]);
    }
  });

  it('maps Temporal client errors', () => {
    expect(toHttpError(new WorkflowNotFoundError('gone', 'wf-1', undefined)).status).toBe(404);
    expect(toHttpError(new WorkflowExecutionAlreadyStartedError('dup', 'wf-1', 'promptWorkflow')).status).toBe(409);
  });

  it('maps zod errors to 400 naming the field', () => {
    const res = z.object({ a: z.object({ b: z.number() }) }).safeParse({ a: { b: 'x' } });
    const http = toHttpError(res.error);
    expect(http.status).toBe(400);
    expect(http.message).toMatch(/^a\.b: /);
  });

  it('passes HttpError through and hides everything else behind a 500', () => {
    const own = new HttpError(418, 'teapot', 'short and stout');
    expect(toHttpError(own)).toBe(own);
    const secret = toHttpError(new Error('password=hunter2 at db.internal:5432'));
    expect([secret.status, secret.code, secret.message]).toEqual([500, 'internal', 'Internal server error']);
    const untyped = toHttpError(viaWorkflow(ApplicationFailure.create({ message: 'kaboom', type: 'SomethingElse' })));
    expect(untyped.status).toBe(500);
  });

  it('describes a failed workflow for status responses', () => {
    expect(describeFailure(viaWorkflow(failure(ErrorType.ModelNotFound, 'no node serves x')))).toEqual({
      code: 'model_not_found',
      message: 'no node serves x',
    });
    expect(describeFailure(viaWorkflow(ApplicationFailure.create({ message: 'kaboom' })))).toEqual({
      code: 'workflow_failed',
      message: 'kaboom',
    });
  });
});
