/**
 * Daily token budgets per API key, persisted as one counter item per key and UTC day in the usage table
 * (`pk = budget#<keyId>`, `sk = day#YYYY-MM-DD`), so a restart does not hand out a fresh budget.
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Storage } from '../storage/clients';

const key = (keyId: string, day: string) => ({ pk: `budget#${keyId}`, sk: `day#${day}` });

/** The UTC day of `at`, `YYYY-MM-DD`. */
export const utcDay = (at = Date.now()) => new Date(at).toISOString().slice(0, 10);

export async function readDailyTokens(storage: Storage, keyId: string, day: string): Promise<number> {
  const res = await storage.doc.send(new GetCommand({ TableName: storage.table('usage'), Key: key(keyId, day) }));
  return Number(res.Item?.tokens ?? 0);
}

/** Adds `tokens` atomically and returns the day's new total. */
export async function addDailyTokens(storage: Storage, keyId: string, day: string, tokens: number): Promise<number> {
  const res = await storage.doc.send(
    new UpdateCommand({
      TableName: storage.table('usage'),
      Key: key(keyId, day),
      UpdateExpression: 'ADD tokens :n',
      ExpressionAttributeValues: { ':n': tokens },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  return Number(res.Attributes?.tokens ?? tokens);
}
