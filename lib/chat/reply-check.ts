/**
 * The check every model-written reply passes before it is sent. Small models echo their system prompt or
 * facts block, loop, invent prices ("12€/m") and answer Korean in English; any of these replaces the draft
 * by the safe data-only reply, and the reason is recorded. Pure.
 */
import { languageMismatch, type DetectedLanguage } from './language';
import type { ReplyProblemReason } from '../../contracts/chat';

export interface ReplyProblem {
  reason: ReplyProblemReason;
  detail: string;
}

export interface ReplyCheckContext {
  /** What the model was shown and must not repeat: system prompts, facts lines, policy lines. */
  references: string[];
  /** Fixed phrases of our prompts that must never reach a customer ("Product facts:"). */
  markers: readonly string[];
  /** Every amount the shop's data states (prices, fees, thresholds). */
  allowedPrices: number[];
  customer: DetectedLanguage;
  /** A general reply states no facts: a number in it is made up, unless the customer wrote it (an order number). */
  noNumbers?: boolean;
  /** The customer's messages being answered. */
  customerText?: string;
  /** Ollama's done reason: `repetition` (the activity cut a loop) or `length` (num_predict reached). */
  doneReason?: string;
}

/**
 * A model draft is kept to its first sentences: a small model's first sentence answers, the rest is where it
 * starts inventing (a bakery, a UK store). Anything longer is cut at a sentence end.
 */
export const MAX_DRAFT_SENTENCES = 2;
export const MAX_REPLY_CHARS = 300;
/** A bot that introduces itself by a person's name ("I'm Sarah") has invented a persona. */
const PERSONA_RE =
  /\b(?:[Ii] am|[Ii]['’]m|[Mm]y name is|[Tt]his is)\s+(?!(?:The|Your|An?|Here|Happy|Glad|Sorry|Not|So|Very|Always|Just|Ready|Sure)\b)(\p{Lu}\p{Ll}+)/u;
/** A run of this many words shared with the prompt is an echo, whatever else the reply says. */
export const ECHO_NGRAM = 8;

const PRICE_RE =
  /(?:[€$£]|\b(?:eur|usd|gbp)\b)\s?(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s?(?:[€$£]|(?:eur|usd|gbp|euros?|dollars?|pounds?)\b)|\b(\d+[.,]\d{2})\b/gi;

/** Every price-like amount in a text, as numbers ("€39.90", "12€/m", "7,50 euros", "12.00"). */
export function findPrices(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(PRICE_RE)) {
    const raw = m[1] ?? m[2] ?? m[3];
    if (raw) out.push(Number(raw.replace(',', '.')));
  }
  return out;
}

const NUMBER_RE = /\p{N}+(?:[.,:/]\p{N}+)*/gu;

const words = (s: string) =>
  s
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);

function ngrams(ws: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= ws.length; i++) out.push(ws.slice(i, i + n).join(' '));
  return out;
}

/** The draft reproduces the prompt: a marker phrase, a long shared word run, or mostly the prompt's phrases. */
export function findEcho(reply: string, references: string[], markers: readonly string[]): string | undefined {
  const lower = reply.toLowerCase();
  const marker = markers.find((m) => lower.includes(m.toLowerCase()));
  if (marker) return `contains "${marker}"`;
  const ws = words(reply);
  const refWords = references.map(words);
  const long = new Set(refWords.flatMap((r) => ngrams(r, ECHO_NGRAM)));
  const shared = ngrams(ws, ECHO_NGRAM).find((g) => long.has(g));
  if (shared) return `repeats the prompt: "${shared}"`;
  // A short draft made mostly of the prompt's phrases ("You are the customer assistant.") is an echo too.
  const four = ngrams(ws, 4);
  if (four.length >= 2) {
    const ref4 = new Set(refWords.flatMap((r) => ngrams(r, 4)));
    const hits = four.filter((g) => ref4.has(g)).length;
    if (hits * 5 >= four.length * 3) return `${hits} of its ${four.length} phrases come from the prompt`;
  }
  return undefined;
}

