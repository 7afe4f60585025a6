/**
 * The design half of the quality eval (bench/quality.bench.ts): the agent graph's route and plan calls with
 * their production prompts and JSON schemas, run through the real llm activity (bounds, repetition cut-off)
 * against the real model. Scored per case: JSON valid under the schema on the first try, right route, and
 * whether the keyword fallback would have put a wrong route right.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type { LlmActivities } from '../contracts/llm';
import { emptyUsage, type LlmChatInput, type LlmResult } from '../contracts/llm';
import { bySchema, parseStructured, PLAN_SCHEMA, ROUTE_SCHEMA, validateJson } from '../workflows/design/schemas';
import { routeDecision } from '../workflows/design/fallback';
import { planMessages, routeMessages } from '../workflows/design/prompts';

export interface DesignCase {
  request: string;
  route: 'infrastructure' | 'invalid' | 'end';
}

export const designEvalCases: DesignCase[] = [
  { request: 'A static website on S3 behind CloudFront', route: 'infrastructure' },
  { request: 'A REST API with Lambda and API Gateway backed by DynamoDB', route: 'infrastructure' },
  { request: 'A VPC with two private subnets and a PostgreSQL RDS database', route: 'infrastructure' },
  { request: 'An S3 bucket for log archives with versioning', route: 'infrastructure' },
  { request: 'A container service on ECS Fargate behind a load balancer', route: 'infrastructure' },
  { request: 'What is the capital of France?', route: 'invalid' },
  { request: 'Write me a poem about cats', route: 'invalid' },
];

export interface DesignCaseResult {
  routeValid?: boolean;
  routeRight: boolean;
  routeRightAfterFallback: boolean;
  planValid?: boolean;
  ms: number;
}

export async function runDesignCase(llm: LlmActivities, model: string, c: DesignCase): Promise<DesignCaseResult> {
  const t0 = performance.now();
  // A call that fails (e.g. timed out) is an answer the workflow could not use: scored as invalid, not fatal.
  const call = (input: LlmChatInput): Promise<LlmResult> =>
    (new MockActivityEnvironment().run(llm.llmChat, input) as Promise<LlmResult>).catch((err: unknown): LlmResult => ({
      content: '',
      model,
      nodeId: '',
      usage: emptyUsage(),
      doneReason: `error: ${(err as Error).message}`,
    }));
  const route = await call({
    model,
    messages: routeMessages({ request: c.request }),
    format: ROUTE_SCHEMA as Record<string, unknown>,
    options: { temperature: 0 },
    kind: 'design.route',
    purpose: 'quality eval: route',
  });
  const parsed = parseStructured(route.content, route.doneReason);
  const accepted = 'value' in parsed ? bySchema<{ category: string }>(ROUTE_SCHEMA)(parsed.value) : parsed;
  const routeValid = 'value' in accepted;
  const category = 'value' in accepted ? accepted.value.category : undefined;
  // What the graph decides: the model's answer, with the request's infrastructure words over it, or keywords.
  const decided = routeDecision(
    'value' in accepted ? { category: accepted.value.category, reply: '' } : undefined,
    c.request,
  );
  const result: DesignCaseResult = {
    routeValid,
    routeRight: category === c.route,
    routeRightAfterFallback: decided.category === c.route,
    ms: 0,
  };
  if (c.route === 'infrastructure') {
    const plan = await call({
      model,
      messages: planMessages({
        messages: [{ role: 'user', content: c.request }],
        requirements: { region: 'eu-west-1' },
      }),
      format: PLAN_SCHEMA as Record<string, unknown>,
      options: { temperature: 0 },
      kind: 'design.plan',
      purpose: 'quality eval: plan',
    });
    const p = parseStructured(plan.content, plan.doneReason);
    result.planValid = 'value' in p && validateJson(p.value, PLAN_SCHEMA).length === 0;
  }
  result.ms = performance.now() - t0;
  return result;
}
