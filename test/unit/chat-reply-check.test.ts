/**
 * The check a model-written chat reply passes before it is sent, and the customer's language. The drafts
 * below are what small models actually wrote (system prompt echoes, loops, invented prices, English to a
 * Korean customer).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { generalSystemPrompt, PROMPT_MARKERS, productSystemPrompt } from '../../lib/chat/agents';
import { detectLanguage, dominantScript, LANGUAGES, languageMismatch, politeFallback } from '../../lib/chat/language';
import { formatFacts, parseOntology } from '../../lib/chat/ontology';
import { policyLines } from '../../lib/chat/policy';
import {
  checkReply,
  findEcho,
  findPrices,
  findRepetition,
  lastFullSentence,
  type ReplyCheckContext,
} from '../../lib/chat/reply-check';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');
const products = parseOntology(readFileSync(path.join(FIXTURES, 'ontology.ttl'), 'utf8'));
const policy = policyLines(readFileSync(path.join(FIXTURES, 'delivery-policy.md'), 'utf8'));

const ctx = (customerText: string, extra: Partial<ReplyCheckContext> = {}): ReplyCheckContext => ({
  references: [generalSystemPrompt(), formatFacts(products), ...policy],
  markers: PROMPT_MARKERS,
  allowedPrices: [...products.map((p) => Number(p.price)), ...policy.flatMap(findPrices)],
  customer: detectLanguage(customerText),
  noNumbers: true,
  ...extra,
});

describe('reply check', () => {
  it('passes a good reply unchanged (a role label and quotes removed)', () => {
    expect(checkReply('Hello! How can I help you today?', ctx('hello'))).toEqual({
      text: 'Hello! How can I help you today?',
    });
    expect(checkReply('Assistant: "Thanks, happy to help!"', ctx('thanks'))).toEqual({
      text: 'Thanks, happy to help!',
    });
  });

  it('replaces a reply that reproduces the system prompt', () => {
    const echo =
      'You are the customer assistant of an online shop, writing in a chat. Answer every question in one reply.';
    expect(checkReply(echo, ctx('Is the Wool Beanie in stock?'))).toEqual({
      problem: { reason: 'echo', detail: 'contains "You are the customer assistant"' },
    });
    // Without the marker phrase, a long run of the prompt's words is still an echo.
    const run = 'Help with greetings, thanks and general questions about the shop, my friend.';
    expect(findEcho(run, [generalSystemPrompt()], [])).toBe(
      'repeats the prompt: "help with greetings thanks and general questions about"',
    );
    // The facts block of the product prompt (what users saw) is caught by its heading and its lines.
    const facts = productSystemPrompt(products.slice(0, 1), []).split('\n\n').pop()!;
    expect(checkReply(facts, ctx('hi'))).toMatchObject({ problem: { reason: 'echo' } });
    expect(findEcho(formatFacts(products.slice(2, 3)), [formatFacts(products)], [])).toMatch(/^repeats the prompt/);
    expect(findEcho('Thanks for your message, we will help you.', [generalSystemPrompt()], PROMPT_MARKERS)).toBe(
      undefined,
    );
  });

  it('replaces a reply that repeats itself', () => {
    const loop = 'How much is the Linen Shirt? '.repeat(20);
    expect(checkReply(loop, ctx('How much is the Linen Shirt?'))).toEqual({
      problem: { reason: 'repetition', detail: 'says "How much is the Linen Shirt?" twice' },
    });
    expect(findRepetition('We ship fast fast fast fast today')).toBe('repeats "fast" 4 times');
    expect(findRepetition('Thank you, thank you! Have a nice day.')).toBeUndefined();
    // The llm activity cut a loop: the kept copy is not trusted either.
    expect(checkReply('Hello!', ctx('hi', { doneReason: 'repetition' }))).toMatchObject({
      problem: { reason: 'repetition' },
    });
  });

  it('replaces a reply with a price that is not in the data, or any number in a general reply', () => {
    expect(checkReply('The Linen Shirt is 12€/m in our UK store.', ctx('hi'))).toEqual({
      problem: { reason: 'price', detail: 'states 12, not in the shop data' },
    });
    expect(findPrices('It is €39.90, or EUR 12, or 7,50 euros; 3 sizes; 12.00 total')).toEqual([39.9, 12, 7.5, 12]);
    expect(checkReply('We are open 24/7!', ctx('are you open?'))).toEqual({
      problem: { reason: 'fact', detail: 'states "24/7", which no data backs' },
    });
    // The customer's own numbers (an order number) may be repeated.
    const order = 'A colleague will look into order 4711 for you.';
    expect(checkReply(order, ctx('where is order 4711?', { customerText: 'where is order 4711?' }))).toEqual({
      text: order,
    });
    expect(checkReply('The shirt costs 39.90 EUR.', ctx('hi', { noNumbers: false }))).toEqual({
      text: 'The shirt costs 39.90 EUR.',
    });
  });

  it('keeps a draft to its first two sentences, and replaces an invented persona', () => {
    expect(checkReply('Hi there! Nice to meet you. We sell shirts and bags. And belts.', ctx('hi'))).toEqual({
      text: 'Hi there! Nice to meet you.',
    });
    // What SmolLM2 wrote for "Hello! Who are you?".
    const sarah =
      "I'm Sarah, a local baker who runs a small bakery in the heart of town. I've been baking bread for years.";
    expect(checkReply(sarah, ctx('Hello! Who are you?'))).toEqual({
      problem: { reason: 'fact', detail: 'claims to be "Sarah"' },
    });
    expect(checkReply("I'm the shop's assistant. I'm happy to help!", ctx('who are you?'))).toEqual({
      text: "I'm the shop's assistant. I'm happy to help!",
    });
  });

  it('replaces an empty reply and one cut off before its first sentence ended', () => {
    expect(checkReply('  ...  ', ctx('hi'))).toMatchObject({ problem: { reason: 'empty' } });
    expect(checkReply('Hello and welcome to our', ctx('hi', { doneReason: 'length' }))).toMatchObject({
      problem: { reason: 'truncated' },
    });
    expect(checkReply('Hello! Welcome to our', ctx('hi', { doneReason: 'length' }))).toEqual({ text: 'Hello!' });
    expect(lastFullSentence('One. Two! Three')).toBe('One. Two!');
  });

  it('replaces a reply not in the customer’s script or language', () => {
    expect(checkReply('Hello! How can I help you today?', ctx('안녕하세요'))).toEqual({
      problem: { reason: 'language', detail: 'reply is not in Hangul script (Korean)' },
    });
    expect(checkReply('안녕하세요! 무엇을 도와드릴까요?', ctx('안녕하세요'))).toEqual({
      text: '안녕하세요! 무엇을 도와드릴까요?',
    });
    expect(checkReply('Hello! How can I help you with your order?', ctx('¡Hola! ¿Tienen camisas?'))).toEqual({
      problem: { reason: 'language', detail: 'reply is in English, customer writes Spanish' },
    });
    expect(checkReply('¡Hola! ¿En qué puedo ayudarle?', ctx('¡Hola! ¿Tienen camisas?'))).toEqual({
      text: '¡Hola! ¿En qué puedo ayudarle?',
    });
  });
});

describe('language', () => {
  it.each([
    ['안녕하세요', 'ko', 'Hangul'],
    ['こんにちは、シャツはありますか', 'ja', 'Kana'],
    ['这件衬衫多少钱', 'zh', 'Han'],
    ['Сколько стоит рубашка?', 'ru', 'Cyrillic'],
    ['¿Cuánto cuesta la Linen Shirt?', 'es', 'Latin'],
    ['Wie viel kostet das Leinenhemd?', 'de', 'Latin'],
    ['Bonjour, combien coûte la chemise ?', 'fr', 'Latin'],
    ['How much is the Linen Shirt?', 'en', 'Latin'],
    ['Γεια σας', 'und', 'Greek'],
  ])('detects %s as %s', (text, code, script) => {
    expect(detectLanguage(text)).toMatchObject({ code, script });
  });

  it('has a polite fallback for every language in the table, English for others', () => {
    for (const code of ['ko', 'ja', 'zh', 'es', 'de', 'fr']) {
      expect(LANGUAGES.some((l) => l.code === code)).toBe(true);
      const fallback = politeFallback(code);
      // Each fallback is in its own language's script and passes the language check for that language.
      expect(languageMismatch(fallback, detectLanguage(fallback))).toBeUndefined();
      expect(fallback).not.toBe(politeFallback('en'));
    }
    expect(politeFallback('ko')).toBe('안녕하세요! 메시지 감사합니다. 곧 담당자가 답변드리겠습니다.');
    expect(politeFallback('und')).toBe(politeFallback('en'));
    expect(dominantScript(politeFallback('ja'))).toBe('Kana');
  });
});