/** Sentences, for the repetition check: split on end marks and line breaks. */
export function sentences(text: string): string[] {
  return text
    .split(/(?<=[.!?。！？])\s+|\n+/u)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The draft repeats itself: the same sentence twice, or a run of words that comes back. */
export function findRepetition(reply: string): string | undefined {
  const seen = new Set<string>();
  for (const s of sentences(reply)) {
    const key = words(s).join(' ');
    if (key.length < 12) continue;
    if (seen.has(key)) return `says "${s}" twice`;
    seen.add(key);
  }
  // A block of words back to back: 4 copies of one word, 3 of a short phrase, 2 of five words or more.
  const ws = words(reply);
  for (let p = 1; p <= 12; p++) {
    const needed = p >= 5 ? 2 : p >= 2 ? 3 : 4;
    for (let i = 0; i + p * needed <= ws.length; i++) {
      let copies = 1;
      while (
        i + (copies + 1) * p <= ws.length &&
        ws.slice(i + copies * p, i + (copies + 1) * p).join(' ') === ws.slice(i, i + p).join(' ')
      )
        copies++;
      if (copies >= needed) return `repeats "${ws.slice(i, i + p).join(' ')}" ${copies} times`;
    }
  }
  return undefined;
}

/** Cuts a draft that stopped mid-sentence back to its last full sentence (empty when it has none). */
export function lastFullSentence(text: string): string {
  const m = /^[\s\S]*[.!?。！？](?=\s|$)/u.exec(text);
  return m ? m[0].trim() : '';
}

/** Removes what a small model puts around a chat reply: a role label, quotes. */
export function cleanDraft(text: string): string {
  return text
    .trim()
    .replace(/^(?:assistant|bot|answer|reply|response)\s*:\s*/i, '')
    .replace(/^"([\s\S]*)"$/, '$1')
    .trim();
}

/**
 * The draft as it may be sent, or the problem that stops it. Checks run cheapest-first and the first
 * problem is reported.
 */
export function checkReply(draft: string, ctx: ReplyCheckContext): { text: string } | { problem: ReplyProblem } {
  let text = cleanDraft(draft);
  if (ctx.doneReason === 'repetition')
    return { problem: { reason: 'repetition', detail: 'the model looped (cut off)' } };
  if (ctx.doneReason === 'length') {
    const cut = lastFullSentence(text);
    if (!cut) return { problem: { reason: 'truncated', detail: 'cut off before the first sentence ended' } };
    text = cut;
  }
  const all = sentences(text);
  if (all.length > MAX_DRAFT_SENTENCES) text = all.slice(0, MAX_DRAFT_SENTENCES).join(' ');
  if (text.length > MAX_REPLY_CHARS) {
    text = lastFullSentence(text.slice(0, MAX_REPLY_CHARS));
    if (!text) return { problem: { reason: 'truncated', detail: `longer than ${MAX_REPLY_CHARS} characters` } };
  }
  if (!/[\p{L}\p{N}]/u.test(text)) return { problem: { reason: 'empty', detail: 'no text' } };
  const echo = findEcho(text, ctx.references, ctx.markers);
  if (echo) return { problem: { reason: 'echo', detail: echo } };
  const loop = findRepetition(text);
  if (loop) return { problem: { reason: 'repetition', detail: loop } };
  const allowed = new Set(ctx.allowedPrices);
  const invented = findPrices(text).filter((n) => !allowed.has(n));
  if (invented.length)
    return { problem: { reason: 'price', detail: `states ${invented.join(', ')}, not in the shop data` } };
  if (ctx.noNumbers) {
    const theirs = new Set(ctx.customerText?.match(NUMBER_RE) ?? []);
    const n = text.match(NUMBER_RE)?.find((x) => !theirs.has(x));
    if (n) return { problem: { reason: 'fact', detail: `states "${n}", which no data backs` } };
  }
  const persona = PERSONA_RE.exec(text);
  if (persona) return { problem: { reason: 'fact', detail: `claims to be "${persona[1]}"` } };
  const lang = languageMismatch(text, ctx.customer);
  if (lang) return { problem: { reason: 'language', detail: lang } };
  return { text };
}
