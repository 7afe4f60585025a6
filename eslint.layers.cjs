// The layering, enforced: imports point down only (docs/architecture.md).
//   common     ← config, logger, error registry, task queues, search attributes
//   contracts  ← signals/queries/updates and shapes shared by workflows, activities and the API
//   lib        ← plain code with I/O: storage, stores, catalog, HMAC, zip, Terraform, executor internals
//   activities ← factories only          workflows ← deterministic code only
//   api, workers ← entry points
// Workflows may import activity *types* (proxyActivities<typeof ...>), and api/workers may import workflow
// types (client.start<typeof wf>), never their code. Kept apart from eslint.config.mjs (CommonJS, so jest can load it) so a unit test can
// lint probe files against exactly these rules without type information.

const nodeBuiltins = [
  'assert',
  'async_hooks',
  'buffer',
  'child_process',
  'cluster',
  'crypto',
  'dgram',
  'dns',
  'events',
  'fs',
  'fs/promises',
  'http',
  'http2',
  'https',
  'net',
  'os',
  'path',
  'perf_hooks',
  'process',
  'readline',
  'stream',
  'stream/promises',
  'timers',
  'tls',
  'url',
  'util',
  'v8',
  'vm',
  'worker_threads',
  'zlib',
];
const ioPackages = [
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  'ollama',
  'dockerode',
  'express',
  'n3',
];

/** A pattern that matches a relative import reaching into the top-level folder `layer`. */
const into = (layer) => `^(\\.\\./)+${layer}(/|$)`;

function forbid(layers, { typesOk = [] } = {}) {
  return [
    ...layers.map((layer) => ({
      regex: into(layer),
      message: `Layering: this folder may not import from ${layer}/ (imports point down only; see docs/architecture.md).`,
    })),
    ...typesOk.map((layer) => ({
      regex: into(layer),
      allowTypeImports: true,
      message: `Layering: import ${layer}/ as types only (import type ...); its code is registered by the workers.`,
    })),
  ];
}

const deterministic = [...nodeBuiltins.flatMap((m) => [m, `node:${m}`]), ...ioPackages].map((name) => ({
  name,
  message: 'Workflow-safe code is deterministic: no Node built-ins or I/O packages.',
}));
const awsSdk = { group: ['@aws-sdk/*'], message: 'Workflow-safe code does no I/O: use an activity.' };

const rule = (patterns, paths = []) => ({ 'no-restricted-imports': ['error', { paths, patterns }] });

const layers = [
  {
    files: ['common/**/*.ts'],
    ignores: ['common/config.ts', 'common/logger.ts'],
    rules: rule([...forbid(['contracts', 'lib', 'activities', 'workflows', 'api', 'workers']), awsSdk], deterministic),
  },
  {
    files: ['common/config.ts', 'common/logger.ts'],
    rules: rule(forbid(['contracts', 'lib', 'activities', 'workflows', 'api', 'workers'])),
  },
  {
    files: ['contracts/**/*.ts'],
    rules: rule([...forbid(['lib', 'activities', 'workflows', 'api', 'workers']), awsSdk], deterministic),
  },
  { files: ['lib/**/*.ts'], rules: rule(forbid(['activities', 'workflows', 'api', 'workers'])) },
  { files: ['activities/**/*.ts'], rules: rule(forbid(['workflows', 'api', 'workers'])) },
  {
    files: ['workflows/**/*.ts'],
    rules: rule([...forbid(['lib', 'api', 'workers'], { typesOk: ['activities'] }), awsSdk], deterministic),
  },
  { files: ['api/**/*.ts'], rules: rule(forbid(['workers'], { typesOk: ['workflows', 'activities'] })) },
  { files: ['workers/**/*.ts'], rules: rule(forbid(['api'], { typesOk: ['workflows'] })) },
];
module.exports = { layers };
