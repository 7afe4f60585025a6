/**
 * docker-compose.yml is only run on GPU hosts, so this is its safety net: the services the deployment needs
 * exist and are wired to each other, and every variable the app services set is one common/config.ts knows
 * and parses (with compose's `${VAR:-default}` defaults applied).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ConfigSchema, loadConfig } from '../../common/config';
import { DEFAULT_ORCHESTRATOR_HEAP_MB } from '../../scripts/lib/stack';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | number | boolean>;
  volumes?: string[];
  ports?: string[];
  networks?: string[];
  user?: string;
  depends_on?: Record<string, { condition: string }>;
  deploy?: {
    resources?: { reservations?: { devices?: { driver?: string; capabilities?: string[]; device_ids?: string[] }[] } };
  };
}

// Merge keys (`<<: *app-env`) are YAML 1.1; compose supports them, so parse them the same way.
const compose = parse(read('docker-compose.yml'), { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { internal?: boolean } | null>;
};
const services = compose.services;
const svc = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
};

/** Compose interpolation with defaults applied: `${X:-d}` → d, `${X}` with no default is an error. */
function interpolate(value: string | number | boolean): string {
  return String(value).replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (whole, _name: string, def?: string) => {
    if (def === undefined) throw new Error(`${whole} has no default`);
    return def;
  });
}
const envOf = (s: Service): Record<string, string> =>
  Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));

/** `src:dst[:mode]` → {src, dst}, after interpolation. */
const mounts = (s: Service) =>
  (s.volumes ?? []).map((v) => {
    const [src, dst] = interpolate(v).split(':');
    return { src: src!, dst: dst! };
  });

const APP_IMAGE = 'ainode/app:latest';
const appServices = Object.entries(services).filter(([, s]) => s.image === APP_IMAGE);
const GPUS = ['gpu0', 'gpu1'];

