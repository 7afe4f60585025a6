/**
 * Data-only replies: the sentence that states a fact (price, stock, options, a delivery time or fee) is
 * written here from the ontology and the policy, never by the model. Each reply is good on its own. Pure.
 */
import { isOutOfStock } from './ontology';
import { deliveryTopics, policyLines, type DeliveryTopic } from './policy';
import { language } from './language';
import { NO_PRODUCT, OTHER_INTENT, type ChatChoice, type ProductFact } from '../../contracts/chat';

/** Names listed when the customer named no product. */
export const MAX_NAMES_LISTED = 8;

const cap = (s: string) => (s ? s[0]!.toUpperCase() + s.slice(1) : s);
const plural = (s: string) => (/s$/i.test(s) ? s : `${s}s`);

/** "a, b and c" */
export function listText(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

function priceText(p: ProductFact): string | undefined {
  return p.price !== undefined ? `${p.price} ${p.currency ?? ''}`.trim() : undefined;
}

/** "is in stock (12 left)", "is currently out of stock", ...; undefined when the data says nothing. */
function stockText(p: ProductFact): string | undefined {
  if (isOutOfStock(p)) return 'is currently out of stock';
  if (p.availability === 'PreOrder') return 'is available for pre-order';
  if (p.availability === 'InStock' || (p.inventory !== undefined && p.inventory > 0)) {
    return p.inventory !== undefined ? `is in stock (${p.inventory} left)` : 'is in stock';
  }
  return undefined;
}

/** "The Linen Shirt costs 39.90 EUR and is in stock (12 left)." */
function coreSentence(p: ProductFact): string {
  const price = priceText(p);
  const stock = stockText(p);
  const first = price ? `The ${p.name} costs ${price}` : `The ${p.name} has no listed price`;
  return stock ? `${first} and ${stock}.` : `${first}.`;
}

/** "It costs 39.90 EUR and is in stock (12 left)." */
function itSentence(p: ProductFact): string {
  return coreSentence(p).replace(`The ${p.name} `, 'It ');
}

/** "Colours: white, sand, navy; sizes: S, M, L, XL." */
function optionsList(p: ProductFact): string | undefined {
  if (!p.options.length) return undefined;
  return cap(`${p.options.map((o) => `${plural(o.name)}: ${o.values.join(', ')}`).join('; ')}.`);
}

/** The reply to a product question, written from the product's facts. */
export function productReply(p: ProductFact, intent: string): string {
  const options = optionsList(p);
  const description = p.description?.trim();
  switch (intent) {
    case 'price':
      return [coreSentence(p), options].filter(Boolean).join(' ');
    case 'stock': {
      const stock = stockText(p);
      const price = priceText(p);
      const lead = !stock
        ? `The stock level of the ${p.name} is not listed; a colleague will check it for you.`
        : isOutOfStock(p)
          ? `Sorry, the ${p.name} ${stock}.`
          : stock.startsWith('is in stock')
            ? `Yes, the ${p.name} ${stock}.`
            : `The ${p.name} ${stock}.`;
      return price ? `${lead} It costs ${price}.` : lead;
    }
    case 'options':
      return options
        ? `The ${p.name} comes in these options. ${options} ${itSentence(p)}`
        : `The ${p.name} comes in one version only. ${itSentence(p)}`;
    case 'description':
      return description ? `The ${p.name}: ${description} ${itSentence(p)}` : coreSentence(p);
    default:
      return [coreSentence(p), options, description].filter(Boolean).join(' ');
  }
}

/** When the customer named no product we know: which one do they mean? */
export function noProductReply(catalogue: string[]): string {
  if (!catalogue.length) return "I couldn't find that product in our catalogue. A colleague will get back to you.";
  const shown = catalogue.slice(0, MAX_NAMES_LISTED);
  const more = catalogue.length > shown.length ? ' and more' : '';
  return `Which product do you mean? We have ${more ? shown.join(', ') : listText(shown)}${more}.`;
}

/** The reply to a delivery question: the policy's own lines for the topic. */
export function deliveryReply(topics: DeliveryTopic[], intent: string, policy?: string): string {
  const topic = topics.find((t) => t.id === intent);
  if (topic) return topic.lines.join(' ');
  const first = policyLines(policy)[0];
  if (!first) return 'A colleague will get back to you about delivery and returns shortly.';
  const others = topics.filter((t) => !t.lines.includes(first)).map((t) => t.label);
  return others.length ? `${first} I can also tell you about ${listText(others)}.` : first;
}

export interface ShopData {
  products: ProductFact[];
  policy?: string;
}

/**
 * The data-only reply for a choice, in the customer's language where we can: facts are English (the shop's
 * data), so other languages get a short line saying so before them. General questions get the polite line.
 */
export function dataReply(
  choice: ChatChoice,
  shop: ShopData,
  lang: string,
): { text: string; writer: 'data' | 'fallback' } {
  const entry = language(lang);
  let text: string;
  if (choice.agent === 'product') {
    const p = choice.product !== NO_PRODUCT ? shop.products.find((x) => x.name === choice.product) : undefined;
    text = p ? productReply(p, choice.intent) : noProductReply(shop.products.map((x) => x.name));
  } else if (choice.agent === 'delivery') {
    text = deliveryReply(deliveryTopics(shop.policy), choice.intent || OTHER_INTENT, shop.policy);
  } else {
    return { text: entry.fallback, writer: 'fallback' };
  }
  return { text: entry.factsIntro ? `${entry.factsIntro} ${text}` : text, writer: 'data' };
}
