/**
 * The customer's language, from the script of their letters (Hangul, Kana, Han, Cyrillic... via Unicode
 * property escapes) and, for Latin-script text, from a few tell-tale words. A tiny model cannot reliably
 * write Korean or Japanese, so a reply that is not in the customer's script is replaced by the fixed polite
 * line of that language from LANGUAGES: one table, the only place languages are listed. Pure.
 */

export type Script =
  'Latin' | 'Hangul' | 'Kana' | 'Han' | 'Cyrillic' | 'Greek' | 'Arabic' | 'Hebrew' | 'Thai' | 'Devanagari';

export interface LanguageEntry {
  code: string;
  /** English name, for the model's instructions ("answer in Spanish"). */
  name: string;
  script: Script;
  /** Words that, in Latin-script text, point to this language (lowercase, whole words, space-separated). */
  words?: string;
  /** Letters only this language uses among those listed (e.g. ñ, ß). */
  letters?: RegExp;
  /** The polite fixed reply when the model cannot answer in this language. */
  fallback: string;
  /** Put before a reply written from English shop data, so the customer knows why it is in English. */
  factsIntro?: string;
}

export const LANGUAGES: readonly LanguageEntry[] = [
  {
    code: 'en',
    name: 'English',
    script: 'Latin',
    words:
      'the is are you your how what hello hi thanks thank please do can much we our help with have it in of for to and',
    fallback: 'Hello! Thanks for your message. A colleague will get back to you shortly.',
  },
  {
    code: 'ko',
    name: 'Korean',
    script: 'Hangul',
    fallback: '안녕하세요! 메시지 감사합니다. 곧 담당자가 답변드리겠습니다.',
    factsIntro: '안내해 드립니다 (영어):',
  },
  {
    code: 'ja',
    name: 'Japanese',
    script: 'Kana',
    fallback: 'こんにちは！メッセージありがとうございます。担当者よりまもなくご連絡いたします。',
    factsIntro: 'ご案内いたします（英語）：',
  },
  {
    code: 'zh',
    name: 'Chinese',
    script: 'Han',
    fallback: '您好！感谢您的留言，我们的工作人员会尽快回复您。',
    factsIntro: '以下是相关信息（英文）：',
  },
  {
    code: 'ru',
    name: 'Russian',
    script: 'Cyrillic',
    fallback: 'Здравствуйте! Спасибо за сообщение. Наш сотрудник скоро вам ответит.',
    factsIntro: 'Вот информация (на английском):',
  },
  {
    code: 'es',
    name: 'Spanish',
    script: 'Latin',
    letters: /[ñ¿¡]/u,
    words:
      'hola cuánto cuanto cuesta precio gracias envío envio tienen tiene quiero buenos buenas dónde donde cuándo cuando por favor el la los las es está un una qué que para hay entrega talla',
    fallback: '¡Hola! Gracias por su mensaje. Un compañero le responderá en breve.',
    factsIntro: 'Aquí tiene la información (en inglés):',
  },
  {
    code: 'de',
    name: 'German',
    script: 'Latin',
    letters: /[ßäöü]/u,
    words:
      'hallo guten tag wie viel kostet danke lieferung versand ich und nicht ist haben sie das der die ein eine wann wo bitte gibt es größe lieferbar',
    fallback: 'Hallo! Danke für Ihre Nachricht. Ein Kollege meldet sich in Kürze bei Ihnen.',
    factsIntro: 'Hier die Informationen (auf Englisch):',
  },
  {
    code: 'fr',
    name: 'French',
    script: 'Latin',
    letters: /[çœàèùâêîôû]/u,
    words:
      'bonjour salut combien coûte coute merci livraison je vous est avez le la les une des pour quand où prix taille disponible voudrais',
    fallback: 'Bonjour ! Merci pour votre message. Un collègue vous répondra sous peu.',
    factsIntro: 'Voici les informations (en anglais) :',
  },
];

const ENGLISH = LANGUAGES[0]!;

/** Letters of each script; the first matching one counts a character. */
const SCRIPTS: readonly [Script, RegExp][] = [
  ['Hangul', /\p{Script=Hangul}/u],
  ['Kana', /[\p{Script=Hiragana}\p{Script=Katakana}]/u],
  ['Han', /\p{Script=Han}/u],
  ['Cyrillic', /\p{Script=Cyrillic}/u],
  ['Greek', /\p{Script=Greek}/u],
  ['Arabic', /\p{Script=Arabic}/u],
  ['Hebrew', /\p{Script=Hebrew}/u],
  ['Thai', /\p{Script=Thai}/u],
  ['Devanagari', /\p{Script=Devanagari}/u],
  ['Latin', /\p{Script=Latin}/u],
];

