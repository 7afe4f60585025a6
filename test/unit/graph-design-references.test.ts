/**
 * The deterministic repairs between a generated resource and its HCL: references outside the design replaced
 * by the default body's value or dropped, the loose reading of a generator reply (v2) and of an engineer draft
 * (v1), the draft's resources with ids and dependencies of their own, and a reply full of guesses that still
 * renders to files passing the static checks and the AWS provider schema check.
 */
import { combineTerraform } from '../../lib/terraform/combine';
import { conformResource } from '../../lib/terraform/schema';
import { validateTerraform } from '../../lib/terraform/validate';
import { defaultResource } from '../../workflows/design/catalog';
import { renderResource } from '../../workflows/design/hcl';
import { acceptDraftLoose, draftResources } from '../../workflows/design/plan-graph';
import { declaredFor, referencesOf, repairReferences } from '../../workflows/design/references';
import { acceptGenerated } from '../../workflows/design/schemas';
import type { PlannedResource } from '../../contracts/design';

jest.setTimeout(60_000);

const plan: PlannedResource[] = [
  { id: 'site', type: 'aws_s3_bucket', name: 'site', dependsOn: [], requirements: '' },
  { id: 'ver', type: 'aws_s3_bucket_versioning', name: 'site', dependsOn: ['site'], requirements: '' },
  { id: 'fn', type: 'aws_lambda_function', name: 'fn', dependsOn: [], requirements: '' },
];

test('referencesOf: bare references and interpolations, never plain strings that only look dotted', () => {
  expect(referencesOf('aws_s3_bucket.site.id')).toEqual(['aws_s3_bucket.site']);
  expect(referencesOf('aws_subnet.private[0].id')).toEqual(['aws_subnet.private']);
  expect(referencesOf('${aws_s3_bucket.site.arn}/*')).toEqual(['aws_s3_bucket.site']);
  expect(referencesOf('var.region')).toEqual(['var.region']);
  expect(referencesOf('data.aws_ssm_parameter.ami.value')).toEqual(['data.aws_ssm_parameter.ami']);
  expect(referencesOf('local.tags')).toEqual(['local.tags']);
  expect(referencesOf('lambda_function.lambda_handler')).toEqual([]);
  expect(referencesOf('t3.micro')).toEqual([]);
  expect(referencesOf('arn:aws:s3:::bucket/*')).toEqual([]);
});

test('a value referencing what the design lacks takes the default body’s value, or is dropped', () => {
  const fallback = defaultResource(plan[1]!, plan);
  const known = declaredFor(plan, fallback.extra);
  const out = repairReferences(
    {
      attributes: { bucket: 'aws_s3_bucket.main.id', expected_bucket_owner: 'var.account_id' },
      blocks: [{ type: 'versioning_configuration', attributes: { status: 'Enabled', mfa_delete: 'local.mfa' } }],
      outputs: [
        { name: 'ok', value: 'aws_s3_bucket.site.arn' },
        { name: 'bad', value: 'aws_s3_bucket.other.arn' },
      ],
    },
    fallback,
    known,
  );
  expect(out.resource.attributes).toEqual({ bucket: 'aws_s3_bucket.site.id' });
  expect(out.resource.blocks).toEqual([{ type: 'versioning_configuration', attributes: { status: 'Enabled' } }]);
  expect(out.resource.outputs).toEqual([{ name: 'ok', value: 'aws_s3_bucket.site.arn' }]);
  expect(out.notes).toEqual([
    'bucket: aws_s3_bucket.main is not in the design, default value used',
    'expected_bucket_owner: dropped, var.account_id is not in the design',
    'versioning_configuration.mfa_delete: dropped, local.mfa is not in the design',
    'output bad: dropped, aws_s3_bucket.other is not in the design',
  ]);
});

test('a resource may not reference itself in its own arguments (terraform refuses it); its outputs may', () => {
  const known = declaredFor(plan);
  const out = repairReferences(
    {
      // What smollm2 wrote for a log group on npm start: `name = aws_cloudwatch_log_group.logs`, in that log group.
      attributes: { bucket: 'aws_s3_bucket.site', tags: { owner: 'x' } },
      outputs: [{ name: 'arn', value: 'aws_s3_bucket.site.arn' }],
    },
    { attributes: {} },
    known,
    { self: 'aws_s3_bucket.site' },
  );
  expect(out.resource.attributes).toEqual({ tags: { owner: 'x' } });
  expect(out.resource.outputs).toEqual([{ name: 'arn', value: 'aws_s3_bucket.site.arn' }]);
  expect(out.notes).toEqual(['bucket: dropped, aws_s3_bucket.site is the resource itself']);
});

test('a list keeps the items that resolve', () => {
  const known = declaredFor(plan);
  const out = repairReferences(
    { attributes: { layers: ['aws_s3_bucket.site.arn', 'aws_lambda_layer_version.x.arn'] } },
    { attributes: {} },
    known,
  );
  expect(out.resource.attributes).toEqual({ layers: ['aws_s3_bucket.site.arn'] });
});

test('a Python handler name is a string, not a reference', () => {
  const hcl = renderResource(plan[2]!, { attributes: { handler: 'lambda_function.lambda_handler' } }, plan);
  expect(hcl).toContain('handler = "lambda_function.lambda_handler"');
  expect(renderResource(plan[1]!, { attributes: { bucket: 'aws_s3_bucket.site.id' } }, plan)).toContain(
    'bucket = aws_s3_bucket.site.id',
  );
});

