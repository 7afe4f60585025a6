/**
 * The delivery policy (markdown in S3) as topics: each topic is keyed by keywords in the policy's lines, and
 * its answer is those lines, verbatim. The router's intent enum lists only the topics this shop's policy
 * has, so the model picks a topic and the policy states the times and fees. Pure.
 */

export interface DeliveryTopicRule {
  /** The intent value in the router's schema. */
  id: string;
  /** How a reply names it ("I can also tell you about ..."). */
  label: string;
  /** A policy line belongs to the topic when it matches all of these... */
  line: readonly RegExp[];
  /** ...and none of these. */
  not?: readonly RegExp[];
  /** Customer words that point to this topic (keyword fallback when the model's output is unusable). */
  ask: RegExp;
}

/**
 * The topics, most specific first (the keyword fallback takes the first whose `ask` matches). Keywords cover
 * English plus the German, Spanish and French words customers most often use.
 */
export const DELIVERY_TOPIC_RULES: readonly DeliveryTopicRule[] = [
  {
    id: 'express',
    label: 'express delivery',
    line: [/\bexpress\b/i],
    ask: /express|next[- ]day|overnight|urgent|schnell|rápid|rapide/i,
  },
  {
    id: 'tracking',
    label: 'tracking',
    line: [/\btrack/i],
    ask: /track|where is my|sendungsverfolgung|seguimiento|suivi/i,
  },
  {
    id: 'refund',
    label: 'refunds',
    line: [/\brefund/i],
    ask: /refund|money back|reembols|erstatt|rembours/i,
  },
  {
    id: 'returns',
    label: 'returns',
    line: [/\breturns?\b/i],
    not: [/\brefund/i],
    ask: /return|send (?:it )?back|exchange|devol|rücksend|zurückschick|retour|renvoy/i,
  },
  {
    id: 'eu_shipping',
    label: 'shipping to other EU countries',
    line: [/\b(?:EU|europe|countries|international|abroad)\b/i],
    ask: /\beu\b|europ|abroad|international|countr|outside|austria|österreich|france|italy|spain|netherlands|ausland|extranjero|étranger/i,
  },
  {
    id: 'delivery_cost',
    label: 'delivery costs',
    line: [/\bstandard\b/i, /\b(?:costs?|free|EUR|USD|GBP)\b|[€$£]/i],
    ask: /cost|how much|price|fee|charge|free|kostet|kosten|gratis|cuesta|cuánto|coûte|combien|prix|precio/i,
  },
  {
    id: 'delivery_time',
    label: 'delivery times',
    line: [/\bstandard\b/i, /\b(?:takes?|days?|hours?|weeks?)\b/i],
    not: [/\bfree\b/i],
    ask: /how long|when|time|days|arrive|take|dauert|wann|cuándo|tarda|quand|délai/i,
  },
];

export interface DeliveryTopic {
  id: string;
  label: string;
  /** The policy lines that answer it, markdown removed. */
  lines: string[];
}

/** A policy line without markdown: bullets, bold, headings. */
export function plainLine(line: string): string {
  return line
    .replace(/^\s*(?:[-*+]|\d+[.)])\s+/, '')
    .replace(/^#+\s*/, '')
    .replace(/\*\*|__|`/g, '')
    .trim();
}

/** The policy's statements: bullets and paragraph lines, no headings or blank lines. */
export function policyLines(policy: string | undefined): string[] {
  return (policy ?? '')
    .split('\n')
    .filter((l) => l.trim() && !/^\s*#/.test(l))
    .map(plainLine)
    .filter(Boolean);
}

/** The topics this policy has an answer for, in rule order. */
export function deliveryTopics(policy: string | undefined): DeliveryTopic[] {
  const lines = policyLines(policy);
  const topics: DeliveryTopic[] = [];
  for (const rule of DELIVERY_TOPIC_RULES) {
    const hits = lines.filter((l) => rule.line.every((re) => re.test(l)) && !rule.not?.some((re) => re.test(l)));
    if (hits.length) topics.push({ id: rule.id, label: rule.label, lines: hits });
  }
  return topics;
}
