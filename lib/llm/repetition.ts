/**
 * Runaway repetition: small models often fall into a loop (the same line or sentence again and again) until
 * num_predict. The llm activity feeds the streamed text to a `RepetitionGuard`, which looks at the tail every
 * few dozen characters; on a loop the activity aborts the Ollama stream and returns one copy of the repeated
 * block with `doneReason: 'repetition'`. Pure: no I/O, no clock.
 *
 * A loop is a tail of the text made of one block repeated back to back. Structured text legitimately repeats
 * short blocks (`[{"type":"aws_s3_bucket"},{"type":"aws_s3_bucket"}]`, `}` lines in code), so the thresholds
 * depend on what the block looks like: free text is cut at 3 copies of a 20-char block (8 for whole lines);
 * JSON-like blocks, code and output that starts as JSON only at 4 copies of an 80-char block. Calls with a
 * `format` (Ollama structured outputs) are not guarded at all: the grammar and the num_predict bound them.
 */

/** Where a loop was found: keep `text.slice(0, keep)`, which holds exactly one copy of the repeated block. */
export interface RepetitionCut {
  keep: number;
  /** Length of the repeated block (the text's smallest period at its end). */
  period: number;
  /** Whole copies of that block at the end of the text. */
  copies: number;
}

export interface RepetitionRules {
  /** Shortest block that counts (shorter periods are taken in multiples up to this length). */
  minBlock: number;
  /** Shortest block when the block spans a line break (a repeated line). */
  minLineBlock: number;
  /** Longest block looked for. */
  maxBlock: number;
  /** Copies at the end of the text that make a loop. */
  minCopies: number;
  /** Whether a shorter block counts as its multiples ("ha ha ha …"); otherwise a short block never is a loop. */
  multiples: boolean;
}

/** Free text: the same line three times, or the same sentence (≥ 20 chars) three times. */
export const TEXT_RULES: RepetitionRules = {
  minBlock: 20,
  minLineBlock: 8,
  maxBlock: 200,
  minCopies: 3,
  multiples: true,
};
/** JSON, code: only long identical blocks, repeated four times; a list of short identical items is data. */
export const STRUCTURED_RULES: RepetitionRules = {
  minBlock: 80,
  minLineBlock: 80,
  maxBlock: 200,
  minCopies: 4,
  multiples: false,
};

/** Characters of the tail that are examined: enough for the longest block times its copies. */
const WINDOW = 1024;
const LETTER = /\p{L}/u;
/** A block with brackets, JSON key/value punctuation or a list of quoted items is structured data, not prose. */
const STRUCTURAL = /[{}[\]]|":|",|,\s*"/;
/** Where a kept copy should end: after a line break or a sentence; failing that, after a list item. */
const STRONG_BOUNDARY = /[\n.!?]/;
const WEAK_BOUNDARY = /[,;}\]]/;
const endsAt = (re: RegExp, text: string, c: number) =>
  re.test(text[c - 1] ?? '') || (/\s/.test(text[c - 1] ?? '') && re.test(text[c - 2] ?? ''));

/**
 * Z-function of `s` read backwards: z[i] = length of the longest common suffix of `s` and `s.slice(0, n - i)`.
 * So `i + z[i]` is how far back from the end `s` is periodic with period `i`. O(n), UTF-16 units.
 */
function reverseZ(s: string): Int32Array {
  const n = s.length;
  const at = (k: number) => s.charCodeAt(n - 1 - k);
  const z = new Int32Array(n);
  let l = 0;
  let r = 0;
  for (let i = 1; i < n; i++) {
    let k = i < r ? Math.min(r - i, z[i - l]!) : 0;
    while (i + k < n && at(k) === at(i + k)) k++;
    z[i] = k;
    if (i + k > r) {
      l = i;
      r = i + k;
    }
  }
  return z;
}

/** The last `p` characters of `tail`, as one block. */
const lastBlock = (tail: string, p: number) => tail.slice(tail.length - p);

/**
 * Looks for a loop at the end of `text` (only its last WINDOW characters are read). Returns the smallest
 * repeating block that meets `rules` for its kind (structured blocks always use STRUCTURED_RULES), or undefined.
 */