/** A syllable or ideograph carries about as much as a short Latin word: weigh them up against letters. */
const WEIGHT: Partial<Record<Script, number>> = { Hangul: 2, Kana: 2, Han: 2 };

/** Weighted letter counts per script. */
export function scriptCounts(text: string): Partial<Record<Script, number>> {
  const counts: Partial<Record<Script, number>> = {};
  for (const ch of text) {
    for (const [script, re] of SCRIPTS) {
      if (re.test(ch)) {
        counts[script] = (counts[script] ?? 0) + (WEIGHT[script] ?? 1);
        break;
      }
    }
  }
  return counts;
}

/** The script most of the text is written in; Japanese mixes Kana and Han, so any Kana makes it Kana. */
export function dominantScript(text: string): Script | undefined {
  const counts = scriptCounts(text);
  const cjk = (counts.Kana ?? 0) + (counts.Han ?? 0);
  if (counts.Kana && cjk >= (counts.Latin ?? 0)) return 'Kana';
  let best: Script | undefined;
  for (const [script, n] of Object.entries(counts) as [Script, number][]) {
    if (best === undefined || n > (counts[best] ?? 0)) best = script;
  }
  return best;
}

const wordsOf = (text: string) =>
  text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);

function latinScores(text: string): Map<LanguageEntry, number> {
  const words = wordsOf(text);
  const scores = new Map<LanguageEntry, number>();
  for (const lang of LANGUAGES) {
    if (lang.script !== 'Latin') continue;
    const set = new Set(lang.words?.split(' ') ?? []);
    let score = words.filter((w) => set.has(w)).length;
    if (lang.letters?.test(text.toLowerCase())) score += 2;
    scores.set(lang, score);
  }
  return scores;
}

export interface DetectedLanguage {
  /** A code from LANGUAGES, or 'und' for a script we have no entry for. */
  code: string;
  script?: Script;
  /** False when Latin-script text gave no tell-tale words: treated as English, but not checked as such. */
  confident: boolean;
}

/** The language of a customer's text (or of a reply). Latin text with no clues counts as English. */
export function detectLanguage(text: string): DetectedLanguage {
  const script = dominantScript(text);
  if (!script) return { code: 'en', confident: false };
  if (script !== 'Latin') {
    const entry = LANGUAGES.find((l) => l.script === script);
    return { code: entry?.code ?? 'und', script, confident: true };
  }
  let best: LanguageEntry = ENGLISH;
  let bestScore = 0;
  for (const [lang, score] of latinScores(text)) {
    if (score > bestScore) [best, bestScore] = [lang, score];
  }
  return { code: best.code, script, confident: bestScore > 0 };
}

/** The table entry of a code; English for one we have no entry for. */
export function language(code: string): LanguageEntry {
  return LANGUAGES.find((l) => l.code === code) ?? ENGLISH;
}

/** The polite fixed reply in the customer's language (English where the table has none). */
export function politeFallback(code: string): string {
  return language(code).fallback;
}

/**
 * Why a reply does not suit a customer writing in `customer`, or undefined when it does: a reply in another
 * script (less than half of its weighted letters in the customer's), or English to a customer who clearly
 * writes Spanish, German or French.
 */
export function languageMismatch(reply: string, customer: DetectedLanguage): string | undefined {
  const counts = scriptCounts(reply);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  if (customer.script && customer.script !== 'Latin') {
    // Japanese is written with Kana and Han together.
    const mine = customer.script === 'Kana' ? (counts.Kana ?? 0) + (counts.Han ?? 0) : (counts[customer.script] ?? 0);
    return mine * 2 >= total
      ? undefined
      : `reply is not in ${customer.script} script (${language(customer.code).name})`;
  }
  const latin = counts.Latin ?? 0;
  if (latin * 2 < total) return `reply is not in Latin script`;
  if (customer.confident && customer.code !== 'en') {
    const scores = latinScores(reply);
    const theirs = [...scores].find(([l]) => l.code === customer.code)?.[1] ?? 0;
    const english = scores.get(ENGLISH) ?? 0;
    if (english >= 2 && english > theirs) return `reply is in English, customer writes ${language(customer.code).name}`;
  }
  return undefined;
}
