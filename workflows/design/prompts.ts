/**
 * The messages each design node sends (v2's, then v1's). Shared by the current nodes and the pre-patch ones (a prompt is an
 * activity input, so changing it never affects replay). The first line of every system message names the
 * node (`ainode design: <node>`): the Web UI history and the scripted test Ollama both key on it.
 */
import type { ChatMessage } from '../../contracts/llm';
import { MAX_QUESTIONS } from './schemas';
import type { PlannedResource } from '../../contracts/design';

export const system = (node: string, text: string): ChatMessage => ({
  role: 'system',
  content: `ainode design: ${node}\n${text}`,
});

export const transcript = (messages: ChatMessage[]) =>
  messages.map((m) => `${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}`).join('\n');

/** Transcript line of the questions asked in one round. */
export function questionsText(questions: { id: string; text: string }[]): string {
  return questions.map((q, i) => `${i + 1}. [${q.id}] ${q.text}`).join('\n');
}

interface PromptState {
  request: string;
  messages: ChatMessage[];
  requirements: Record<string, string>;
  resources: PlannedResource[];
  files: Record<string, string>;
  validation: { output: string } | null;
}

export function routeMessages(s: Pick<PromptState, 'request'>): ChatMessage[] {
  return [
    system(
      'route',
      'Classify the user message. category "infrastructure": it asks to design or build cloud infrastructure. ' +
        'category "invalid": anything else (then reply with one polite sentence explaining what you can do). ' +
        'category "end": empty, abusive or meaningless. Answer in JSON.',
    ),
    { role: 'user', content: s.request },
  ];
}

export function gatherMessages(s: Pick<PromptState, 'messages' | 'requirements'>): ChatMessage[] {
  return [
    system(
      'gather',
      'You collect requirements for a cloud infrastructure design: region, environment (dev/staging/prod), ' +
        'scale, budget, data stores. Fill "requirements" with what the conversation states. In "questions" ' +
        `ask only for what is still missing and matters (at most ${MAX_QUESTIONS} short questions); ask nothing when enough is known.`,
    ),
    { role: 'user', content: `${transcript(s.messages)}\nKnown requirements: ${JSON.stringify(s.requirements)}` },
  ];
}

export function planMessages(s: Pick<PromptState, 'messages' | 'requirements'>, rejected = ''): ChatMessage[] {
  return [
    system(
      'plan',
      'Plan the Terraform resources (AWS provider). Each resource: a short unique id, its Terraform type ' +
        '(e.g. aws_s3_bucket), a snake_case name, dependsOn (ids of other resources in this plan it needs) and ' +
        'its requirements in one short sentence. No cycles.',
    ),
    { role: 'user', content: `${transcript(s.messages)}\nRequirements: ${JSON.stringify(s.requirements)}` },
    ...(rejected
      ? [{ role: 'user' as const, content: `Your previous plan was rejected: ${rejected}. Return a corrected plan.` }]
      : []),
  ];
}

export function generateMessages(
  r: PlannedResource,
  s: Pick<PromptState, 'resources' | 'requirements'>,
): ChatMessage[] {
  const deps = r.dependsOn
    .map((d) => s.resources.find((x) => x.id === d))
    .map((d) => (d ? `${d.id} → ${d.type}.${d.name}` : ''))
    .filter(Boolean);
  return [
    system(
      'generate',
      'Describe ONE Terraform resource as JSON: "attributes" (argument name → value; reference other resources ' +
        'by address, e.g. aws_s3_bucket.main.id, and variables as var.name), "blocks" (nested blocks, each ' +
        '{type, attributes}) and optional "outputs" ({name, value}).',
    ),
    {
      role: 'user',
      content:
        `Resource: ${r.type}.${r.name}\nPurpose: ${r.requirements}\n` +
        `Dependencies: ${deps.join('; ') || 'none'}\nRequirements: ${JSON.stringify(s.requirements)}`,
    },
  ];
}

export function fixMessages(s: Pick<PromptState, 'files' | 'validation'>): ChatMessage[] {
  return [
    system(
      'fix',
      'You fix Terraform files. Given the files and the validator output, return every file that needs a ' +
        'change, complete, as {files: [{name, content}]}. Keep everything that is correct.',
    ),
    {
      role: 'user',
      content:
        `Validator output:\n${s.validation?.output ?? ''}\n\n` +
        Object.entries(s.files)
          .map(([name, content]) => `--- ${name}\n${content}`)
          .join('\n'),
    },
  ];
}

/** Files a fix pass may write: the module's .tf files, by base name. */
export function acceptFixedFiles(current: Record<string, string>, raw: unknown): Record<string, string> {
  const out = { ...current };
  const list = (raw as { files?: { name?: unknown; content?: unknown }[] })?.files;
  for (const f of Array.isArray(list) ? list : []) {
    const name = String(f?.name ?? '')
      .split('/')
      .pop();
    if (name && /^[\w-]+\.tf$/.test(name) && typeof f.content === 'string') out[name] = f.content;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ v1

interface V1PromptState {
  messages: ChatMessage[];
  requirements: Record<string, string>;
  engineeringPrompt: string;
  reviewNotes: string;
  snippets: string[];
}

export function consultantMessages(s: Pick<V1PromptState, 'messages' | 'requirements'>): ChatMessage[] {
  return [
    system(
      'consultant',
      'You are a cloud consultant. Fill "requirements" from the conversation and ask in "questions" only what is missing (at most 3).',
    ),
    { role: 'user', content: `${transcript(s.messages)}\nKnown requirements: ${JSON.stringify(s.requirements)}` },
  ];
}

export function briefMessages(s: Pick<V1PromptState, 'messages' | 'requirements'>): ChatMessage[] {
  return [
    system('promptGenerator', 'Write a concise engineering brief for a Terraform engineer from this conversation.'),
    { role: 'user', content: `${transcript(s.messages)}\nRequirements: ${JSON.stringify(s.requirements)}` },
  ];
}

export function engineerMessages(s: Pick<V1PromptState, 'engineeringPrompt' | 'reviewNotes'>): ChatMessage[] {
  return [
    system(
      'engineer',
      'You are a Terraform engineer. Describe every resource as JSON: type, name, attributes, blocks, outputs.',
    ),
    {
      role: 'user',
      content: s.engineeringPrompt + (s.reviewNotes ? `\n\nReview notes to address:\n${s.reviewNotes}` : ''),
    },
  ];
}

export function leadMessages(s: Pick<V1PromptState, 'engineeringPrompt' | 'snippets'>): ChatMessage[] {
  return [
    system('lead', 'You are the lead engineer. Approve the draft, or return short review notes on what must change.'),
    { role: 'user', content: `Brief:\n${s.engineeringPrompt}\n\nDraft:\n${s.snippets.join('\n\n')}` },
  ];
}
