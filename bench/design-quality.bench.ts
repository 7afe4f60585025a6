/**
 * Designs with the real default model, end to end (infraDesignWorkflow v2 on the production orchestrator worker,
 * the real llm worker and Ollama): 10 fixed requests, no question rounds (nobody answers in a bench). Per design:
 * did it complete, did its files pass the AWS provider schema check (`schemaCheck: passed`), how many fix rounds
 * it used, how long it took; the time is also given as a ratio to the median single model call (the `route`
 * step) measured in the same run. Goal: ≥ 90% schema-valid.
 */
import { graphStateQuery } from '../contracts/definitions';
import type { DesignResult } from '../contracts/design';
import { keywordPlan, namedTypes } from '../workflows/design/fallback';
import { percentile, round, startStack, type Bench, type BenchContext, type Row } from './lib';

/**
 * What the request names (services and parts, as the plan coverage check reads it) that a plan built from its
 * words would hold, and is missing from the design's plan: empty when the plan covers the request.
 */
export function uncovered(request: string, planTypes: string[]): string[] {
  const offered = new Set((keywordPlan(request, { kms: true }) ?? []).map((r) => r.type));
  const have = new Set(planTypes);
  return namedTypes(request, { parts: true }).filter((t) => offered.has(t) && !have.has(t));
}

export const DESIGN_REQUESTS = [
  'A static website on S3 behind CloudFront',
  'A REST API with Lambda and API Gateway backed by DynamoDB',
  'A VPC with two private subnets and a PostgreSQL RDS database',
  'An S3 bucket for log archives with versioning',
  'A container service on ECS Fargate behind a load balancer',
  'An SQS queue with a dead-letter queue and an SNS topic for alerts',
  'A Redis cache on ElastiCache in a VPC',
  'An EC2 web server in a public subnet with a security group allowing HTTPS',
  'A Lambda function triggered by an SQS queue, with its IAM role and a log group',
  'A DynamoDB table for sessions with a KMS key for encryption',
];

const GOAL = 0.9;
const QUICK = Boolean(process.env.BENCH_QUICK);

