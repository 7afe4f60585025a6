/**
 * Structured chat replies: the router's enums come from the shop data, the reply's facts are written by code,
 * and a model draft is checked before it is sent. Everything here is pure; the fixture shop is the one the
 * integration tests and the dev stack use.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseOntology } from '../../lib/chat/ontology';
import { deliveryTopics, plainLine } from '../../lib/chat/policy';
import { dataReply, deliveryReply, noProductReply, productReply } from '../../lib/chat/replies';
import {
  keywordChoice,
  reconcileChoice,
  routerIntents,
  routerMessages,
  routerProducts,
  routerSchema,
} from '../../lib/chat/router';
import { parseChoice, repairPrompt, supportedChoice } from '../../workflows/chat/chat-workflow';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'shop');
const products = parseOntology(readFileSync(path.join(FIXTURES, 'ontology.ttl'), 'utf8'));
const policy = readFileSync(path.join(FIXTURES, 'delivery-policy.md'), 'utf8');
const names = products.map((p) => p.name);
const topics = deliveryTopics(policy);
const intents = routerIntents(topics);
const product = (name: string) => products.find((p) => p.name === name)!;

describe('router schema from the shop data', () => {
  it('derives the delivery topics from the policy lines, markdown removed', () => {
    expect(topics.map((t) => t.id)).toEqual([
      'express',
      'tracking',
      'refund',
      'returns',
      'eu_shipping',
      'delivery_cost',
      'delivery_time',
    ]);
    expect(topics.find((t) => t.id === 'delivery_time')!.lines).toEqual([
      'Standard delivery within Germany takes 2–4 business days and costs 4.95 EUR.',
    ]);
    expect(plainLine('- **Express delivery** costs 9.90 EUR.')).toBe('Express delivery costs 9.90 EUR.');
    // A policy without a topic's keywords has no such topic, so the router cannot pick it.
    expect(deliveryTopics('- We ship within 2 days.\n- Returns within 14 days.').map((t) => t.id)).toEqual(['returns']);
  });

  it('builds the {agent, product, intent} schema with enums from the ontology and the policy', () => {
    expect(routerSchema(routerProducts(names, []), intents)).toEqual({
      type: 'object',
      properties: {
        agent: { type: 'string', enum: ['product', 'delivery', 'general'] },
        product: {
          type: 'string',
          enum: ['Canvas Tote Bag', 'Leather Belt', 'Linen Shirt', 'Wool Beanie', 'none'],
        },
        intent: {
          type: 'string',
          enum: [
            'price',
            'stock',
            'options',
            'description',
            'express',
            'tracking',
            'refund',
            'returns',
            'eu_shipping',
            'delivery_cost',
            'delivery_time',
            'other',
          ],
        },
      },
      required: ['agent', 'product', 'intent'],
    });
    // Products the customer named narrow the enum: the model chooses among those.
    expect(routerProducts(names, ['Linen Shirt'])).toEqual(['Linen Shirt', 'none']);
  });

  it('tells the model the allowed values and puts the new messages last', () => {
    const [system, user] = routerMessages(
      routerProducts(names, []),
      intents,
      [{ role: 'customer', text: 'hi', at: 1 }],
      ['How much is the Linen Shirt?'],
    );
    expect(system!.content).toContain('exactly one of: Canvas Tote Bag, Leather Belt, Linen Shirt, Wool Beanie, none.');
    expect(system!.content).toContain('delivery_time (how long delivery takes)');
    expect(user!.content).toBe('Earlier:\ncustomer: hi\n\nNew messages:\nHow much is the Linen Shirt?');
  });
});

describe('parsing the router output', () => {
  const allowed = { agents: ['product', 'delivery', 'general'], products: routerProducts(names, []), intents };

  it('accepts a valid choice, matching case-insensitively to the canonical value', () => {
    expect(parseChoice('{"agent":"product","product":"linen shirt","intent":"Price"}', allowed)).toEqual({
      choice: { agent: 'product', product: 'Linen Shirt', intent: 'price' },
    });
  });

  it('says exactly what is wrong, for the repair attempt', () => {
    expect(parseChoice('not json', allowed)).toEqual({ error: 'not JSON: "not json"' });
    expect(parseChoice('[1]', allowed)).toEqual({ error: 'not a JSON object' });
    const bad = parseChoice('{"agent":"sales","product":"Linen Shirt"}', allowed);
    expect(bad).toEqual({
      error: '"agent" must be one of product, delivery, general, not "sales"; "intent" is missing',
    });
    expect(repairPrompt('"intent" is missing')).toContain('not valid: "intent" is missing');
  });
});

describe('keyword fallback and reconciliation', () => {
  it('routes by keywords and picks the named product', () => {
    expect(keywordChoice(['How much is express delivery?'], [], false, intents)).toEqual({
      agent: 'delivery',
      product: 'none',
      intent: 'express',
    });
    expect(keywordChoice(['How long does shipping take?'], [], false, intents)).toMatchObject({
      intent: 'delivery_time',
    });
    expect(keywordChoice(['Is the Wool Beanie in stock?'], ['Wool Beanie'], true, intents)).toEqual({
      agent: 'product',
      product: 'Wool Beanie',
      intent: 'stock',
    });
    // Naming a product is enough to make it a product question.
    expect(keywordChoice(['Linen Shirt?'], ['Linen Shirt'], true, intents)).toEqual({
      agent: 'product',
      product: 'Linen Shirt',
      intent: 'other',
    });
    expect(keywordChoice(['안녕하세요'], [], false, intents)).toEqual({
      agent: 'general',
      product: 'none',
      intent: 'other',
    });
  });

  it('keeps the agent, but corrects an intent of another agent and a product the customer did not name', () => {
    const opts = { catalogue: names, candidates: ['Linen Shirt'], intents, batch: ['What does the linen shirt cost?'] };
    expect(reconcileChoice({ agent: 'product', product: 'Wool Beanie', intent: 'express' }, opts)).toEqual({
      agent: 'product',
      product: 'Linen Shirt',
      intent: 'price',
    });
    expect(reconcileChoice({ agent: 'delivery', product: 'Linen Shirt', intent: 'returns' }, opts)).toEqual({
      agent: 'delivery',
      product: 'none',
      intent: 'returns',
    });
    // Two products named: the model chooses between them.
    const two = { ...opts, candidates: ['Linen Shirt', 'Leather Belt'] };
    expect(reconcileChoice({ agent: 'product', product: 'Leather Belt', intent: 'stock' }, two)).toEqual({
      agent: 'product',
      product: 'Leather Belt',
      intent: 'stock',
    });
    // No product named: the model's pick (a small model's first enum value) is not a fact anyone asked for.
    expect(
      reconcileChoice({ agent: 'product', product: 'Canvas Tote Bag', intent: 'price' }, { ...opts, candidates: [] }),
    ).toEqual({ agent: 'product', product: 'none', intent: 'price' });
  });
});

describe('support for the router choice in the customer words', () => {
  const plan = (batch: string, candidates: string[] = []) => ({
    fallback: keywordChoice([batch], candidates, candidates.length > 0, intents),
    candidates,
  });
  const tote = { agent: 'product' as const, product: 'Canvas Tote Bag', intent: 'price' };

  it('sends a product or delivery pick with no support at all to the general agent', () => {
    const general = { agent: 'general', product: 'none', intent: 'other' };
    expect(supportedChoice(tote, plan('Hello! Who are you?'))).toEqual(general);
    expect(supportedChoice({ agent: 'delivery', product: 'none', intent: 'express' }, plan('안녕하세요'))).toEqual(
      general,
    );
  });

  it('keeps a pick the words support, even when the keywords would have picked another agent', () => {
    expect(supportedChoice(tote, plan('How much is the tote?', ['Canvas Tote Bag']))).toBe(tote);
    expect(supportedChoice(tote, plan('Can I pre-order it?'))).toBe(tote);
    const delivery = { agent: 'delivery' as const, product: 'none', intent: 'delivery_time' };
    expect(supportedChoice(delivery, plan('When will my parcel arrive?'))).toBe(delivery);
    expect(supportedChoice(delivery, plan('How much does it cost?'))).toBe(delivery);
  });

  it('a product pick for a question with delivery words and no product named is a delivery question', () => {
    const none = { agent: 'product' as const, product: 'none', intent: 'price' };
    expect(supportedChoice(none, plan('How much is shipping?'))).toMatchObject({ agent: 'delivery' });
    expect(supportedChoice(none, plan('How do I return an item?'))).toMatchObject({
      agent: 'delivery',
      intent: 'returns',
    });
    // A product named: the product agent keeps it (its reply carries the product's facts).
    expect(supportedChoice(tote, plan('Do you ship the tote?', ['Canvas Tote Bag']))).toBe(tote);
  });
});

describe('data-only replies', () => {
  it('writes product facts from the ontology, the asked fact first', () => {
    expect(productReply(product('Linen Shirt'), 'price')).toBe(
      'The Linen Shirt costs 39.90 EUR and is in stock (12 left). Colours: white, sand, navy; sizes: S, M, L, XL.',
    );
    expect(productReply(product('Wool Beanie'), 'stock')).toBe(
      'Sorry, the Wool Beanie is currently out of stock. It costs 24.50 EUR.',
    );
    expect(productReply(product('Leather Belt'), 'stock')).toBe(
      'The Leather Belt is available for pre-order. It costs 49.00 EUR.',
    );
    expect(productReply(product('Canvas Tote Bag'), 'options')).toBe(
      'The Canvas Tote Bag comes in one version only. It costs 18.00 EUR and is in stock (40 left).',
    );
    expect(productReply(product('Linen Shirt'), 'description')).toBe(
      'The Linen Shirt: Breathable shirt made of 100% European linen, relaxed fit. It costs 39.90 EUR and is in stock (12 left).',
    );
    expect(noProductReply(names)).toBe(
      'Which product do you mean? We have Canvas Tote Bag, Leather Belt, Linen Shirt and Wool Beanie.',
    );
  });

  it('answers delivery questions with the policy lines of the topic', () => {
    expect(deliveryReply(topics, 'delivery_time', policy)).toBe(
      'Standard delivery within Germany takes 2–4 business days and costs 4.95 EUR.',
    );
    expect(deliveryReply(topics, 'delivery_cost', policy)).toBe(
      'Standard delivery within Germany takes 2–4 business days and costs 4.95 EUR. Free standard delivery on orders over 60 EUR.',
    );
    expect(deliveryReply(topics, 'eu_shipping', policy)).toBe(
      'We ship to all EU countries; EU delivery takes 4–7 business days and costs 8.50 EUR. We do not ship outside the EU.',
    );
    expect(deliveryReply(topics, 'other', policy)).toBe(
      'Standard delivery within Germany takes 2–4 business days and costs 4.95 EUR. I can also tell you about ' +
        'express delivery, tracking, refunds, returns and shipping to other EU countries.',
    );
  });

  it('says in the customer language that the facts are in English, and gives general questions the polite line', () => {
    const shop = { products, policy };
    expect(dataReply({ agent: 'product', product: 'Linen Shirt', intent: 'price' }, shop, 'es')).toEqual({
      text: `Aquí tiene la información (en inglés): ${productReply(product('Linen Shirt'), 'price')}`,
      writer: 'data',
    });
    expect(dataReply({ agent: 'general', product: 'none', intent: 'other' }, shop, 'ko')).toEqual({
      text: '안녕하세요! 메시지 감사합니다. 곧 담당자가 답변드리겠습니다.',
      writer: 'fallback',
    });
    expect(dataReply({ agent: 'product', product: 'none', intent: 'price' }, shop, 'en').text).toBe(
      noProductReply(names),
    );
  });
});
