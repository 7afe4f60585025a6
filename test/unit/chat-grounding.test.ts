import type { ProductFact } from '../../contracts/chat';
import {
  extractPrices,
  factsReply,
  foldSummary,
  groundProductReply,
  keywordRoute,
  parseRoute,
} from '../../workflows/chat/chat-workflow';
import { signBody, verifySignature } from '../../lib/channel/signature';

const shirt: ProductFact = {
  id: 's',
  name: 'Linen Shirt',
  price: '39.90',
  currency: 'EUR',
  availability: 'InStock',
  options: [],
};
const beanie: ProductFact = {
  id: 'b',
  name: 'Wool Beanie',
  price: '24.50',
  currency: 'EUR',
  availability: 'OutOfStock',
  options: [],
};

describe('chat grounding', () => {
  it('finds price-like amounts in several notations', () => {
    expect(extractPrices('It is €39.90, or EUR 12, or 7,50 euros; 3 sizes; 12.00 total')).toEqual([39.9, 12, 7.5, 12]);
    expect(extractPrices('We have 12 left in 3 colours')).toEqual([]);
  });

  it('keeps a reply whose prices are all in the ontology', () => {
    expect(groundProductReply('The Linen Shirt costs 39.90 EUR.', [shirt])).toBe('The Linen Shirt costs 39.90 EUR.');
    expect(groundProductReply('The Linen Shirt is €39.9.', [shirt])).toBe('The Linen Shirt is €39.9.');
  });

  it('replaces a reply with an invented price by one written from the facts', () => {
    const out = groundProductReply('The Linen Shirt costs only 29.99 EUR!', [shirt]);
    expect(out).not.toContain('29.99');
    expect(out).toBe('Linen Shirt costs 39.90 EUR, and it is in stock.');
    expect(groundProductReply('That is $15.', [])).toBe(factsReply([]));
  });

  it('adds the stock fact when a reply names an out-of-stock product without saying so', () => {
    expect(groundProductReply('The Wool Beanie costs 24.50 EUR.', [beanie])).toBe(
      'The Wool Beanie costs 24.50 EUR. Please note: Wool Beanie is currently out of stock.',
    );
    const said = 'Sorry, the Wool Beanie is out of stock.';
    expect(groundProductReply(said, [beanie])).toBe(said);
  });

  it('parses the router output and falls back to keywords', () => {
    expect(parseRoute('{"agent":"delivery","reason":"asks about shipping"}')).toBe('delivery');
    expect(parseRoute('{"agent":"sales"}')).toBeUndefined();
    expect(parseRoute('not json')).toBeUndefined();
    expect(keywordRoute('How long does shipping take?')).toBe('delivery');
    expect(keywordRoute('How much is the belt?')).toBe('product');
    expect(keywordRoute('thank you!')).toBe('general');
  });

  it('folds old lines into a bounded summary that keeps the newest text', () => {
    const s = foldSummary('', [
      { role: 'customer', text: 'hi', at: 1 },
      { role: 'bot', text: 'hello', at: 2 },
    ]);
    expect(s).toBe('customer: hi | bot: hello');
    let long = s;
    for (let i = 0; i < 100; i++)
      long = foldSummary(long, [{ role: 'customer', text: `question ${i} `.repeat(5), at: i }]);
    expect(long.length).toBeLessThanOrEqual(2000);
    expect(long).toContain('question 99');
    expect(long.startsWith('...')).toBe(true);
  });
});

describe('channel signature', () => {
  it('verifies only the exact body under the same secret', () => {
    const body = Buffer.from('{"type":"message"}');
    const sig = signBody('secret-123', body);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature('secret-123', body, sig)).toBe(true);
    expect(verifySignature('secret-123', Buffer.from('{"type":"message" }'), sig)).toBe(false);
    expect(verifySignature('other-secret', body, sig)).toBe(false);
    expect(verifySignature('secret-123', body, undefined)).toBe(false);
    expect(verifySignature('secret-123', body, 'sha256=abc')).toBe(false);
  });
});
