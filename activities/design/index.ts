/**
 * Design storage activities (orchestrator queue): Terraform files go to S3, only keys and sizes come back; every
 * revision is committed to a git repository per design (the git binary; the working copy under the state dir,
 * `<stateDir>/designs/<id>`, and a `git bundle` of it in S3, from which another host restores it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Storage } from '../../lib/storage/clients';
import {
  DESIGN_DIFF_MAX_CHARS,
  designFileKey,
  designRepoKey,
  type DesignFileRef,
  type DesignRevision,
} from '../../contracts/design';

export interface DesignDeps {
  storage: Storage;
  /** Where the designs' git working copies live; default `$AINODE_STATE_DIR/designs` (else ./.ainode/designs). */
  repoDir?: string;
}

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      {
        cwd,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 'ainode',
          GIT_AUTHOR_EMAIL: 'designs@ainode.local',
          GIT_COMMITTER_NAME: 'ainode',
          GIT_COMMITTER_EMAIL: 'designs@ainode.local',
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_TERMINAL_PROMPT: '0',
        },
      },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`git ${args[0]} failed: ${String(stderr || err.message).slice(0, 400)}`))
          : resolve(stdout),
    );
  });
}

/** Lines added and removed in `git diff --numstat` output. */
function numstat(out: string): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const line of out.split('\n')) {
    const [a, r] = line.split('\t');
    if (a && r && /^\d+$/.test(a) && /^\d+$/.test(r)) {
      added += Number(a);
      removed += Number(r);
    }
  }
  return { added, removed };
}

export function createDesignActivities({ storage, repoDir }: DesignDeps) {
  const root = repoDir ?? path.join(process.env.AINODE_STATE_DIR ?? path.join(process.cwd(), '.ainode'), 'designs');

  /** The design's working copy: here already, restored from its S3 bundle, or a new repository. */
  async function repoOf(designId: string): Promise<string> {
    const dir = path.join(root, designId);
    if (existsSync(path.join(dir, '.git'))) return dir;
    await mkdir(root, { recursive: true });
    const bundle = await storage.getObjectBytes(designRepoKey(designId));
    if (bundle) {
      const tmp = await mkdtemp(path.join(os.tmpdir(), 'ainode-bundle-'));
      try {
        await writeFile(path.join(tmp, 'repo.bundle'), bundle);
        await rm(dir, { recursive: true, force: true });
        await git(root, ['clone', '-q', '-b', 'main', path.join(tmp, 'repo.bundle'), dir]);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      return dir;
    }
    await mkdir(dir, { recursive: true });
    await git(dir, ['init', '-q', '-b', 'main']);
    return dir;
  }

  async function record(dir: string, revision: number, commit: string): Promise<DesignRevision> {
    const parents = (await git(dir, ['rev-list', '--parents', '-n', '1', commit])).trim().split(' ').slice(1);
    const range = parents.length ? [`${parents[0]}`, commit] : [EMPTY_TREE, commit];
    const message = (await git(dir, ['log', '-1', '--format=%s', commit])).trim();
    const files = (await git(dir, ['ls-tree', '--name-only', commit])).split('\n').filter(Boolean);
    const stat = numstat(await git(dir, ['diff', '--numstat', ...range]));
    const diff = await git(dir, ['diff', '--no-color', ...range]);
    return {
      revision,
      commit,
      message,
      files,
      ...stat,
      diff: diff.length > DESIGN_DIFF_MAX_CHARS ? `${diff.slice(0, DESIGN_DIFF_MAX_CHARS)}\n… (diff cut)` : diff,
    };
  }

  return {
    /** Writes every file under `designs/<id>/<name>` (the latest revision wins). */
    async designStoreFiles(input: { designId: string; files: Record<string, string> }): Promise<DesignFileRef[]> {
      const refs: DesignFileRef[] = [];
      for (const [name, content] of Object.entries(input.files)) {
        const key = designFileKey(input.designId, name);
        await storage.putObject(key, Buffer.from(content), 'text/plain; charset=utf-8');
        refs.push({ name, key, size: Buffer.byteLength(content) });
      }
      return refs;
    },
    /**
     * Commits a revision's files (exactly these files: others are removed) as `revision N: <message>`, bundles
     * the repository to S3, and returns the revision with its diff against the previous one. A retry after the
     * commit returns the same commit instead of committing twice.
     */
    async designCommitRevision(input: {
      designId: string;
      revision: number;
      message: string;
      files: Record<string, string>;
    }): Promise<DesignRevision> {
      const dir = await repoOf(input.designId);
      const subject = `revision ${input.revision}: ${input.message.replace(/\s+/g, ' ').trim()}`.slice(0, 200);
      const log = await git(dir, ['log', '--format=%H %s', '--all']).catch(() => '');
      const done = log.split('\n').find((l) => l.slice(41).startsWith(`revision ${input.revision}:`));
      let commit = done?.slice(0, 40);
      if (!commit) {
        for (const name of await readdir(dir)) {
          if (name !== '.git' && !(name in input.files))
            await rm(path.join(dir, name), { recursive: true, force: true });
        }
        for (const [name, content] of Object.entries(input.files)) {
          await writeFile(path.join(dir, path.basename(name)), content);
        }
        await git(dir, ['add', '-A']);
        await git(dir, ['commit', '-q', '--allow-empty', '-m', subject]);
        commit = (await git(dir, ['rev-parse', 'HEAD'])).trim();
      }
      const tmp = await mkdtemp(path.join(os.tmpdir(), 'ainode-bundle-'));
      try {
        const file = path.join(tmp, 'repo.bundle');
        await git(dir, ['bundle', 'create', '-q', file, 'HEAD', 'main']);
        await storage.putObject(designRepoKey(input.designId), await readFile(file), 'application/x-git-bundle');
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      return record(dir, input.revision, commit);
    },
  };
}

/** Git's empty tree: the first revision's diff is against it. */
const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

export type DesignActivities = ReturnType<typeof createDesignActivities>;
