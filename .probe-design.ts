import { Ollama } from 'ollama';
import { freePort, startOllama } from '/work/main/scripts/lib/services';
import { readToolchain } from '/work/main/scripts/lib/toolchain';
import { GATHER_SCHEMA, PLAN_SCHEMA, RESOURCE_SCHEMA, ROUTE_SCHEMA } from '/work/main/workflows/infra-design-common';
(async () => {
  const tc = readToolchain();
  const svc = await startOllama(tc, { port: await freePort(), logFile: '/tmp/probe-ollama.log', numParallel: 2 });
  const o = new Ollama({ host: svc.url });
  const req = 'one S3 bucket with versioning in ap-northeast-2';
  const chat = async (sys: string, user: string, format: any) => {
    const t = Date.now();
    const r = await o.chat({ model: 'gemma3:270m', messages: [{ role: 'system', content: sys }, { role: 'user', content: user }], format, options: { temperature: 0, seed: 7, num_predict: 400, num_ctx: 4096 }, stream: false });
    console.log('---', Date.now() - t, 'ms', r.eval_count, '\n', r.message.content);
  };
  try {
    await chat('ainode design: route\nClassify the user message. category "infrastructure": it asks to design or build cloud infrastructure. category "invalid": anything else (then reply with one polite sentence explaining what you can do). category "end": empty, abusive or meaningless. Answer in JSON.', req, ROUTE_SCHEMA);
    await chat('ainode design: gather\nYou collect requirements for a cloud infrastructure design: region, environment (dev/staging/prod), scale, budget, data stores. Fill "requirements" with what the conversation states. In "questions" ask only for what is still missing and matters (at most 5 short questions); ask nothing when enough is known.', `User: ${req}\nKnown requirements: {}`, GATHER_SCHEMA);
    await chat('ainode design: plan\nPlan the Terraform resources (AWS provider unless stated otherwise). Each resource: a short unique id, its Terraform type (e.g. aws_s3_bucket), a snake_case name, dependsOn (ids of resources it needs) and its requirements in one sentence. No cycles.', `User: ${req}\nRequirements: {"region":"ap-northeast-2"}`, PLAN_SCHEMA);
    await chat('ainode design: generate\nDescribe ONE Terraform resource as JSON: "attributes" (argument name → value; reference other resources by address, e.g. aws_s3_bucket.main.id, and variables as var.name), "blocks" (nested blocks, each {type, attributes}) and optional "outputs" ({name, value}).', 'Resource: aws_s3_bucket.data\nPurpose: bucket with versioning\nDependencies: none\nRequirements: {"region":"ap-northeast-2"}', RESOURCE_SCHEMA);
  } finally { await svc.stop(); }
})();
