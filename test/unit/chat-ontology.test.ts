import { readFileSync } from 'node:fs';
import path from 'node:path';
import { formatFacts, isOutOfStock, parseOntology, selectProducts } from '../../lib/chat/ontology';
import { assembleMessages, productSystemPrompt } from '../../lib/chat/agents';

const ttl = readFileSync(path.join(__dirname, '..', 'fixtures', 'shop', 'ontology.ttl'), 'utf8');

describe('chat ontology (n3)', () => {
  const products = parseOntology(ttl);

  it('reads every schema:Product with its offer and options', () => {
    expect(products.map((p) => p.name)).toEqual(['Canvas Tote Bag', 'Leather Belt', 'Linen Shirt', 'Wool Beanie']);
    const shirt = products.find((p) => p.name === 'Linen Shirt')!;
    expect(shirt).toMatchObject({
      sku: 'LS-100',
      price: '39.90',
      currency: 'EUR',
      availability: 'InStock',
      inventory: 12,
    });
    expect(shirt.options).toEqual([
      { name: 'colour', values: ['white', 'sand', 'navy'] },
      { name: 'size', values: ['S', 'M', 'L', 'XL'] },
    ]);
    const beanie = products.find((p) => p.name === 'Wool Beanie')!;
    expect(isOutOfStock(beanie)).toBe(true);
    expect(isOutOfStock(shirt)).toBe(false);
  });

  it('accepts http://schema.org and rejects invalid Turtle', () => {
    const alt = parseOntology(
      '@prefix s: <http://schema.org/> . <urn:x> a s:Product ; s:name "X" ; s:offers [ s:price "1.50" ; s:inventoryLevel 0 ] .',
    );
    expect(alt).toEqual([expect.objectContaining({ name: 'X', price: '1.50', availability: 'OutOfStock' })]);
    expect(() => parseOntology('this is not turtle')).toThrow();
  });

  it('selects products named in the batch first, then in recent history', () => {
    expect(selectProducts(products, [['How much are your linen shirts?']]).map((p) => p.name)).toEqual(['Linen Shirt']);
    const followUp = selectProducts(products, [['and is it in stock?'], ['The Wool Beanie costs 24.50 EUR.']]);
    expect(followUp.map((p) => p.name)).toEqual(['Wool Beanie']);
    expect(selectProducts(products, [['hello there']])).toEqual([]);
  });

  it('writes facts with exact prices and a clear out-of-stock marker', () => {
    const facts = formatFacts(products);
    expect(facts).toContain(
      '- Linen Shirt (SKU LS-100): price 39.90 EUR; in stock (12 left); colour: white, sand, navy',
    );
    expect(facts).toContain('- Wool Beanie (SKU WB-200): price 24.50 EUR; OUT OF STOCK');
    expect(facts).toContain('Leather Belt (SKU LB-400): price 49.00 EUR; available for pre-order');
  });

  it('puts the facts in the system prompt and the batch last', () => {
    const shirt = products.filter((p) => p.name === 'Linen Shirt');
    const msgs = assembleMessages(
      productSystemPrompt(
        shirt,
        products.map((p) => p.name),
      ),
      'customer: hi',
      [
        { role: 'customer', text: 'hi', at: 1 },
        { role: 'manager', text: 'hello!', at: 2 },
      ],
      ['price of the linen shirt?', 'and sizes?'],
    );
    expect(msgs[0]!.role).toBe('system');
    expect(msgs[0]!.content).toContain('price 39.90 EUR');
    expect(msgs[0]!.content).toContain('Earlier in this conversation: customer: hi');
    expect(msgs.slice(1)).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: '[manager] hello!' },
      { role: 'user', content: 'price of the linen shirt?\nand sizes?' },
    ]);
  });
});
