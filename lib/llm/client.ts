/**
 * The Ollama client the llm worker uses. The `ollama` package only aborts a stream once response headers
 * have arrived, and its non-streaming calls (embed, tags) take no signal at all; Ollama sends no headers
 * until the model is loaded and the first token exists. So the client's `fetch` joins the signal of the
 * activity call in progress (an AsyncLocalStorage), which lets a cancel or timeout close the connection at
 * once, and Ollama stop generating.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Ollama } from 'ollama';

const callSignal = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn` so that every request a `createOllamaClient` client makes inside it is aborted with `signal`. */
export function withRequestSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return callSignal.run(signal, fn);
}

const signalAwareFetch: typeof fetch = (input, init) => {
  const call = callSignal.getStore();
  if (!call) return fetch(input, init);
  const signal = init?.signal ? AbortSignal.any([init.signal, call]) : call;
  return fetch(input, { ...init, signal });
};

/** An Ollama client for one node whose requests honour `withRequestSignal`. */
export function createOllamaClient(url: string): Ollama {
  return new Ollama({ host: url, fetch: signalAwareFetch });
}