test('any string renders as HCL that parses: stray interpolations and directives become literals', async () => {
  const r = plan[0]!;
  const hcl = renderResource(
    r,
    {
      attributes: { bucket: 'a-${unclosed', acl: '${foo bar}', policy: '%{ if x }', request_payer: 'x\by' },
      outputs: [{ name: 'o', value: 'arn:${aws_s3_bucket.site.arn}' }],
    },
    plan,
  );
  expect(hcl).toContain('bucket = "a-$${unclosed"');
  expect(hcl).toContain('acl = "$${foo bar}"');
  expect(hcl).toContain('policy = "%%{ if x }"');
  expect(hcl).toContain('value = "arn:${aws_s3_bucket.site.arn}"');
  const v = await validateTerraform(combineTerraform([hcl]), { terraformBin: undefined });
  expect(v.diagnostics.filter((d) => d.check === 'hcl-parse')).toEqual([]);
  expect(v.schemaCheck?.status).toBe('passed');
});

test('acceptGenerated takes any reply with an attributes object and leaves out malformed blocks and outputs', () => {
  expect(acceptGenerated({ attributes: { tags: { Name: 'x' } }, blocks: [{ nope: 1 }, { type: 'b' }] })).toEqual({
    value: { attributes: { tags: { Name: 'x' } }, blocks: [{ type: 'b', attributes: {} }] },
  });
  expect(acceptGenerated({ attributes: {}, outputs: [{ name: 'a' }, { name: 'b', value: 'v' }] })).toEqual({
    value: { attributes: {}, outputs: [{ name: 'b', value: 'v' }] },
  });
  expect(acceptGenerated({ blocks: [] })).toEqual({ error: expect.stringContaining('missing "attributes"') });
  expect(acceptGenerated([1])).toEqual({ error: '$: must be an object' });
});

test('a reply of guesses still renders to files that pass the static checks and the schema check', async () => {
  const reply = {
    attributes: {
      function_name: 'my-fn',
      role: 'aws_iam_role.lambda_exec.arn',
      handler: 'lambda_function.lambda_handler',
      runtime: 'python3.12',
      timeout: '30',
      memory: 512,
      tags: { Name: 'fn' },
    },
    blocks: [{ type: 'environment', attributes: { variables: 'aws_s3_bucket.site.bucket' } }],
    outputs: [{ name: 'arn', value: 'aws_lambda_function.fn.arn' }],
  };
  const accepted = acceptGenerated(reply);
  if (!('value' in accepted)) throw new Error(accepted.error);
  const r = plan[2]!;
  const fallback = defaultResource(r, plan);
  const repaired = repairReferences(accepted.value, fallback, declaredFor(plan, fallback.extra));
  const conformed = conformResource(r.type, repaired.resource, fallback);
  const gen = { ...conformed.resource, extra: fallback.extra };
  const snippets = [
    renderResource(plan[0]!, defaultResource(plan[0]!, plan), plan),
    renderResource(plan[1]!, defaultResource(plan[1]!, plan), plan),
    renderResource(r, gen, plan),
  ];
  const v = await validateTerraform(combineTerraform(snippets), { terraformBin: undefined });
  expect(v.diagnostics).toEqual([]);
  expect(v.schemaCheck).toMatchObject({ status: 'passed', errors: 0 });
  expect(conformed.dropped).toEqual(['memory: unsupported argument', 'environment.variables: must be a map']);
  // The guessed role became the default body's (a declared variable): no unresolved reference is left.
  expect(repaired.notes).toEqual(['role: aws_iam_role.lambda_exec is not in the design, default value used']);
});

test('conformResource writes a bare reference given for a list as a list of it', () => {
  const out = conformResource(
    'aws_instance',
    { attributes: { ami: 'ami-1', vpc_security_group_ids: 'aws_security_group.web.id', tags: 'var.tags' } },
    { attributes: {} },
  );
  expect(out.resource.attributes).toEqual({ ami: 'ami-1', vpc_security_group_ids: ['aws_security_group.web.id'] });
  expect(out.dropped).toEqual(['tags: must be a map']);
});

test('acceptDraftLoose keeps the known items of a v1 draft; draftResources adds ids and dependencies', () => {
  const accepted = acceptDraftLoose({
    resources: [
      { type: 'S3 Bucket', name: 'logs', attributes: { bucket: 'acme-logs', tags: { team: 'x' } } },
      { type: 'aws_magic_box', name: 'x', attributes: {} },
      { type: 'aws_s3_bucket_versioning', name: 'logs', attributes: { bucket: 'aws_s3_bucket.logs.id' } },
      { type: 'aws_s3_bucket', name: 'old', attributes: {} },
    ],
  });
  if (!('value' in accepted)) throw new Error(accepted.error);
  expect(accepted.value.map((r) => `${r.type}.${r.name}`)).toEqual([
    'aws_s3_bucket.logs',
    'aws_s3_bucket_versioning.logs',
    'aws_s3_bucket.old',
  ]);
  const kept: PlannedResource[] = [{ id: 'r1', type: 'aws_s3_bucket', name: 'old', dependsOn: [], requirements: '' }];
  const { added, drafts } = draftResources(accepted.value, kept);
  // The kept bucket is not drafted again; new ids do not clash with the kept one.
  expect(added).toEqual([
    { id: 'r2', type: 'aws_s3_bucket', name: 'logs', dependsOn: [], requirements: '' },
    { id: 'r3', type: 'aws_s3_bucket_versioning', name: 'logs', dependsOn: ['r2'], requirements: '' },
  ]);
  expect(drafts[1]).toEqual({ attributes: { bucket: 'aws_s3_bucket.logs.id' } });
  expect(acceptDraftLoose({ resources: [{ type: 'aws_magic_box', name: 'x', attributes: {} }] })).toEqual({
    error: expect.stringMatching(/^\$\.resources\[0\]\.type/),
  });
});
