/**
 * The gRPC server span of a server-streaming call: continues a caller's `traceparent` metadata, runs the handler in
 * the span's context (so the workflow it starts joins the trace), answers `traceparent` in the response headers, and
 * ends when the stream finishes, fails or is cancelled. Also counts the call in `ainode_grpc_requests_total`.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  extractContext,
  otelContext,
  SpanKind,
  SpanStatusCode,
  trace,
  tracer,
  traceparentOf,
} from '../../lib/telemetry/tracing';
import { metrics } from '../../lib/telemetry/metrics';

export function tracedServerStream<Req, Res>(
  method: string,
  handler: (call: grpc.ServerWritableStream<Req, Res>) => void,
): (call: grpc.ServerWritableStream<Req, Res>) => void {
  return (call) => {
    const parent = extractContext(call.metadata.getMap());
    const span = tracer().startSpan(
      method,
      { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.method': method } },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    const traceparent = traceparentOf(span);
    if (traceparent) {
      // The handler sends its own response headers (e.g. x-recommendation-id); ours ride along.
      const send = call.sendMetadata.bind(call);
      call.sendMetadata = (md: grpc.Metadata) => {
        md.set('traceparent', traceparent);
        send(md);
      };
    }
    let ended = false;
    const end = (outcome: 'ok' | 'error' | 'cancelled', message?: string) => {
      if (ended) return;
      ended = true;
      span.setAttribute('ainode.rpc.outcome', outcome);
      if (outcome === 'error') span.setStatus({ code: SpanStatusCode.ERROR, message });
      span.end();
      metrics.grpcRequests.inc({ method, outcome });
    };
    call.once('finish', () => end('ok'));
    call.once('cancelled', () => end('cancelled'));
    call.once('error', (e: { details?: string; message?: string }) => end('error', e?.details ?? e?.message));
    otelContext.bind(ctx, call);
    otelContext.with(ctx, () => handler(call));
  };
}
