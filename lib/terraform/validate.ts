/**
 * Terraform validation without the network: a real HCL2 parser (@cdktf/hcl2json, HashiCorp's hcl compiled
 * to WASM) plus static checks (every reference resolves, every provider is declared, no duplicate names).
 * `terraform validate` / `tofu validate` runs in addition when a binary is on PATH (or AINODE_TERRAFORM_BIN)
 * and `init -backend=false` succeeds; providers usually cannot be downloaded offline, and then the output
 * says so instead of failing.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type * as Hcl2JsonModule from '@cdktf/hcl2json';
import type { CheckStatus, TerraformDiagnostic, TerraformValidation } from '../../contracts/design';
import { providerOf } from './combine';
import { schemaCheck } from './schema';

// Loaded on first use: the parser instantiates a Go WASM module at import (~50 MB of RSS), which the
// orchestrator should pay only once a design is validated, not while idle.
type Hcl2Json = typeof Hcl2JsonModule;
let hcl2json: Promise<Hcl2Json> | undefined;
const loadHcl2Json = () => (hcl2json ??= import('@cdktf/hcl2json'));
const parse: Hcl2Json['parse'] = async (...args) => (await loadHcl2Json()).parse(...args);
const getReferencesInExpression: Hcl2Json['getReferencesInExpression'] = async (...args) =>
  (await loadHcl2Json()).getReferencesInExpression(...args);

type Json = Record<string, unknown>;

/** Roots that are not declarations: iteration and meta values. */
const BUILTIN_ROOTS = new Set(['each', 'count', 'path', 'self', 'terraform']);

interface Declared {
  resources: Map<string, string>;
  data: Map<string, string>;
  variables: Map<string, string>;
  locals: Map<string, string>;
  modules: Map<string, string>;
  outputs: Map<string, string>;
  providers: Set<string>;
  requiredProviders: Set<string>;
}

function asRecord(v: unknown): Json {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
}

/** Parses and statically checks `files` (name → content). Pure apart from the WASM parser. */
export async function staticValidate(files: Record<string, string>): Promise<TerraformDiagnostic[]> {
  return (await parseAndCheck(files)).diagnostics;
}

/** `staticValidate`, also returning the parsed files (hcl2json's JSON) for the schema check. */
async function parseAndCheck(
  files: Record<string, string>,
): Promise<{ diagnostics: TerraformDiagnostic[]; parsed: { file: string; body: Json }[] }> {
  const diagnostics: TerraformDiagnostic[] = [];
  const parsed: { file: string; body: Json }[] = [];
  for (const [file, content] of Object.entries(files)) {
    if (!content.trim()) continue;
    try {
      parsed.push({ file, body: await parse(file, content) });
    } catch (err) {
      const message = String(err instanceof Error ? err.message : err).replace(/^Error:\s*/, '');
      diagnostics.push({ file, severity: 'error', check: 'hcl-parse', message });
    }
  }

  const d: Declared = {
    resources: new Map(),
    data: new Map(),
    variables: new Map(),
    locals: new Map(),
    modules: new Map(),
    outputs: new Map(),
    providers: new Set(),
    requiredProviders: new Set(),
  };
  const declare = (map: Map<string, string>, what: string, name: string, file: string, count = 1) => {
    const prev = map.get(name);
    if (prev !== undefined || count > 1) {
      diagnostics.push({
        file,
        severity: 'error',
        check: 'duplicate',
        message: `${what} "${name}" is declared more than once (${prev ?? file} and ${file})`,
      });
    }
    map.set(name, file);
  };
  for (const { file, body } of parsed) {
    for (const [type, byName] of Object.entries(asRecord(body.resource))) {
      for (const [name, list] of Object.entries(asRecord(byName))) {
        declare(d.resources, 'resource', `${type}.${name}`, file, Array.isArray(list) ? list.length : 1);
      }
    }
    for (const [type, byName] of Object.entries(asRecord(body.data))) {
      for (const [name, list] of Object.entries(asRecord(byName))) {
        declare(d.data, 'data source', `${type}.${name}`, file, Array.isArray(list) ? list.length : 1);
      }
    }
    for (const [name, list] of Object.entries(asRecord(body.variable))) {
      declare(d.variables, 'variable', name, file, Array.isArray(list) ? list.length : 1);
    }
    for (const [name, list] of Object.entries(asRecord(body.output))) {
      declare(d.outputs, 'output', name, file, Array.isArray(list) ? list.length : 1);
    }
    for (const [name, list] of Object.entries(asRecord(body.module))) {
      declare(d.modules, 'module', name, file, Array.isArray(list) ? list.length : 1);
    }
    for (const locals of Array.isArray(body.locals) ? body.locals : [body.locals]) {
      for (const name of Object.keys(asRecord(locals))) declare(d.locals, 'local value', name, file);
    }
    for (const name of Object.keys(asRecord(body.provider))) d.providers.add(name);
    for (const tf of Array.isArray(body.terraform) ? body.terraform : []) {
      for (const rp of Array.isArray(asRecord(tf).required_providers)
        ? (asRecord(tf).required_providers as Json[])
        : []) {
        for (const name of Object.keys(asRecord(rp))) d.requiredProviders.add(name);
      }
    }
  }

  // Providers: every resource/data type's provider must be declared (provider block or required_providers).
  const used = new Map<string, string>();
  for (const [addr, file] of [...d.resources, ...d.data]) used.set(providerOf(addr.split('.')[0]!), file);
  for (const [provider, file] of used) {
    if (!d.providers.has(provider) && !d.requiredProviders.has(provider)) {
      diagnostics.push({
        file,
        severity: 'error',
        check: 'provider',
        message: `provider "${provider}" is used but not declared (add it to required_providers or a provider block)`,
      });
    }
  }

  // References: every `${...}` expression in every string value must point at something declared.
  for (const { file, body } of parsed) {
    for (const expr of collectExpressions(body)) {
      let refs: { value: string }[];
      try {
        refs = await getReferencesInExpression(file, expr);
      } catch {
        continue; // the parser already reported the file if the expression is invalid
      }
      for (const ref of refs) {
        const problem = unresolved(ref.value, d);
        if (problem) diagnostics.push({ file, severity: 'error', check: 'reference', message: problem });
      }
    }
  }
  return { diagnostics: dedupe(diagnostics), parsed };
}

