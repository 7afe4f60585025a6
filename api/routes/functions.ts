/**
 * Code packages: `POST /functions` takes a zip as the raw body (size-limited), checks it like the executor
 * will (no `..`, absolute paths, symlinks, bombs) and that the entry file is there, then keeps it in S3 and
 * its metadata in DynamoDB. `GET /functions/:id` returns the metadata.
 */
import { createHash, randomUUID } from 'node:crypto';
import express, { Router } from 'express';
import { z } from 'zod';
import { HttpError } from '../../common/errors';
import type { ApiDeps } from '../deps';
import { parse } from '../validate';
import { tenantOf } from '../middleware/auth';
import { registerRoute } from '../openapi';
import { ArchiveError, checkEntryName, inspectZip } from '../../activities/executor/extract';
import { getFunction, putFunction } from '../../activities/jobs/store';
import type { FunctionRecord } from '../../activities/jobs/types';

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
const IdParamsSchema = z.object({ id: z.string().regex(/^fn-[\w-]{1,100}$/, 'not a function id') });

const FunctionSchema = z.object({
  functionId: z.string(),
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
  method: 'get',
  path: '/functions/:id',
  summary: 'A code package’s metadata',
  params: IdParamsSchema,
  responses: { 200: { description: 'The function', body: FunctionSchema }, 404: 'No such function for this tenant' },
});

function publicView(fn: FunctionRecord): z.infer<typeof FunctionSchema> {
  const { tenantId: _t, packageKey: _k, ...rest } = fn;
  return rest;
}

export function functionsRouter(deps: ApiDeps): Router {
  const { config, storage } = deps;
  const router = Router();
  // Any content type: the bytes are checked for being a zip, which is a clearer error than a 415.
  const raw = express.raw({ type: () => true, limit: config.API_UPLOAD_LIMIT_BYTES });

  router.post('/functions', raw, async (req, res) => {
    const tenantId = tenantOf(req);
    const query = parse(UploadQuerySchema, req.query, 'query');
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) throw new HttpError(400, 'invalid_archive', 'body: empty; send the zip as the request body');
    let summary;
    try {
      const entry = checkEntryName(query.entry);
      summary = await inspectZip(body);
      if (!summary.files.includes(entry)) {
        throw new ArchiveError(`the package has no entry file "${entry}"`, entry);
      }
    } catch (err) {
      if (err instanceof ArchiveError) {
        throw new HttpError(400, 'invalid_archive', err.message, err.entry ? { entry: err.entry } : undefined);
      }
      throw err;
    }
    const functionId = `fn-${randomUUID()}`;
    const packageKey = `functions/${tenantId}/${functionId}.zip`;
    await storage.putObject(packageKey, body, 'application/zip');
    const fn: FunctionRecord = {
      functionId,
      tenantId,
      name: query.name,
      entry: checkEntryName(query.entry),
      packageKey,
      sizeBytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      files: summary.files.length,
      createdAt: new Date().toISOString(),
    };
    await putFunction(storage, fn);
    res.status(201).location(`/functions/${functionId}`).json(publicView(fn));
  });

  router.get('/functions/:id', async (req, res) => {
    const { id } = parse(IdParamsSchema, req.params, 'params');
    const fn = await getFunction(storage, tenantOf(req), id);
    // Scoped by tenant in the key: another tenant's function is simply not found.
    if (!fn) throw new HttpError(404, 'not_found', `Function ${id} not found`);
    res.json(publicView(fn));
  });

  return router;
}