export const bench: Bench = {
  name: 'design-quality',
  async run(ctx: BenchContext): Promise<Row[]> {
    const stack = await startStack(ctx, { workflows: 'orchestrator', llm: 'real' });
    const model = stack.config.DEFAULT_MODEL;
    const requests = QUICK ? DESIGN_REQUESTS.slice(0, 3) : DESIGN_REQUESTS;
    const rows: Row[] = [];
    try {
      const outcomes: {
        completed: boolean;
        schemaValid: boolean;
        staticOk: boolean;
        fixRounds: number;
        /** Named parts of the request the plan lacks (see `uncovered`). */
        missing: string[];
        ms: number;
        routeMs?: number;
        /** Resources generated from the model's reply (first or repaired) and from the default body. */
        fromModel: number;
        fromDefault: number;
      }[] = [];
      for (const [i, request] of requests.entries()) {
        if (ctx.signal?.aborted) break;
        const designId = `design-bench-quality-${Date.now()}-${i}`;
        const t0 = performance.now();
        const handle = await stack.client.workflow.start('infraDesignWorkflow', {
          taskQueue: stack.taskQueue,
          workflowId: designId,
          args: [{ designId, request, model, maxQuestionRounds: 0, followUpWindow: '1 second' }],
        });
        let result: DesignResult | undefined;
        let steps: { node: string; durationMs: number }[] = [];
        try {
          result = (await handle.result()) as DesignResult;
          steps = (await handle.query(graphStateQuery)).steps;
        } catch (err) {
          ctx.log(`design-quality: "${request}" failed: ${(err as Error).message}`);
        }
        const ms = performance.now() - t0;
        const outcome = {
          completed: result?.phase === 'completed',
          schemaValid: result?.phase === 'completed' && result.schemaCheck === 'passed',
          staticOk: result?.phase === 'completed' && result.validation?.ok === true,
          fixRounds: steps.filter((s) => s.node === 'fix').length,
          missing: result ? uncovered(request, result.plan?.resources.map((r) => r.type) ?? []) : [],
          ms,
          routeMs: steps.find((s) => s.node === 'route')?.durationMs,
          fromModel: Object.entries(result?.llmPaths ?? {}).filter(
            ([k, v]) => k.startsWith('generate:') && v !== 'fallback',
          ).length,
          fromDefault: Object.entries(result?.llmPaths ?? {}).filter(
            ([k, v]) => k.startsWith('generate:') && v === 'fallback',
          ).length,
        };
        outcomes.push(outcome);
        ctx.log(
          `design-quality: "${request}": ${result?.phase ?? 'failed'}, schemaCheck ${result?.schemaCheck ?? '-'}, ` +
            `terraformValidate ${result?.terraformValidate ?? '-'}, ${outcome.fixRounds} fix round(s), ` +
            `${outcome.fromModel}/${outcome.fromModel + outcome.fromDefault} resource(s) from the model's reply, ` +
            `${result?.plan?.resources.length ?? 0} planned${outcome.missing.length ? ` (lacks ${outcome.missing.join(', ')})` : ''}, ` +
            `${round(ms / 1000, 1)} s${result?.notes.length ? `; notes: ${result.notes.join(' | ').slice(0, 300)}` : ''}`,
        );
      }
      const n = outcomes.length;
      const pct = (k: number) => round((100 * k) / Math.max(n, 1), 1);
      const schemaValid = outcomes.filter((o) => o.schemaValid).length;
      const times = outcomes.map((o) => o.ms);
      const routes = outcomes.map((o) => o.routeMs).filter((x): x is number => x !== undefined);
      const p50 = percentile(times, 50);
      const callP50 = routes.length ? percentile(routes, 50) : undefined;
      rows.push(
        {
          bench: 'design-quality',
          metric: 'designs completing',
          value: pct(outcomes.filter((o) => o.completed).length),
          unit: '%',
          note: `${n} fixed requests, ${model}, v2 graph, no question rounds`,
        },
        {
          bench: 'design-quality',
          metric: 'designs whose files pass the AWS provider schema check',
          value: pct(schemaValid),
          unit: '%',
          goal: `≥ ${GOAL * 100}%`,
          pass: schemaValid / Math.max(n, 1) >= GOAL,
          note: `${schemaValid}/${n}; hashicorp/aws schema from schemas/aws-provider.json.gz`,
        },
        {
          bench: 'design-quality',
          metric: 'completed designs whose plan has every part the request names',
          value: pct(outcomes.filter((o) => o.completed && o.missing.length === 0).length),
          unit: '%',
          note: 'services and parts (a subnet, a security group, versioning, ...) the keyword plan knows for the same words',
        },
        {
          bench: 'design-quality',
          metric: 'designs with no error from any check that ran (validation ok)',
          value: pct(outcomes.filter((o) => o.staticOk).length),
          unit: '%',
          note: 'parser, references, providers, duplicates, schema; terraform validate where it ran',
        },
        {
          bench: 'design-quality',
          metric: "resources generated from the model's reply (not the default body)",
          value: round(
            (100 * outcomes.reduce((a, o) => a + o.fromModel, 0)) /
              Math.max(
                1,
                outcomes.reduce((a, o) => a + o.fromModel + o.fromDefault, 0),
              ),
            1,
          ),
          unit: '%',
          note: `${outcomes.reduce((a, o) => a + o.fromModel, 0)}/${outcomes.reduce((a, o) => a + o.fromModel + o.fromDefault, 0)}; the rest timed out or had no attributes object`,
        },
        {
          bench: 'design-quality',
          metric: 'fix rounds per design (mean)',
          value: round(outcomes.reduce((a, o) => a + o.fixRounds, 0) / Math.max(n, 1), 2),
          unit: 'rounds',
          note: `max ${Math.max(0, ...outcomes.map((o) => o.fixRounds))}`,
        },
        {
          bench: 'design-quality',
          metric: 'time per design p50',
          value: round(p50),
          unit: 'ms',
          ...(callP50 ? { baseline: round(callP50), ratio: round(p50 / callP50) } : {}),
          note: `max ${round(Math.max(...times))} ms; baseline: median single model call (the route step) in the same run`,
        },
      );
      return rows;
    } finally {
      await stack.stop();
    }
  },
};
