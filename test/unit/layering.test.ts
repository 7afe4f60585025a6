/**
 * The layering (eslint.layers.cjs) fails on an upward import, and the tree has none. Lints with exactly the
 * layer rules and no type information, so it runs without a build or services.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { layers } = require('../../eslint.layers.cjs') as { layers: object[] };
const ROOT = path.resolve(__dirname, '..', '..');
const LAYERS = ['common', 'contracts', 'lib', 'activities', 'workflows', 'api', 'workers'];

function eslint(): ESLint {
  return new ESLint({
    cwd: ROOT,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser },
        plugins: { '@typescript-eslint': tseslint.plugin },
      },
      ...layers,
    ] as never,
  });
}

async function problems(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint().lintText(code, { filePath: path.join(ROOT, filePath) });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layering', () => {
  it.each([
    ['workflows/probe.ts', "import { createStorage } from '../lib/storage/clients';", 'may not import from lib/'],
    ['workflows/design/probe.ts', "import { runJob } from '../../api/server';", 'may not import from api/'],
    ['workflows/probe.ts', "import { createLlmActivities } from '../activities/llm';", 'as types only'],
    ['workflows/probe.ts', "import { readFileSync } from 'node:fs';", 'deterministic'],
    ['lib/chat/probe.ts', "import { chatWorkflow } from '../../workflows/chat/chat-workflow';", 'workflows/'],
    ['lib/probe.ts', "import { createLlmActivities } from '../activities/llm';", 'activities/'],
    ['contracts/probe.ts', "import { Storage } from '../lib/storage/clients';", 'lib/'],
    ['contracts/probe.ts', "import { Client } from '@temporalio/client';", 'deterministic'],
    ['common/probe.ts', "import { ChatMessage } from '../contracts/llm';", 'contracts/'],
    ['activities/probe.ts', "import { jobWorkflow } from '../workflows/job-workflow';", 'workflows/'],
    ['api/routes/probe.ts', "import { promptWorkflow } from '../../workflows/prompt-workflow';", 'as types only'],
    ['workers/probe.ts', "import { createApp } from '../api/app';", 'api/'],
  ])('%s: %s fails', async (file, code, expected) => {
    const found = await problems(file, code);
    expect(found).toEqual([expect.stringContaining(expected)]);
    expect(found[0]).toMatch(/^no-restricted-imports: /);
  });

  it.each([
    ['workflows/probe.ts', "import type { LlmActivities } from '../contracts/llm';"],
    ['workflows/probe.ts', "import type * as llm from '../activities/llm';"],
    ['workflows/design/probe.ts', "import { channels } from '../graph';"],
    ['activities/probe.ts', "import { createStorage } from '../lib/storage/clients';"],
    ['api/routes/probe.ts', "import type { promptWorkflow } from '../../workflows/prompt-workflow';"],
    ['lib/probe.ts', "import { ErrorType } from '../common/errors';"],
  ])('%s: %s passes', async (file, code) => {
    expect(await problems(file, code)).toEqual([]);
  });

  it('no file in the tree imports upward', async () => {
    const files = LAYERS.flatMap((dir) => tsFiles(path.join(ROOT, dir)));
    const linter = eslint();
    const errors: string[] = [];
    for (const file of files) {
      const [r] = await linter.lintText(readFileSync(file, 'utf8'), { filePath: file });
      for (const m of r!.messages.filter((x) => x.ruleId === 'no-restricted-imports'))
        errors.push(`${path.relative(ROOT, file)}:${m.line} ${m.message}`);
    }
    expect(files.length).toBeGreaterThan(50);
    expect(errors).toEqual([]);
  });
});

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}
