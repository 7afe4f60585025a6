/** Where scripts/setup found or built each tool (.ainode/toolchain.json). */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface Toolchain {
  cache: string;
  temporal: string;
  ollama: string;
  motoServer: string;
  ollamaModels: string;
  defaultModel: string;
  /** Every model setup placed in `ollamaModels` (older toolchain files lack it: then only defaultModel). */
  models?: string[];
  /** The embedding model setup created for vector stores (all-minilm:l6-v2), empty when it could not. */
  embedModel?: string;
  runtimeImage: string;
  terraform: string;
  /** Zipkin's server jar (scripts/lib/install-zipkin.sh), empty when it could not be installed. */
  zipkinJar?: string;
  ggufDir: string;
}

export const ROOT = path.resolve(__dirname, '..', '..');
export const STATE_DIR = path.join(ROOT, '.ainode');

/** The models the toolchain provides: `models`, or just the default model for a toolchain file without it. */
export function toolchainModels(tc: Pick<Toolchain, 'models' | 'defaultModel'>): string[] {
  return tc.models?.length ? tc.models : tc.defaultModel ? [tc.defaultModel] : [];
}

export function readToolchain(): Toolchain {
  const file = path.join(STATE_DIR, 'toolchain.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Toolchain;
  } catch {
    throw new Error(`${file} is missing: run \`npm run setup\` (or \`npm start\` / \`npm test\`, which run it).`);
  }
}