describe('docker-compose.yml', () => {
  it('has every service of the deployment', () => {
    for (const name of [
      'postgresql',
      'temporal',
      'temporal-setup',
      'temporal-ui',
      'moto',
      'ollama-gpu0',
      'ollama-gpu1',
      'llm-worker-gpu0',
      'llm-worker-gpu1',
      'executor',
      'orchestrator',
      'api',
      'zipkin',
      'prometheus',
      'grafana',
    ]) {
      expect(services).toHaveProperty([name]);
    }
    expect(appServices.map(([n]) => n).sort()).toEqual(
      ['api', 'executor', 'llm-worker-gpu0', 'llm-worker-gpu1', 'orchestrator'].sort(),
    );
  });

  it('reserves one NVIDIA GPU per Ollama service, with its own volume and parallel slots', () => {
    const deviceIds = new Set<string>();
    const volumes = new Set<string>();
    for (const gpu of GPUS) {
      const s = svc(`ollama-${gpu}`);
      const devices = s.deploy?.resources?.reservations?.devices ?? [];
      expect(devices).toHaveLength(1);
      expect(devices[0]!.driver).toBe('nvidia');
      expect(devices[0]!.capabilities).toContain('gpu');
      for (const id of devices[0]!.device_ids ?? []) deviceIds.add(id);
      const modelVolume = mounts(s).find((m) => m.dst === '/root/.ollama');
      expect(modelVolume).toBeDefined();
      volumes.add(modelVolume!.src);
      expect(compose.volumes).toHaveProperty([modelVolume!.src]);
      expect(Number(envOf(s).OLLAMA_NUM_PARALLEL)).toBeGreaterThan(0);
    }
    expect(deviceIds.size).toBe(GPUS.length);
    expect(volumes.size).toBe(GPUS.length);
  });

  it('points each llm worker at its own Ollama, and lists every node in OLLAMA_NODES', () => {
    const nodeIds = new Set<string>();
    for (const gpu of GPUS) {
      const ollama = svc(`ollama-${gpu}`);
      const worker = svc(`llm-worker-${gpu}`);
      const env = loadConfig(envOf(worker));
      expect(new URL(env.OLLAMA_URL).hostname).toBe(`ollama-${gpu}`);
      expect(env.OLLAMA_NUM_PARALLEL).toBe(Number(envOf(ollama).OLLAMA_NUM_PARALLEL));
      expect(worker.command?.[0]).toBe('dist/workers/llm.js');
      expect(worker.depends_on).toHaveProperty([`model-${gpu}`]);
      expect(env.OLLAMA_NODES).toContainEqual({ id: env.NODE_ID, url: env.OLLAMA_URL });
      nodeIds.add(env.NODE_ID);
    }
    expect(nodeIds.size).toBe(GPUS.length);
    // The catalog in the API sees exactly the nodes that have workers.
    expect(
      loadConfig(envOf(svc('api')))
        .OLLAMA_NODES.map((n) => n.id)
        .sort(),
    ).toEqual([...nodeIds].sort());
  });

  it('mounts the Docker socket into the executor, and the gateway socket dir at the same host path', () => {
    const executor = svc('executor');
    const env = loadConfig(envOf(executor));
    const m = mounts(executor);
    expect(m).toContainEqual({ src: '/var/run/docker.sock', dst: env.DOCKER_SOCKET });
    expect(m).toContainEqual({ src: env.GATEWAY_SOCKET_DIR, dst: env.GATEWAY_SOCKET_DIR });
    // workers/executor.ts puts per-job in/out dirs under $TMPDIR/ainode-jobs; jobs bind-mount them from the host.
    expect(m).toContainEqual({ src: '/tmp/ainode-jobs', dst: '/tmp/ainode-jobs' });
    expect(executor.depends_on).toHaveProperty(['runtime-image']);
    expect(interpolate(svc('runtime-image').image!)).toBe(env.JOB_RUNTIME_IMAGE);
  });

  it('sets only variables that common/config.ts defines, with values it accepts', () => {
    const known = new Set(Object.keys(ConfigSchema.shape));
    expect(appServices.length).toBeGreaterThan(0);
    for (const [name, s] of appServices) {
      const env = envOf(s);
      const unknown = Object.keys(env).filter((k) => !known.has(k));
      expect({ service: name, unknown }).toEqual({ service: name, unknown: [] });
      expect(() => loadConfig(env)).not.toThrow();
      expect(loadConfig(env).TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(loadConfig(env).AWS_ENDPOINT_URL).toBe('http://moto:4566');
    }
  });

  it('runs each app role from a compiled entry point of the build', () => {
    const buildDirs = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include;
    for (const [name, s] of appServices) {
      // node's own flags (the image's ENTRYPOINT is node) come before the script.
      const args = s.command ?? [];
      const entry = args.find((a) => !a.startsWith('--')) ?? '';
      expect({ name, flagsFirst: args.slice(0, args.indexOf(entry)).every((a) => a.startsWith('--')) }).toEqual({
        name,
        flagsFirst: true,
      });
      const m = /^dist\/(.+)\.js$/.exec(entry);
      expect({ name, entry, ok: Boolean(m) }).toEqual({ name, entry, ok: true });
      const source = `${m![1]}.ts`;
      expect(buildDirs).toContain(source.split('/')[0]);
      expect({ name, source, exists: existsSync(path.join(ROOT, source)) }).toEqual({ name, source, exists: true });
    }
    expect(read('Dockerfile')).toMatch(/ENTRYPOINT \["node"/);
  });

  it('starts the orchestrator with the heap npm start gives it (its sticky cache is sized to that heap)', () => {
    expect(svc('orchestrator').command).toEqual([
      `--max-old-space-size=${DEFAULT_ORCHESTRATOR_HEAP_MB}`,
      'dist/workers/orchestrator.js',
    ]);
  });

  it('exposes the API only: Temporal, the Web UI and the emulator are on the internal network, unpublished', () => {
    expect(svc('api').ports).toContain('8080:8080');
    expect(loadConfig(envOf(svc('api'))).API_HOST).toBe('0.0.0.0');
    // Whoever reaches these reads every tenant's data (histories, packages, outputs) with no authentication.
    for (const name of [
      'temporal',
      'temporal-ui',
      'moto',
      'postgresql',
      'pgvector',
      'temporal-setup',
      'zipkin',
      'prometheus',
      'grafana',
    ]) {
      expect({ name, ports: svc(name).ports }).toEqual({ name, ports: undefined });
      expect({ name, networks: svc(name).networks }).toEqual({ name, networks: ['backend'] });
    }
    expect(compose.networks?.backend?.internal).toBe(true);
    // Every service that publishes a port is an app service, and only the API does.
    const published = Object.entries(services).filter(([, s]) => (s.ports ?? []).length > 0);
    expect(published.map(([name]) => name)).toEqual(['api']);
    // The app services reach Temporal and the emulator over `backend`.
    for (const name of ['api', 'orchestrator', 'executor', 'llm-worker-gpu0']) {
      expect({ name, backend: svc(name).networks?.includes('backend') }).toEqual({ name, backend: true });
    }
  });

  it('publishes the Web UI only on the loopback, and only with the operators’ override', () => {
    const ops = parse(read('docker-compose.ops.yml')) as { services: Record<string, Service> };
    // The trace viewer and the dashboards follow the same rule.
    expect(Object.keys(ops.services)).toEqual(['temporal-ui', 'zipkin', 'grafana']);
    for (const s of Object.values(ops.services)) {
      const ports = s.ports ?? [];
      expect(ports.length).toBeGreaterThan(0);
      for (const p of ports) expect(p).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it('only depends on services that exist', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const dep of Object.keys(s.depends_on ?? {}))
        expect({ name, dep, exists: dep in services }).toEqual({ name, dep, exists: true });
    }
  });
});

describe('temporal-config/', () => {
  it('gives the compose server the same dynamic config as the dev server', () => {
    const temporal = svc('temporal');
    const mount = mounts(temporal).find((m) => m.src.endsWith('dynamic-config.yaml'));
    expect(mount).toBeDefined();
    expect(envOf(temporal).DYNAMIC_CONFIG_FILE_PATH).toBe(mount!.dst.replace('/etc/temporal/', ''));

    const dynamic = parse(read('temporal-config/dynamic-config.yaml')) as Record<string, { value: unknown }[]>;
    const devFlags: Record<string, string> = { 'frontend.enableUpdateWorkflowExecution': 'true' };
    for (const line of read('temporal-config/dev-server.flags').split('\n')) {
      const m = /^--dynamic-config-value\s+([^=\s]+)=(\S+)/.exec(line.trim());
      // The CLI takes JSON values (a duration is a JSON string: "10ms").
      if (m) devFlags[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    }
    expect(Object.keys(dynamic).sort()).toEqual(Object.keys(devFlags).sort());
    for (const [key, value] of Object.entries(devFlags)) expect(String(dynamic[key]![0]!.value)).toBe(value);
  });

  it('registers the search attributes from search-attributes.json in the compose stack', () => {
    const setup = svc('temporal-setup');
    const file = envOf(setup).SEARCH_ATTRIBUTES_FILE;
    expect(mounts(setup)).toContainEqual({ src: './temporal-config/search-attributes.json', dst: file });
    expect(setup.entrypoint?.join(' ')).toContain('setup-namespace.sh');
    expect(read('temporal-config/setup-namespace.sh')).toContain('temporal operator search-attribute create');
    const attrs = JSON.parse(read('temporal-config/search-attributes.json')) as Record<string, string>;
    expect(Object.keys(attrs)).toEqual(expect.arrayContaining(['AinodeKind', 'ModelId', 'FunctionId', 'ChatId']));
  });
});
