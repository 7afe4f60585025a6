/**
 * The loop detector the llm activity runs on streamed replies (activities/llm/repetition.ts): loops in free text
 * are cut with one copy kept; structured output that legitimately repeats short items is left alone.
 */
import {
  findRepetition,
  RepetitionGuard,
  STRUCTURED_RULES,
  TEXT_RULES,
  type RepetitionCut,
} from '../../lib/llm/repetition';

/** Streams `text` into a fresh guard in chunks of `size`, as tokens arrive; returns the first cut and where. */
function stream(text: string, guard = new RepetitionGuard(), size = 4): { cut?: RepetitionCut; at: number } {
  for (let at = size; at < text.length + size; at += size) {
    const sofar = text.slice(0, at);
    const cut = guard.check(sofar);
    if (cut) return { cut, at: sofar.length };
  }
  return { at: text.length };
}

const kept = (text: string, cut: RepetitionCut | undefined) => (cut ? text.slice(0, cut.keep).trimEnd() : text);

const ANSWER = [
  'The sky looks blue because air molecules scatter short wavelengths of sunlight more than long ones.',
  'This is called Rayleigh scattering. At sunset the light travels through more air, so the blue is',
  'scattered away and the reds and oranges remain. On the Moon, with no air, the sky is black.',
  '',
  '1. Short wavelengths scatter more.',
  '2. More air at sunset means redder light.',
  '3. No atmosphere, no blue sky.',
].join('\n');

describe('findRepetition', () => {
  it('leaves a normal answer alone', () => {
    expect(findRepetition(ANSWER)).toBeUndefined();
    expect(stream(ANSWER).cut).toBeUndefined();
  });

  it('cuts a line repeated three times, keeping the text before it and one copy', () => {
    const line = 'I can help you with that.';
    const text = `Sure!\n${line}\n${line}\n${line}\n${line.slice(0, 6)}`;
    const cut = findRepetition(text);
    expect(cut).toMatchObject({ period: line.length + 1, copies: 3 });
    expect(kept(text, cut)).toBe(`Sure!\n${line}`);
    // Twice is not a loop.
    expect(findRepetition(`Sure!\n${line}\n${line}\n`)).toBeUndefined();
  });

  it('cuts a repeated sentence without newlines, at a sentence boundary', () => {
    const sentence = 'The cat sat on the mat. ';
    const text = `The answer is simple. ${sentence.repeat(3)}The cat`;
    const cut = findRepetition(text);
    expect(cut).toMatchObject({ period: sentence.length, copies: 3 });
    expect(kept(text, cut)).toBe('The answer is simple. The cat sat on the mat.');
  });

  it('cuts a short n-gram loop only once it spans three 20-char blocks', () => {
    const text = `Funny! ${'ha '.repeat(30)}`;
    const cut = findRepetition(text);
    expect(cut).toMatchObject({ period: 3 });
    expect(kept(text, cut)).toBe('Funny! ha');
    // "ha ha ha" a few times is laughter, not a loop: 8 copies < 3 × 21 chars.
    expect(findRepetition(`Funny! ${'ha '.repeat(8)}`)).toBeUndefined();
  });

  it('does not cut JSON with repeated items, however many', () => {
    const item = '{"type":"aws_s3_bucket"}';
    for (const n of [2, 3, 12, 40]) {
      const arr = `[${Array(n).fill(item).join(',')}]`;
      expect(findRepetition(arr)).toBeUndefined();
      expect(findRepetition(arr, STRUCTURED_RULES)).toBeUndefined();
      // Also inside prose (e.g. no `format` given and the model explains first) and while it streams.
      expect(findRepetition(`Here are the resources: ${arr}`)).toBeUndefined();
      expect(stream(`Here are the resources: ${arr}`).cut).toBeUndefined();
    }
    const strings = `Types: ${Array(20).fill('"aws_s3_bucket"').join(', ')}`;
    expect(findRepetition(strings)).toBeUndefined();
  });

  it('does not cut numbers, separators or code lines that repeat', () => {
    expect(findRepetition(`Vector: [${'0, '.repeat(80)}0]`)).toBeUndefined();
    expect(findRepetition(`Title\n${'='.repeat(120)}\n`)).toBeUndefined();
    expect(findRepetition('if (a) {\n  if (b) {\n    f();\n  }\n}\n}\n}\n}\n')).toBeUndefined();
  });

  it('still cuts a long identical JSON block repeated four times', () => {
    const obj = '{"type":"aws_s3_bucket","name":"logs","versioning":true,"tags":{"env":"prod","team":"data"}},';
    expect(obj.length).toBeGreaterThanOrEqual(STRUCTURED_RULES.minBlock);
    expect(findRepetition(`[${obj.repeat(3)}`)).toBeUndefined();
    const text = `[${obj.repeat(4)}`;
    const cut = findRepetition(text);
    expect(cut).toMatchObject({ period: obj.length, copies: 4 });
    expect(text.slice(0, cut!.keep)).toBe(`[${obj}`);
  });

  it('reads only the tail of a long text', () => {
    const loop = 'This sentence repeats forever and ever. ';
    const text = ANSWER.repeat(40) + loop.repeat(3);
    const cut = findRepetition(text);
    expect(cut).toBeDefined();
    expect(kept(text, cut)).toBe(ANSWER.repeat(40) + loop.trimEnd());
    expect(TEXT_RULES.maxBlock * TEXT_RULES.minCopies).toBeLessThan(1024);
  });
});

describe('RepetitionGuard', () => {
  it('cuts a streamed loop soon after the third copy', () => {
    const line = 'Let me know if you have any other questions!\n';
    const text = `Happy to help.\n${line.repeat(50)}`;
    const { cut, at } = stream(text);
    expect(cut).toBeDefined();
    // Found within one check interval (32 chars) of the third copy being complete.
    expect(at).toBeLessThanOrEqual('Happy to help.\n'.length + 3 * line.length + 32);
    expect(kept(text, cut)).toBe(`Happy to help.\n${line.trimEnd()}`);
  });

  it('examines the text only every checkEveryChars characters', () => {
    const guard = new RepetitionGuard({ checkEveryChars: 100 });
    const loop = 'Loop sentence number one. '.repeat(3);
    // 78 chars: a loop, but fewer than 100 new characters since the last check.
    expect(guard.check(loop)).toBeUndefined();
    expect(guard.check(loop + 'Loop sentence number one. '.repeat(1))).toBeDefined();
  });

  it('is off for structured output (format), and strict for JSON and code fences', () => {
    const loop = 'I can help you with that.\n'.repeat(10);
    expect(stream(loop, new RepetitionGuard({ structured: true })).cut).toBeUndefined();
    expect(stream(loop).cut).toBeDefined();
    // Inside a code fence the same lines are code: only long blocks count.
    expect(stream('Example:\n```\n' + 'print("hello world")\n'.repeat(6)).cut).toBeUndefined();
    expect(stream('Example:\n' + 'print("hello world")\n'.repeat(6)).cut).toBeDefined();
    // Output that starts as JSON is judged as structured.
    expect(stream('{"items": [' + '"item", '.repeat(40)).cut).toBeUndefined();
  });
});
