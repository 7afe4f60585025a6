/**
 * The HTTP server span of every request, and its metrics. Runs first, so everything after it (logging, auth,
 * routes, the Temporal client's interceptor) runs inside the span: a workflow the request starts continues the
 * same trace. A caller's `traceparent` is continued; every response carries this span's `traceparent`.
 * The request and response emitters are bound to the span's context, because body parsers and `finish` listeners
 * run from socket callbacks that would otherwise lose it.
 */
import type { RequestHandler } from 'express';
import {
  otelContext,
  SpanKind,
  SpanStatusCode,
  extractContext,
  trace,
  tracer,
  traceparentOf,
} from '../../lib/telemetry/tracing';
import { metrics } from '../../lib/telemetry/metrics';

/** The route template a request matched (`/prompts/:id`), never the raw path (unbounded label values). */
export function routeOf(req: { baseUrl?: string; route?: { path?: unknown } }): string {
  const path = req.route?.path;
  if (typeof path !== 'string') return 'unmatched';
  return `${req.baseUrl ?? ''}${path}` || '/';
}

export const httpTracing: RequestHandler = (req, res, next) => {
  const parent = extractContext(req.headers);
  const span = tracer().startSpan(
    `${req.method} ${req.path}`,
    {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method, 'url.path': req.path, 'http.route': 'unmatched' },
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  const traceparent = traceparentOf(span);
  if (traceparent) res.setHeader('traceparent', traceparent);
  const started = process.hrtime.bigint();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    const route = routeOf(req);
    const status = res.headersSent ? res.statusCode : 499;
    span.updateName(`${req.method} ${route}`);
    span.setAttributes({ 'http.route': route, 'http.response.status_code': status });
    if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    const labels = { route, method: req.method, status: String(status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
  };
  res.once('finish', end);
  res.once('close', end);
  otelContext.bind(ctx, req);
  otelContext.bind(ctx, res);
  otelContext.with(ctx, next);
};
