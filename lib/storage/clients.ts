/**
 * AWS SDK v3 clients for S3 and DynamoDB: one code path for AWS and the local emulator (moto), which is
 * selected by AWS_ENDPOINT_URL. `ensureStorage` creates the bucket and tables idempotently at start.
 */
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  NoSuchKey,
} from '@aws-sdk/client-s3';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Readable } from 'node:stream';
import type { Config } from '../../common/config';

/**
 * Every table has the same generic key: `pk` (partition) and `sk` (sort), both strings, plus one global
 * secondary index `gsi1` on (`gsi1pk`, `gsi1sk`) for the second access path (e.g. usage by function).
 */
export const TABLES = ['functions', 'jobs', 'usage', 'chats', 'designs'] as const;
export type TableName = (typeof TABLES)[number];

export interface Storage {
  s3: S3Client;
  ddb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  bucket: string;
  table(name: TableName): string;
  putObject(key: string, body: string | Uint8Array | Readable, contentType?: string): Promise<void>;
  /** The object's bytes, or undefined when there is no such key. */
  getObjectBytes(key: string): Promise<Uint8Array | undefined>;
  getObjectStream(key: string): Promise<{ body: Readable; contentType?: string; length?: number } | undefined>;
  close(): void;
}

export function createStorage(
  config: Pick<
    Config,
    | 'AWS_REGION'
    | 'AWS_ENDPOINT_URL'
    | 'AWS_ACCESS_KEY_ID'
    | 'AWS_SECRET_ACCESS_KEY'
    | 'S3_BUCKET'
    | 'DYNAMO_TABLE_PREFIX'
  > &
    Partial<Pick<Config, 'STORAGE_TIMEOUT_MS'>>,
): Storage {
  const common = {
    // Bounded: a storage that accepts the connection and never answers fails the request (then the SDK's retries,
    // then the caller's: the activity's retry policy, or the API's 503 storage_unavailable) instead of holding it.
    requestHandler: { connectionTimeout: 3_000, socketTimeout: config.STORAGE_TIMEOUT_MS ?? 10_000 },
    region: config.AWS_REGION,
    endpoint: config.AWS_ENDPOINT_URL,
    credentials: { accessKeyId: config.AWS_ACCESS_KEY_ID, secretAccessKey: config.AWS_SECRET_ACCESS_KEY },
  };
  const s3 = new S3Client({ ...common, forcePathStyle: Boolean(config.AWS_ENDPOINT_URL) });
  const ddb = new DynamoDBClient(common);
  const doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
  const bucket = config.S3_BUCKET;
  return {
    s3,
    ddb,
    doc,
    bucket,
    table: (name) => `${config.DYNAMO_TABLE_PREFIX}${name}`,
    async putObject(key, body, contentType) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    },
    async getObjectBytes(key) {
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return await res.Body?.transformToByteArray();
      } catch (err) {
        if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    async getObjectStream(key) {
      try {
        const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return { body: res.Body as Readable, contentType: res.ContentType, length: res.ContentLength };
      } catch (err) {
        if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
        throw err;
      }
    },
    close() {
      s3.destroy();
      ddb.destroy();
    },
  };
}

/** Creates the bucket and every table if missing. Safe to call from every process at start. */
export async function ensureStorage(storage: Storage): Promise<void> {
  try {
    await storage.s3.send(new HeadBucketCommand({ Bucket: storage.bucket }));
  } catch {
    try {
      await storage.s3.send(new CreateBucketCommand({ Bucket: storage.bucket }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
    }
  }
  await Promise.all(
    TABLES.map(async (t) => {
      const TableName = storage.table(t);
      try {
        await storage.ddb.send(new DescribeTableCommand({ TableName }));
        return;
      } catch (err) {
        if (!(err instanceof ResourceNotFoundException)) throw err;
      }
      try {
        await storage.ddb.send(
          new CreateTableCommand({
            TableName,
            BillingMode: 'PAY_PER_REQUEST',
            AttributeDefinitions: [
              { AttributeName: 'pk', AttributeType: 'S' },
              { AttributeName: 'sk', AttributeType: 'S' },
              { AttributeName: 'gsi1pk', AttributeType: 'S' },
              { AttributeName: 'gsi1sk', AttributeType: 'S' },
            ],
            KeySchema: [
              { AttributeName: 'pk', KeyType: 'HASH' },
              { AttributeName: 'sk', KeyType: 'RANGE' },
            ],
            GlobalSecondaryIndexes: [
              {
                IndexName: 'gsi1',
                KeySchema: [
                  { AttributeName: 'gsi1pk', KeyType: 'HASH' },
                  { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
                ],
                Projection: { ProjectionType: 'ALL' },
              },
            ],
          }),
        );
      } catch (err) {
        if (!(err instanceof ResourceInUseException)) throw err;
      }
    }),
  );
}
