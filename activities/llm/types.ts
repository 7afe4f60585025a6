/** The llm activity contract: what workflows proxy on `ainode-llm.<model>` queues. */
import type { LlmChatInput, LlmEmbedInput, LlmEmbedResult, LlmGenerateInput, LlmResult } from '../../common/types';

export interface LlmActivities {
  llmChat(input: LlmChatInput): Promise<LlmResult>;
  llmGenerate(input: LlmGenerateInput): Promise<LlmResult>;
  llmEmbed(input: LlmEmbedInput): Promise<LlmEmbedResult>;
}
