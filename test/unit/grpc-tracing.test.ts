/**
 * The gRPC server span (api/grpc/tracing.ts) on a real @grpc/grpc-js server and client over loopback, with the
 * recommendation proto: a caller's `traceparent` metadata is continued, the handler runs inside the span (a span it
 * starts is its child), the response headers carry the span's `traceparent`, and the call is counted.
 */
import * as grpc from '@grpc/grpc-js';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { loadRecommendationProto, RECOMMENDATION_SERVICE } from '../../api/grpc/server';
import { tracedServerStream } from '../../api/grpc/tracing';
import { initTracing, tracer, type Tracing } from '../../lib/telemetry/tracing';
import { registry } from '../../lib/telemetry/metrics';

const exported = new InMemorySpanExporter();
let tracing: Tracing;
let server: grpc.Server;
let client: grpc.Client & { Recommend(req: unknown, md: grpc.Metadata): grpc.ClientReadableStream<unknown> };

beforeAll(async () => {
  tracing = initTracing('ainode-api', {}, { processors: [new SimpleSpanProcessor(exported)] })!;
  const loaded = grpc.loadPackageDefinition(loadRecommendationProto()) as unknown as {
    recommendation: { RecommendationService: grpc.ServiceClientConstructor };
  };
  server = new grpc.Server();
  server.addService(loaded.recommendation.RecommendationService.service, {
    Recommend: tracedServerStream(
      `${RECOMMENDATION_SERVICE}/Recommend`,
      (call: grpc.ServerWritableStream<unknown, unknown>) => {
        // Work the handler does (e.g. starting a workflow) happens inside the server span.
        tracer().startSpan('inner work').end();
        call.sendMetadata(new grpc.Metadata());
        call.write({ content: 'hello', is_final: 'false' });
        call.end();
      },
    ),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  client = new loaded.recommendation.RecommendationService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as typeof client;
});

afterAll(async () => {
  client?.close();
  server?.forceShutdown();
  await tracing?.shutdown();
});

it("continues the caller's trace, runs the handler in its span and answers traceparent", async () => {
  const callerTrace = 'c'.repeat(31) + '2';
  const callerSpan = 'd'.repeat(16);
  const md = new grpc.Metadata();
  md.set('traceparent', `00-${callerTrace}-${callerSpan}-01`);
  const stream = client.Recommend({ user_id: 'u1', browser_context: '{}', content_type: 'general' }, md);
  const headers = new Promise<grpc.Metadata>((resolve) => stream.on('metadata', resolve));
  const messages: unknown[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m) => messages.push(m));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  expect(messages).toHaveLength(1);
  const answered = String((await headers).get('traceparent')[0]);
  expect(answered).toMatch(new RegExp(`^00-${callerTrace}-[0-9a-f]{16}-01$`));

  const spans = exported.getFinishedSpans().filter((s) => s.spanContext().traceId === callerTrace);
  const rpc = spans.find((s) => s.name === `${RECOMMENDATION_SERVICE}/Recommend`);
  const inner = spans.find((s) => s.name === 'inner work');
  expect(rpc?.parentSpanId).toBe(callerSpan);
  expect(rpc?.attributes['ainode.rpc.outcome']).toBe('ok');
  expect(answered.split('-')[2]).toBe(rpc?.spanContext().spanId);
  expect(inner?.parentSpanId).toBe(rpc?.spanContext().spanId);
  const counted = await registry.getSingleMetric('ainode_grpc_requests_total')!.get();
  expect(counted.values.find((v) => v.labels.outcome === 'ok')?.value).toBe(1);
});
