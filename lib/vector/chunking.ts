/**
 * Splits a file's text into chunks with LangChain's text splitters: MarkdownTextSplitter for markdown (it cuts at
 * headings, then paragraphs, then sentences), RecursiveCharacterTextSplitter for plain text (paragraphs, lines,
 * words). Sizes are in characters.
 */
import { MarkdownTextSplitter, RecursiveCharacterTextSplitter } from '@langchain/textsplitters';
import type { Chunking } from '../../contracts/vector';

export async function splitText(text: string, format: 'text' | 'markdown', chunking: Chunking): Promise<string[]> {
  const opts = { chunkSize: chunking.chunkSize, chunkOverlap: Math.min(chunking.chunkOverlap, chunking.chunkSize - 1) };
  const splitter = format === 'markdown' ? new MarkdownTextSplitter(opts) : new RecursiveCharacterTextSplitter(opts);
  const chunks = await splitter.splitText(text.replace(/\r\n/g, '\n'));
  return chunks.map((c) => c.trim()).filter((c) => c.length > 0);
}

/** A file's format from its name or content type: markdown for .md/.markdown or text/markdown, else text. */
export function formatOf(filename: string, contentType?: string): 'text' | 'markdown' {
  if (/\.(md|markdown)$/i.test(filename)) return 'markdown';
  if (contentType && /markdown/i.test(contentType)) return 'markdown';
  return 'text';
}
