/**
 * A check of an answer written from retrieved sources: every number it states (prices, days, counts) must appear
 * in the sources or in the question. A small model paraphrases sources freely and invents figures; the check
 * does not rewrite the answer (an OpenAI-compatible client expects the model's text) but says, next to it,
 * which numbers no source supports, so a client can flag or refuse the answer.
 */

/** `4,95` and `4.95` are the same number; list markers (`1.` / `2)` at a line's start) and citations are not claims. */
function numbersIn(text: string, skipListMarkers: boolean): string[] {
  const out: string[] = [];
  const re = /\d+(?:[.,]\d+)*/g;
  for (const m of text.matchAll(re)) {
    const before = text.slice(0, m.index);
    const after = text.slice(m.index + m[0].length, m.index + m[0].length + 1);
    if (skipListMarkers && /(^|\n)\s*$/.test(before) && /^[.)]/.test(after)) continue;
    // A citation of a source, `[2]`, is not a claim either.
    if (skipListMarkers && before.endsWith('[') && after === ']') continue;
    out.push(m[0].replace(/,(?=\d{1,2}$)/, '.').replace(/,/g, ''));
  }
  return out;
}

export interface Grounding {
  /** Numbers the answer states that no source (nor the question) contains, in order of appearance. */
  unsupported_numbers: string[];
  /** True when every number the answer states is in a source or the question. */
  grounded: boolean;
}

export function groundingOf(answer: string, sources: string): Grounding {
  const known = new Set(numbersIn(sources, false).flatMap((n) => [n, n.replace(/\.0+$/, '')]));
  const unsupported = [...new Set(numbersIn(answer, true))].filter(
    (n) => !known.has(n) && !known.has(n.replace(/\.0+$/, '')),
  );
  return { unsupported_numbers: unsupported, grounded: unsupported.length === 0 };
}
