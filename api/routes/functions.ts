/**
 * Code packages: `POST /functions` takes a zip as the raw body (size-limited), checks it like the executor
 * will (no `..`, absolute paths, symlinks, bombs) and that the entry file is there, then keeps it in S3 and
 * its metadata in DynamoDB under a generated id. `PUT /functions/:id` does the same under an id the user
 * chooses (`func-123`), keeping every upload as a new version; runs use the latest unless they name one.
 * `GET /functions/:id` returns the metadata, `GET /functions/:id/versions` every version.
 */
import { createHash, randomUUID } from 'node:crypto';
import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { HttpError } from '../../common/errors';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { tenantOf } from '../middleware/auth';
import { registerRoute } from '../openapi';
import { ArchiveError, checkEntryName, inspectZip } from '../../lib/zip/extract';
import {
  FunctionVersionConflict,
  getFunction,
  listFunctionVersions,
  putFunction,
  putFunctionVersion,
} from '../../lib/jobs/store';
import { FUNCTION_ID_PATTERN, type FunctionRecord } from '../../contracts/jobs';

const UploadQuerySchema = z
  .object({
    entry: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[\w./-]+\.py$/, 'a relative path to a .py file')
      .default('main.py')
      .describe('Entry script inside the zip (default main.py)'),
    name: z.string().min(1).max(200).optional().describe('A display name'),
  })
  .strict();
const FunctionIdSchema = z
  .string()
  .regex(FUNCTION_ID_PATTERN, 'a function id: letters, digits, _ . - (at most 128, starting with a letter or digit)');
const IdParamsSchema = z.object({ id: FunctionIdSchema });
const GetQuerySchema = z
  .object({ version: z.coerce.number().int().min(1).optional().describe('A stored version (default: the latest)') })
  .strict();

const FunctionSchema = z.object({
  functionId: z.string(),
  version: z.number().int().describe('1 for the first upload under this id, then 2, 3, ...'),
  name: z.string().optional(),
  entry: z.string(),
  sizeBytes: z.number(),
  sha256: z.string(),
  files: z.number(),
  createdAt: z.string(),
});

registerRoute({
  method: 'post',
  path: '/functions',
  summary: 'Upload a code package (zip) for jobs',
  rawBody: { contentType: 'application/zip', description: 'The package; must contain the entry file' },
  query: UploadQuerySchema,
  responses: {
    201: { description: 'Stored', body: FunctionSchema },
    400: 'Not a zip, an unsafe entry (.., absolute path, symlink), too many entries or bytes, or no entry file',
    413: 'Larger than API_UPLOAD_LIMIT_BYTES',
  },
});
registerRoute({
  method: 'put',
  path: '/functions/:id',
  summary: 'Upload a code package under an id you choose; every upload becomes a new version',
  params: IdParamsSchema,
  rawBody: { contentType: 'application/zip', description: 'The package; must contain the entry file' },
  query: UploadQuerySchema,
  responses: {
    201: { description: 'Stored as a new version', body: FunctionSchema },
    200: { description: 'The same package as the latest version: nothing new stored', body: FunctionSchema },
    400: 'Not a zip, an unsafe entry, no entry file, or an invalid id',
    409: 'Another upload of this id landed at the same moment; retry',
    413: 'Larger than API_UPLOAD_LIMIT_BYTES',
  },
});
registerRoute({
  method: 'get',
  path: '/functions/:id',
  summary: 'A code package’s metadata (latest version, or ?version=N)',
  params: IdParamsSchema,
  query: GetQuerySchema,
  responses: { 200: { description: 'The function', body: FunctionSchema }, 404: 'No such function for this tenant' },
});
registerRoute({
  method: 'get',
  path: '/functions/:id/versions',
  summary: 'Every stored version of a function, oldest first',
  params: IdParamsSchema,
  responses: {
    200: { description: 'The versions', body: z.object({ functionId: z.string(), versions: z.array(FunctionSchema) }) },
    404: 'No such function for this tenant',
  },
});

function publicView(fn: FunctionRecord): z.infer<typeof FunctionSchema> {
  const { tenantId: _t, packageKey: _k, ...rest } = fn;
  return { ...rest, version: fn.version ?? 1 };
}

/** Concurrent uploads of one id: re-read the head and try the next version this many times. */
const VERSION_ATTEMPTS = 3;

