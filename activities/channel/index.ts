/**
 * The channel adapter: a reply goes to CHANNEL_CALLBACK_URL as the same message payload the webhook
 * receives, signed with the webhook secret; without a callback it stays in the local outbox. Either way
 * it is recorded in DynamoDB, keyed by turn, so a Temporal retry overwrites instead of duplicating.
 * A post the channel accepted is remembered in the activity's heartbeat details: when recording it fails
 * (storage down), the retry only records it and does not post the reply again.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { ErrorType } from '../../common/errors';
import type { Storage } from '../../lib/storage/clients';
import { writeOutboxMessage } from '../../lib/chat/state';
import { SIGNATURE_HEADER, signBody } from '../../lib/channel/signature';
import { metrics } from '../../lib/telemetry/metrics';
import type { ChannelActivities, DeliverReplyInput, DeliverReplyResult } from '../../contracts/channel';

export type { ChannelActivities } from '../../contracts/channel';

/** What an attempt leaves for the next one: the reply was posted (accepted by the channel) at `postedAt`. */
interface DeliveryProgress {
  postedAt: number;
}

/** The running activity's context, or undefined when called directly (unit tests). */
function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export interface ChannelActivityDeps {
  storage: Storage;
  /** Where replies are posted; undefined = local outbox only. */
  callbackUrl?: string;
  secret: string;
  /** Per attempt; Temporal retries a timed-out post. */
  callbackTimeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** Header carrying the reply id, so the channel can drop a retried post it already accepted. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

export function createChannelActivities(deps: ChannelActivityDeps): ChannelActivities {
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? Date.now;

  async function post(input: DeliverReplyInput, createdAt: number): Promise<void> {
    const body = JSON.stringify({
      type: 'message',
      entity: {
        id: input.replyId,
        chatId: input.chatId,
        plainText: input.text,
        personType: 'bot',
        createdAt,
        inReplyTo: input.inReplyTo,
      },
    });
    let res: Response;
    try {
      res = await doFetch(deps.callbackUrl!, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: signBody(deps.secret, body),
          [IDEMPOTENCY_HEADER]: input.replyId,
        },
        body,
        signal: AbortSignal.timeout(deps.callbackTimeoutMs ?? 10_000),
      });
    } catch (err) {
      // Network errors and timeouts are transient: a plain error lets Temporal retry.
      throw new Error(`channel callback unreachable: ${(err as Error).message}`);
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.ok) return;
    const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    const message = `channel callback answered ${res.status}`;
    if (retryable) throw new Error(message);
    throw ApplicationFailure.create({ type: ErrorType.InvalidRequest, nonRetryable: true, message });
  }

  return {
    async deliverChatReply(input: DeliverReplyInput): Promise<DeliverReplyResult> {
      const ctx = activityContext();
      const posted = (ctx?.info.heartbeatDetails as DeliveryProgress | undefined)?.postedAt;
      const createdAt = posted ?? now();
      const via = deps.callbackUrl ? 'callback' : 'outbox';
      if (deps.callbackUrl && posted === undefined) {
        await post(input, createdAt);
        // Recorded before the outbox write, which may fail: a retry then does not post the reply again.
        ctx?.heartbeat({ postedAt: createdAt } satisfies DeliveryProgress);
      }
      await writeOutboxMessage(deps.storage, input.channel, input.chatId, {
        id: input.replyId,
        turn: input.turn,
        text: input.text,
        agent: input.agent,
        inReplyTo: input.inReplyTo,
        via,
        createdAt,
        ...(input.meta ? { meta: input.meta } : {}),
      });
      metrics.chatReplies.inc({ agent: String(input.agent ?? 'none'), via });
      return { via, deliveredAt: createdAt };
    },
  };
}