export function findRepetition(text: string, rules: RepetitionRules = TEXT_RULES): RepetitionCut | undefined {
  const start = Math.max(0, text.length - WINDOW);
  const tail = text.slice(start);
  const n = tail.length;
  const minNeeded = Math.min(rules.minLineBlock, rules.minBlock) * rules.minCopies;
  if (n < minNeeded) return undefined;
  const z = reverseZ(tail);
  const maxP = Math.min(rules.maxBlock, Math.floor(n / 2));
  // Periods already judged: a multiple of one over no longer a stretch is the same block, judged already.
  const seen: { p: number; span: number }[] = [];
  for (let p = 1; p <= maxP; p++) {
    // The tail is periodic with period p over its last `span` characters.
    const span = Math.min(n, p + (z[p] ?? 0));
    if (span < 2 * p) continue;
    if (seen.some((d) => p % d.p === 0 && d.span >= span)) continue;
    seen.push({ p, span });
    const block = lastBlock(tail, p);
    const r = STRUCTURAL.test(block) ? STRUCTURED_RULES : rules;
    // In free text a short period (e.g. "ha ") counts as the shortest multiple of it that is long enough.
    const min = block.includes('\n') ? r.minLineBlock : r.minBlock;
    if (p < min && !r.multiples) continue;
    const unit = p * Math.ceil(min / p);
    if (unit > r.maxBlock) continue;
    if (Math.floor(span / unit) < r.minCopies || !LETTER.test(block)) continue;
    // Keep one copy of the smallest block: the periodic region starts at `s`; cut in its second copy, after a
    // line break or sentence end if there is one (a loop seldom starts exactly where the model began it).
    const s = start + n - span;
    const [from, to] = [s + p, s + 2 * p];
    const keep = firstEnd(STRONG_BOUNDARY, text, from, to) ?? firstEnd(WEAK_BOUNDARY, text, from, to) ?? from;
    return { keep, period: p, copies: Math.floor(span / p) };
  }
  return undefined;
}

/** The first position in [from, to) (and within `text`) where a prefix of `text` ends at a boundary `re`. */
function firstEnd(re: RegExp, text: string, from: number, to: number): number | undefined {
  for (let c = from; c < to && c <= text.length; c++) if (endsAt(re, text, c)) return c;
  return undefined;
}

export interface RepetitionGuardOptions {
  /** Output constrained by a JSON schema / 'json': not guarded. */
  structured?: boolean;
  /** Look at the tail once this many new characters arrived (default 32). */
  checkEveryChars?: number;
}

/**
 * Incremental use of `findRepetition` while a reply streams: `check(content)` with the whole text so far,
 * after each chunk; it examines the tail only every `checkEveryChars` new characters. Output that starts as
 * JSON, and text inside a ``` code fence, is judged by STRUCTURED_RULES.
 */
export class RepetitionGuard {
  private checkedAt = 0;
  private fenceScan = 0;
  private fences = 0;
  private readonly every: number;

  constructor(private readonly opts: RepetitionGuardOptions = {}) {
    this.every = Math.max(1, opts.checkEveryChars ?? 32);
  }

  check(content: string): RepetitionCut | undefined {
    if (this.opts.structured) return undefined;
    if (content.length - this.checkedAt < this.every) return undefined;
    this.checkedAt = content.length;
    this.countFences(content);
    const json = /^\s*[[{]/.test(content.slice(0, 64));
    return findRepetition(content, json || this.fences % 2 === 1 ? STRUCTURED_RULES : TEXT_RULES);
  }

  /** Counts ``` fences in the text not scanned yet (an odd count: we are inside a code block). */
  private countFences(content: string): void {
    for (let i = content.indexOf('```', this.fenceScan); i !== -1; i = content.indexOf('```', i + 3)) {
      this.fences++;
      this.fenceScan = i + 3;
    }
    // A fence split across chunks is found next time: rescan the last two characters.
    this.fenceScan = Math.max(this.fenceScan, content.length - 2);
  }
}
