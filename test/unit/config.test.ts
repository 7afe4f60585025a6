import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, ConfigSchema, loadConfig, priceOf } from '../../common/config';

const ROOT = path.resolve(__dirname, '..', '..');

/** `KEY=value` lines of .env.example (comments and blanks skipped). */
function envExample(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path.join(ROOT, '.env.example'), 'utf8').split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    expect(eq).toBeGreaterThan(0);
    out[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return out;
}

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('parses an empty environment to the documented defaults', () => {
    const c = loadConfig({});
    expect(c.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(c.API_PORT).toBe(8080);
    expect(c.DEFAULT_MODEL).toBe('smollm2:135m');
    expect(c.AWS_ENDPOINT_URL).toBeUndefined();
    expect(c.OLLAMA_NODES).toEqual([{ id: 'node-1', url: 'http://127.0.0.1:11434' }]);
    expect([...c.API_KEYS]).toEqual([['dev-key', 'dev']]);
    expect(c.LOG_PRETTY).toBe(false);
  });

  it('coerces numbers and booleans and treats empty strings as unset', () => {
    const c = loadConfig({ API_PORT: '9090', JOB_CPUS: '0.5', LOG_PRETTY: 'yes', S3_BUCKET: '' });
    expect(c.API_PORT).toBe(9090);
    expect(c.JOB_CPUS).toBe(0.5);
    expect(c.LOG_PRETTY).toBe(true);
    expect(c.S3_BUCKET).toBe('ainode');
  });

  it('names every bad variable in one readable error', () => {
    const problems = problemsOf({ API_PORT: 'eighty', JOB_CPUS: '0', LOG_LEVEL: 'loud', TEMPORAL_UI_URL: 'not a url' });
    const named = problems.map((p) => p.split(':')[0]).sort();
    expect(named).toEqual(['API_PORT', 'JOB_CPUS', 'LOG_LEVEL', 'TEMPORAL_UI_URL']);
    expect(() => loadConfig({ API_PORT: '-1' })).toThrow(
      /^Invalid configuration:\n {2}- API_PORT: .+\nSee \.env\.example/,
    );
  });

  it('parses OLLAMA_NODES, naming ids when missing and trimming trailing slashes', () => {
    const c = loadConfig({ OLLAMA_NODES: 'gpu0=http://ollama-gpu0:11434/, http://10.0.0.2:11434' });
    expect(c.OLLAMA_NODES).toEqual([
      { id: 'gpu0', url: 'http://ollama-gpu0:11434' },
      { id: 'node-2', url: 'http://10.0.0.2:11434' },
    ]);
    expect(problemsOf({ OLLAMA_NODES: 'gpu0=ftp://x' })).toEqual([
      'OLLAMA_NODES: "gpu0=ftp://x" is not id=http(s)://host:port',
    ]);
  });

  it('parses API_KEYS into key → tenant and rejects short or tenantless keys', () => {
    const c = loadConfig({ API_KEYS: 'abcdef:acme, 123456789:globex' });
    expect(c.API_KEYS.get('abcdef')).toBe('acme');
    expect(c.API_KEYS.get('123456789')).toBe('globex');
    expect(c.API_KEYS.size).toBe(2);
    expect(problemsOf({ API_KEYS: 'abc:acme' })[0]).toMatch(/^API_KEYS: "abc:acme" is not key:tenant/);
    expect(problemsOf({ API_KEYS: 'abcdefgh' })[0]).toMatch(/^API_KEYS: /);
  });

  it('parses PRICE_TABLE and rejects malformed rows', () => {
    const c = loadConfig({ PRICE_TABLE: 'gemma3:270m=0.01/0.02,*=1/2' });
    expect(c.PRICE_TABLE).toEqual({
      'gemma3:270m': { prompt: 0.01, completion: 0.02 },
      '*': { prompt: 1, completion: 2 },
    });
    expect(problemsOf({ PRICE_TABLE: 'gemma3=cheap' })[0]).toMatch(/^PRICE_TABLE: "gemma3=cheap" is not/);
  });
});

describe('priceOf', () => {
  const config = loadConfig({ PRICE_TABLE: 'gemma3:270m=0.5/1.5,*=2/4' });

  it('prices a known model from its row (per 1k tokens)', () => {
    expect(priceOf(config, 'gemma3:270m', 2000, 1000)).toBeCloseTo(2 * 0.5 + 1 * 1.5, 10);
  });

  it('falls back to the * row, and to zero without one', () => {
    expect(priceOf(config, 'llama3:8b', 500, 250)).toBeCloseTo(0.5 * 2 + 0.25 * 4, 10);
    const noFallback = loadConfig({ PRICE_TABLE: 'gemma3:270m=1/1' });
    expect(priceOf(noFallback, 'llama3:8b', 1000, 1000)).toBe(0);
  });
});

describe('.env.example', () => {
  it('lists every ConfigSchema key, and nothing else', () => {
    expect(Object.keys(envExample()).sort()).toEqual(Object.keys(ConfigSchema.shape).sort());
  });

  it('its values are the defaults (it documents what you get without it)', () => {
    const fromExample = loadConfig(envExample());
    const defaults = loadConfig({});
    expect(fromExample).toEqual(defaults);
  });
});