export function functionsRouter(deps: ApiDeps): Router {
  const { config, storage } = deps;
  const router = Router();
  // Any content type: the bytes are checked for being a zip, which is a clearer error than a 415.
  const raw = express.raw({ type: () => true, limit: config.API_UPLOAD_LIMIT_BYTES });

  /** The uploaded zip, checked like the executor will check it; its summary and entry. */
  async function checkedPackage(
    req: Request,
    entryName: string,
  ): Promise<{ body: Buffer; entry: string; files: number }> {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) throw new HttpError(400, 'invalid_archive', 'body: empty; send the zip as the request body');
    try {
      const entry = checkEntryName(entryName);
      const summary = await inspectZip(body);
      if (!summary.files.includes(entry)) {
        throw new ArchiveError(`the package has no entry file "${entry}"`, entry);
      }
      return { body, entry, files: summary.files.length };
    } catch (err) {
      if (err instanceof ArchiveError) {
        throw new HttpError(400, 'invalid_archive', err.message, err.entry ? { entry: err.entry } : undefined);
      }
      throw err;
    }
  }

  router.post('/functions', raw, async (req, res) => {
    const tenantId = tenantOf(req);
    const query = parse(UploadQuerySchema, req.query, 'query');
    const pkg = await checkedPackage(req, query.entry);
    const functionId = `fn-${randomUUID()}`;
    const packageKey = `functions/${tenantId}/${functionId}.zip`;
    await storage.putObject(packageKey, pkg.body, 'application/zip');
    const fn: FunctionRecord = {
      functionId,
      tenantId,
      version: 1,
      name: query.name,
      entry: pkg.entry,
      packageKey,
      sizeBytes: pkg.body.length,
      sha256: createHash('sha256').update(pkg.body).digest('hex'),
      files: pkg.files,
      createdAt: new Date().toISOString(),
    };
    await putFunction(storage, fn);
    res.status(201).location(`/functions/${functionId}`).json(publicView(fn));
  });

  router.put('/functions/:id', raw, async (req, res) => {
    const tenantId = tenantOf(req);
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const query = parse(UploadQuerySchema, req.query, 'query');
    const pkg = await checkedPackage(req, query.entry);
    const sha256 = createHash('sha256').update(pkg.body).digest('hex');
    for (let attempt = 1; ; attempt++) {
      const head = await getFunction(storage, tenantId, id);
      // A retried upload of the same package is not a new version (PUT is idempotent).
      if (head && head.sha256 === sha256 && head.entry === pkg.entry && head.name === query.name) {
        return void res.status(200).location(`/functions/${id}`).json(publicView(head));
      }
      const version = (head?.version ?? 0) + 1;
      const packageKey = `functions/${tenantId}/${id}/v${version}.zip`;
      await storage.putObject(packageKey, pkg.body, 'application/zip');
      const fn = {
        functionId: id,
        tenantId,
        version,
        name: query.name,
        entry: pkg.entry,
        packageKey,
        sizeBytes: pkg.body.length,
        sha256,
        files: pkg.files,
        createdAt: new Date().toISOString(),
      };
      try {
        await putFunctionVersion(storage, fn, head ? (head.version ?? 1) : undefined);
        return void res.status(201).location(`/functions/${id}`).json(publicView(fn));
      } catch (err) {
        if (!(err instanceof FunctionVersionConflict)) throw err;
        if (attempt >= VERSION_ATTEMPTS) {
          throw new HttpError(409, 'conflict', `Function ${id} is being uploaded concurrently; retry`);
        }
      }
    }
  });

  router.get('/functions/:id', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const { version } = parse(GetQuerySchema, req.query, 'query');
    const fn = await getFunction(storage, tenantOf(req), id, version);
    // Scoped by tenant in the key: another tenant's function is simply not found.
    if (!fn) throw new HttpError(404, 'not_found', `Function ${id}${version ? ` version ${version}` : ''} not found`);
    res.json(publicView(fn));
  });

  router.get('/functions/:id/versions', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const versions = await listFunctionVersions(storage, tenantOf(req), id);
    if (versions.length === 0) throw new HttpError(404, 'not_found', `Function ${id} not found`);
    res.json({ functionId: id, versions: versions.map(publicView) });
  });

  return router;
}