function dedupe(list: TerraformDiagnostic[]): TerraformDiagnostic[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const k = `${x.file}|${x.check}|${x.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function collectExpressions(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') {
    if (v.includes('${')) out.push(v);
  } else if (Array.isArray(v)) {
    for (const x of v) collectExpressions(x, out);
  } else if (v && typeof v === 'object') {
    for (const x of Object.values(v)) collectExpressions(x, out);
  }
  return out;
}

/** Why `ref` (e.g. `aws_s3_bucket.logs.arn`) does not resolve, or undefined when it does. */
function unresolved(ref: string, d: Declared): string | undefined {
  const parts = ref.split('.');
  const [root, a, b] = parts;
  if (!root || BUILTIN_ROOTS.has(root)) return undefined;
  switch (root) {
    case 'var':
      return a && d.variables.has(a) ? undefined : `reference to undeclared variable "var.${a ?? ''}"`;
    case 'local':
      return a && d.locals.has(a) ? undefined : `reference to undeclared local value "local.${a ?? ''}"`;
    case 'module':
      return a && d.modules.has(a) ? undefined : `reference to undeclared module "module.${a ?? ''}"`;
    case 'data':
      return a && b && d.data.has(`${a}.${b}`) ? undefined : `reference to undeclared data source "data.${a}.${b}"`;
    default:
      // Anything else with a provider-style type (`aws_vpc.main`) must be a declared resource.
      if (!root.includes('_') || !a) return undefined;
      return d.resources.has(`${root}.${a}`) ? undefined : `reference to undeclared resource "${root}.${a}"`;
  }
}

function run(
  bin: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      {
        cwd,
        timeout: timeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        env: { ...process.env, TF_IN_AUTOMATION: '1', CHECKPOINT_DISABLE: '1', TF_INPUT: '0' },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code !== 0 ? err.message : '') });
      },
    );
  });
}

/** The terraform/tofu binary to use: AINODE_TERRAFORM_BIN, else the first on PATH. */
export function findTerraformBinary(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.AINODE_TERRAFORM_BIN;
  if (explicit) return existsSync(explicit) ? explicit : undefined;
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of ['terraform', 'tofu']) {
      const p = path.join(dir, name);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

/** `terraform init -backend=false` + `validate -json` in a temp dir; never throws. */
export async function terraformValidate(
  files: Record<string, string>,
  bin: string | undefined,
  timeoutMs = 60_000,
): Promise<{ result: TerraformValidation['terraform']; diagnostics: TerraformDiagnostic[] }> {
  if (!bin) return { result: { ran: false, reason: 'no terraform or tofu binary on PATH' }, diagnostics: [] };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ainode-tf-'));
  try {
    for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, path.basename(name)), content);
    const init = await run(bin, ['init', '-backend=false', '-input=false', '-no-color'], dir, timeoutMs);
    if (init.code !== 0) {
      const why = (init.stderr || init.stdout)
        .split('\n')
        .map((l) => l.replace(/^[\s│╷╵]+/, '').trim())
        .filter(Boolean)
        .join(' ')
        .slice(0, 400);
      return {
        result: { ran: false, binary: bin, reason: `init failed (providers unavailable offline?): ${why}` },
        diagnostics: [],
      };
    }
    const v = await run(bin, ['validate', '-json', '-no-color'], dir, timeoutMs);
    let parsed: {
      valid?: boolean;
      diagnostics?: { severity?: string; summary?: string; detail?: string; range?: { filename?: string } }[];
    };
    try {
      parsed = JSON.parse(v.stdout) as typeof parsed;
    } catch {
      return {
        result: { ran: false, binary: bin, reason: `validate gave no JSON: ${v.stderr.slice(0, 300)}` },
        diagnostics: [],
      };
    }
    const diagnostics: TerraformDiagnostic[] = (parsed.diagnostics ?? []).map((x) => ({
      file: x.range?.filename,
      severity: x.severity === 'warning' ? 'warning' : 'error',
      check: 'terraform',
      message: [x.summary, x.detail].filter(Boolean).join(': '),
    }));
    return { result: { ran: true, binary: bin, ok: parsed.valid === true }, diagnostics };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Renders diagnostics the way the fix prompt and the API show them. */
export function formatValidation(
  diags: TerraformDiagnostic[],
  tf: TerraformValidation['terraform'],
  schema?: TerraformValidation['schemaCheck'],
): string {
  const lines = diags.map((x) => `${x.severity.toUpperCase()} [${x.check}] ${x.file ?? ''}: ${x.message}`);
  if (lines.length === 0) lines.push('OK: HCL parses, references resolve, providers declared, no duplicates.');
  if (schema) {
    lines.push(
      schema.status === 'not_run'
        ? `schema check not run: ${schema.reason ?? 'unknown reason'}`
        : `schema check against ${schema.provider}: ${schema.status} (${schema.checked} checked, ${schema.errors} error(s))`,
    );
  }
  lines.push(
    tf.ran
      ? `terraform validate (${tf.binary}): ${tf.ok ? 'valid' : 'invalid'}`
      : `terraform validate not run: ${tf.reason ?? 'unknown reason'}`,
  );
  return lines.join('\n');
}

/** `passed | failed | not_run` of a terraform validate result. */
export function terraformStatus(tf: TerraformValidation['terraform']): CheckStatus {
  return !tf.ran ? 'not_run' : tf.ok ? 'passed' : 'failed';
}

/**
 * Full validation: parser + static checks, the AWS provider schema check, then terraform when available. `ok`
 * means no error from any check that ran; `schemaCheck` and `terraformValidate` say which ran.
 */
export async function validateTerraform(
  files: Record<string, string>,
  opts: { terraformBin?: string; timeoutMs?: number } = {},
): Promise<TerraformValidation> {
  const { diagnostics, parsed } = await parseAndCheck(files);
  const parses = !diagnostics.some((x) => x.check === 'hcl-parse');
  const sc = parses
    ? schemaCheck(parsed)
    : { ran: false, reason: 'skipped: HCL does not parse', checked: 0, diagnostics: [] };
  const schema: TerraformValidation['schemaCheck'] = {
    status: !sc.ran ? 'not_run' : sc.diagnostics.length ? 'failed' : 'passed',
    ...(sc.provider ? { provider: sc.provider } : {}),
    ...(sc.reason ? { reason: sc.reason } : {}),
    checked: sc.checked,
    errors: sc.diagnostics.length,
  };
  // Terraform on files that do not even parse adds nothing but noise and time.
  const tf = !parses
    ? { result: { ran: false, reason: 'skipped: HCL does not parse' }, diagnostics: [] }
    : await terraformValidate(files, opts.terraformBin, opts.timeoutMs);
  const all = [...diagnostics, ...sc.diagnostics, ...tf.diagnostics];
  const ok = !all.some((x) => x.severity === 'error') && (!tf.result.ran || tf.result.ok === true);
  return {
    ok,
    diagnostics: all,
    output: formatValidation(all, tf.result, schema),
    terraform: tf.result,
    schemaCheck: schema,
    terraformValidate: terraformStatus(tf.result),
  };
}
