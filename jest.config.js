// Three layers (docs/architecture.md): unit (pure logic, MockActivityEnvironment, replay; no services, no
// setup: `npm run test:unit`), integration (real Temporal dev server, emulator, Docker, Ollama), e2e (the whole
// stack through HTTP). `npm test` (scripts/test.ts) starts the shared services first and passes their addresses
// in the environment.
const transform = { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] };
const common = { transform, testEnvironment: 'node', moduleFileExtensions: ['ts', 'js', 'json'] };
module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.test.ts'],
      slowTestThreshold: 60,
    },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'], slowTestThreshold: 120 },
    // Faults (docs/operations.md): kill real parts mid-work and show nothing is lost. Each file starts its own stack.
    { ...common, displayName: 'faults', testMatch: ['<rootDir>/test/faults/**/*.test.ts'], slowTestThreshold: 120 },
    // Attacks a hostile tenant can try (docs/security.md); each asserts the harm did not happen.
    { ...common, displayName: 'security', testMatch: ['<rootDir>/test/security/**/*.test.ts'], slowTestThreshold: 120 },
    // Cluster mode under SIGKILL (docs/operations.md, Cluster mode): the real Temporal server on PostgreSQL (installed
    // by scripts/setup), two of each worker as separate processes; one file, about 3 min (8 when a design's terraform
    // step is lost and waits for its 5-min timeout; docs/decisions.md). `npm run test:cluster` alone.
    {
      ...common,
      displayName: 'cluster',
      testMatch: ['<rootDir>/test/cluster/**/*.test.ts'],
      slowTestThreshold: 300,
    },
  ],
};
