/**
 * Request bodies of the OpenAI-compatible routes, as OpenAI documents them. Unknown fields are accepted and
 * ignored (clients send many: `user`, `logprobs`, `metadata`, ...); fields we cannot honour are rejected with
 * a 400 naming them, rather than silently answering something else.
 */
import { z } from 'zod';

const TextPart = z.object({ type: z.literal('text'), text: z.string() });

export const V1MessageSchema = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.array(TextPart).max(100), z.null()]),
    name: z.string().max(200).optional(),
  })
  .loose();

const ResponseFormatSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z
      .object({
        name: z.string().max(64),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
        description: z.string().optional(),
      })
      .loose(),
  }),
]);

export const ChatCompletionBodySchema = z
  .object({
    model: z.string().trim().min(1).max(200),
    messages: z.array(V1MessageSchema).min(1).max(500),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    stop: z
      .union([z.string(), z.array(z.string()).max(4)])
      .nullable()
      .optional(),
    seed: z.number().int().nullable().optional(),
    n: z.literal(1, { message: 'only n = 1 is supported' }).nullable().optional(),
    stream: z.boolean().nullable().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).loose().nullable().optional(),
    response_format: ResponseFormatSchema.nullable().optional(),
    tools: z.array(z.unknown()).max(0, 'tools are not supported').nullable().optional(),
    /** Extension: answer from these vector stores' top chunks and cite them (api/v1/vector-stores.ts). */
    vector_store_ids: z.array(z.string().min(1).max(100)).max(10).nullable().optional(),
  })
  .loose();
export type ChatCompletionBody = z.infer<typeof ChatCompletionBodySchema>;

export const EmbeddingsBodySchema = z
  .object({
    model: z.string().trim().min(1).max(200),
    input: z.union([z.string(), z.array(z.string()).min(1)], {
      message: 'a string or an array of strings (token arrays are not supported)',
    }),
    encoding_format: z.enum(['float', 'base64']).optional(),
    dimensions: z.undefined({ message: 'dimensions is not supported: the model decides the size' }).optional(),
  })
  .loose();
export type EmbeddingsBody = z.infer<typeof EmbeddingsBodySchema>;

/** The template routes' bodies (`POST /chat`, `/chat/stream`): a message or messages, optionally a model. */
export const TemplateChatBodySchema = z
  .object({
    message: z.string().min(1).optional(),
    messages: z.array(V1MessageSchema).min(1).max(500).optional(),
    system: z.string().optional(),
    model: z.string().trim().min(1).max(200).optional(),
    max_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(2).optional(),
  })
  .strict()
  .refine((b) => (b.message === undefined) !== (b.messages === undefined), {
    path: ['message'],
    message: 'give exactly one of message or messages',
  });
export type TemplateChatBody = z.infer<typeof TemplateChatBodySchema>;

export const TemplateEmbedBodySchema = z
  .object({ texts: z.array(z.string()).min(1), model: z.string().trim().min(1).max(200).optional() })
  .strict();
