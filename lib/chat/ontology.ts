/**
 * The shop's product ontology (Turtle, schema.org vocabulary) parsed with a real RDF library (n3). The facts
 * extracted here are the only prices and stock levels the product agent may state.
 */
import { DataFactory, Parser, Store, type Term } from 'n3';
import type { ProductFact } from '../../contracts/chat';

const SCHEMA = 'https://schema.org/';
const SCHEMA_HTTP = 'http://schema.org/';
const RDF_TYPE = 'http://www.w3.org/1999/02/22-rdf-syntax-ns#type';
const { namedNode } = DataFactory;

/** Both spellings of schema.org are common in the wild; accept either. */
function objects(store: Store, subject: Term, local: string): Term[] {
  return [
    ...store.getObjects(subject, namedNode(SCHEMA + local), null),
    ...store.getObjects(subject, namedNode(SCHEMA_HTTP + local), null),
  ];
}

function literal(store: Store, subject: Term, local: string): string | undefined {
  const t = objects(store, subject, local)[0];
  return t ? t.value : undefined;
}

function localName(iri: string): string {
  return iri.replace(/^.*[/#]/, '');
}

/** Every `schema:Product` with its offer (price, currency, availability, inventory) and options. */
export function parseOntology(turtle: string): ProductFact[] {
  const store = new Store(new Parser().parse(turtle));
  const subjects = [
    ...store.getSubjects(namedNode(RDF_TYPE), namedNode(SCHEMA + 'Product'), null),
    ...store.getSubjects(namedNode(RDF_TYPE), namedNode(SCHEMA_HTTP + 'Product'), null),
  ];
  const products: ProductFact[] = [];
  for (const s of subjects) {
    const name = literal(store, s, 'name');
    if (!name) continue;
    const offer = objects(store, s, 'offers')[0];
    const inventoryRaw = offer ? literal(store, offer, 'inventoryLevel') : undefined;
    const inventory = inventoryRaw !== undefined && /^\d+$/.test(inventoryRaw) ? Number(inventoryRaw) : undefined;
    const availabilityIri = offer ? literal(store, offer, 'availability') : undefined;
    const options = objects(store, s, 'additionalProperty')
      .map((p) => ({
        name: literal(store, p, 'name') ?? 'option',
        values: objects(store, p, 'value').map((v) => v.value),
      }))
      .filter((o) => o.values.length > 0)
      .sort((a, b) => a.name.localeCompare(b.name));
    products.push({
      id: s.value,
      name,
      sku: literal(store, s, 'sku'),
      description: literal(store, s, 'description'),
      price: offer ? literal(store, offer, 'price') : undefined,
      currency: offer ? literal(store, offer, 'priceCurrency') : undefined,
      availability: availabilityIri ? localName(availabilityIri) : inventory === 0 ? 'OutOfStock' : undefined,
      inventory,
      options,
    });
  }
  return products.sort((a, b) => a.name.localeCompare(b.name));
}

/** True when the product cannot be bought now. */
export function isOutOfStock(p: ProductFact): boolean {
  return p.availability === 'OutOfStock' || p.availability === 'SoldOut' || p.availability === 'Discontinued';
}

const STOP = new Set(['the', 'and', 'you', 'your', 'have', 'how', 'much', 'what', 'does', 'for', 'with', 'cost']);
const tokens = (s: string) =>
  s
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((t) => t.length >= 3 && !STOP.has(t))
    // crude singular: "shirts" matches "shirt"
    .map((t) => (t.length > 4 && t.endsWith('s') ? t.slice(0, -1) : t));

/**
 * Products the texts talk about, best match first: name/SKU word overlap. `texts` is searched in order,
 * so the current batch wins over older history (a follow-up like "is it in stock?" falls back to history).
 */
export function selectProducts(products: ProductFact[], texts: string[][], max = 5): ProductFact[] {
  for (const group of texts) {
    const words = new Set(group.flatMap(tokens));
    const scored = products
      .map((p) => {
        const nameTokens = tokens(`${p.name} ${p.sku ?? ''}`);
        const hits = nameTokens.filter((t) => words.has(t)).length;
        return { p, score: nameTokens.length ? hits / nameTokens.length : 0 };
      })
      .filter((x) => x.score > 0)
      .sort((a, b) => b.score - a.score);
    if (scored.length) return scored.slice(0, max).map((x) => x.p);
  }
  return [];
}

function availabilityText(p: ProductFact): string {
  if (isOutOfStock(p)) return 'OUT OF STOCK';
  if (p.availability === 'PreOrder') return 'available for pre-order (not in stock yet)';
  if (p.availability === 'InStock') return p.inventory !== undefined ? `in stock (${p.inventory} left)` : 'in stock';
  return p.availability ? p.availability : 'availability unknown';
}

/** One line per product; the exact text the model is told to answer from. */
export function formatFacts(products: ProductFact[]): string {
  return products
    .map((p) => {
      const parts = [
        p.price !== undefined ? `price ${p.price} ${p.currency ?? ''}`.trim() : 'price not listed',
        availabilityText(p),
      ];
      for (const o of p.options) parts.push(`${o.name}: ${o.values.join(', ')}`);
      if (p.description) parts.push(p.description);
      return `- ${p.name}${p.sku ? ` (SKU ${p.sku})` : ''}: ${parts.join('; ')}`;
    })
    .join('\n');
}
