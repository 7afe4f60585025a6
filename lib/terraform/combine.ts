/**
 * Turns per-resource HCL snippets (one LLM answer each) into the four files of a module: providers.tf,
 * main.tf, variables.tf, outputs.tf. Blocks are split by a small scanner (strings, heredocs and comments
 * aware) rather than the parser, so a snippet with a syntax error still lands in a file where the validator
 * can report it and the fix pass can repair it.
 */

export interface HclBlock {
  /** `resource "aws_s3_bucket" "logs"` with whitespace normalised: the dedup key. */
  header: string;
  kind: string;
  labels: string[];
  text: string;
}

/** Strips markdown code fences and prose the model may wrap around HCL. */
export function stripFences(text: string): string {
  const fenced = [...text.matchAll(/```[a-zA-Z0-9_-]*\s*\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  return fenced.length > 0 ? fenced.join('\n') : text;
}

/** Splits HCL text into its top-level blocks; text outside blocks (prose, stray lines) is dropped. */
export function splitBlocks(source: string): HclBlock[] {
  const text = stripFences(source);
  const blocks: HclBlock[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    // A block header starts at a line beginning with an identifier.
    const lineEnd = text.indexOf('\n', i) === -1 ? n : text.indexOf('\n', i);
    const line = text.slice(i, lineEnd);
    const m = /^\s*([A-Za-z_][\w-]*)((?:\s+(?:"[^"]*"|[A-Za-z_][\w-]*))*)\s*\{/.exec(line);
    if (!m) {
      i = lineEnd + 1;
      continue;
    }
    const open = i + m[0].length - 1;
    const close = matchBrace(text, open);
    const end = close === -1 ? n : close + 1;
    const kind = m[1]!;
    const labels = [...(m[2] ?? '').matchAll(/"([^"]*)"|([A-Za-z_][\w-]*)/g)].map((x) => x[1] ?? x[2] ?? '');
    blocks.push({
      kind,
      labels,
      header: [kind, ...labels.map((l) => `"${l}"`)].join(' '),
      text: text.slice(i, end).replace(/^\s+/, '').trimEnd(),
    });
    i = end;
  }
  return blocks;
}

/** Index of the `}` closing the `{` at `open`, or -1 when unbalanced. */
function matchBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      i = skipString(text, i);
    } else if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? text.length : nl;
    } else if (c === '/' && text[i + 1] === '*') {
      const e = text.indexOf('*/', i + 2);
      i = e === -1 ? text.length : e + 1;
    } else if (c === '<' && text[i + 1] === '<') {
      const hm = /^<<-?([A-Za-z_]\w*)\s*\n/.exec(text.slice(i));
      if (hm) {
        const endRe = new RegExp(`\\n\\s*${hm[1]}\\s*(\\n|$)`, 'g');
        endRe.lastIndex = i + hm[0].length - 1;
        const em = endRe.exec(text);
        i = em ? em.index + em[0].length - 1 : text.length;
      }
    } else if (c === '{') {
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** Skips a quoted string (with `${...}` interpolations that may contain strings); returns its closing quote. */
function skipString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '"') return i;
    else if (c === '\n')
      return i; // unterminated: stop at the line end
    else if ((c === '$' || c === '%') && text[i + 1] === '{') {
      let depth = 0;
      for (i = i + 1; i < text.length; i++) {
        if (text[i] === '"') i = skipString(text, i);
        else if (text[i] === '{') depth++;
        else if (text[i] === '}' && --depth === 0) break;
      }
    }
  }
  return text.length;
}

const FILE_OF: Record<string, string> = {
  terraform: 'providers.tf',
  provider: 'providers.tf',
  variable: 'variables.tf',
  output: 'outputs.tf',
};

/** Provider of a resource/data type: the prefix before the first underscore (`aws_s3_bucket` → `aws`). */
export function providerOf(type: string): string {
  return type.split('_')[0] ?? type;
}

const KNOWN_SOURCES: Record<string, string> = {
  aws: 'hashicorp/aws',
  google: 'hashicorp/google',
  azurerm: 'hashicorp/azurerm',
  random: 'hashicorp/random',
  tls: 'hashicorp/tls',
  null: 'hashicorp/null',
  local: 'hashicorp/local',
  archive: 'hashicorp/archive',
  kubernetes: 'hashicorp/kubernetes',
};

export interface CombineOptions {
  /** Default for the generated `region` variable when the snippets use aws without a provider block. */
  region?: string;
}

/**
 * Combines snippets into files, deduplicating blocks by header (the first wins) and adding what every module
 * needs: `required_providers` for each provider used and a `provider "aws"` block wired to `var.region`.
 */
export function combineTerraform(snippets: string[], opts: CombineOptions = {}): Record<string, string> {
  const byFile: Record<string, HclBlock[]> = {
    'providers.tf': [],
    'main.tf': [],
    'variables.tf': [],
    'outputs.tf': [],
  };
  const seen = new Set<string>();
  for (const snippet of snippets) {
    for (const block of splitBlocks(snippet)) {
      // `terraform {}` blocks from several snippets are rebuilt below; `locals` may legitimately repeat.
      if (block.kind === 'terraform') continue;
      const key = block.kind === 'locals' ? block.text : block.header;
      if (seen.has(key)) continue;
      seen.add(key);
      byFile[FILE_OF[block.kind] ?? 'main.tf']!.push(block);
    }
  }
  const providersUsed = new Set<string>();
  for (const b of byFile['main.tf']!) {
    if ((b.kind === 'resource' || b.kind === 'data') && b.labels[0]) providersUsed.add(providerOf(b.labels[0]));
  }
  for (const b of byFile['providers.tf']!) if (b.labels[0]) providersUsed.add(b.labels[0]);
  const declaredProviders = new Set(
    byFile['providers.tf']!.filter((b) => b.kind === 'provider').map((b) => b.labels[0]),
  );
  const extra: string[] = [];
  if (providersUsed.has('aws') && !declaredProviders.has('aws')) {
    extra.push('provider "aws" {\n  region = var.region\n}');
    if (!seen.has('variable "region"')) {
      byFile['variables.tf']!.unshift({
        kind: 'variable',
        labels: ['region'],
        header: 'variable "region"',
        text: `variable "region" {\n  description = "AWS region"\n  type        = string\n  default     = "${opts.region ?? 'us-east-1'}"\n}`,
      });
    }
  }
  const required = [...providersUsed]
    .sort()
    .map((p) => `    ${p} = {\n      source = "${KNOWN_SOURCES[p] ?? `hashicorp/${p}`}"\n    }`)
    .join('\n');
  const terraformBlock = `terraform {\n  required_version = ">= 1.3"\n  required_providers {\n${required}\n  }\n}`;
  const files: Record<string, string> = {};
  files['providers.tf'] = [terraformBlock, ...extra, ...byFile['providers.tf']!.map((b) => b.text)].join('\n\n') + '\n';
  for (const name of ['main.tf', 'variables.tf', 'outputs.tf']) {
    files[name] = byFile[name]!.map((b) => b.text).join('\n\n') + (byFile[name]!.length ? '\n' : '');
  }
  return files;
}
