/** The design graph's pure pieces: block splitting/combining, plan levels, HCL rendering, and validation. */
import { combineTerraform, splitBlocks } from '../../lib/terraform/combine';
import { staticValidate, validateTerraform } from '../../lib/terraform/validate';
import { normalizePlan, planLevels, salvageResources } from '../../workflows/design/plan-graph';
import { renderResource } from '../../workflows/design/hcl';
import type { PlannedResource } from '../../contracts/design';

jest.setTimeout(60_000);

const bucket = `resource "aws_s3_bucket" "data" {
  bucket = "acme-data-\${var.env}"
  tags = { note = "braces } in strings { are fine" }
}`;

test('splitBlocks finds top-level blocks through fences, prose, strings and heredocs', () => {
  const text = [
    'Here is the code:',
    '```hcl',
    bucket,
    'variable "env" {\n  default = "dev"\n}',
    'locals {\n  policy = <<EOT\n{ "a": "}" }\nEOT\n}',
    '```',
  ].join('\n');
  const blocks = splitBlocks(text);
  expect(blocks.map((b) => b.header)).toEqual(['resource "aws_s3_bucket" "data"', 'variable "env"', 'locals']);
  expect(blocks[0]!.text.endsWith('}')).toBe(true);
  expect(blocks[2]!.text).toContain('EOT\n}');
});

test('combineTerraform splits into four files, dedups blocks and declares providers', async () => {
  const files = combineTerraform(
    [
      bucket,
      bucket + '\n\nvariable "env" {\n  default = "dev"\n}',
      'output "arn" {\n  value = aws_s3_bucket.data.arn\n}',
    ],
    {
      region: 'ap-northeast-2',
    },
  );
  expect(Object.keys(files).sort()).toEqual(['main.tf', 'outputs.tf', 'providers.tf', 'variables.tf']);
  expect(files['main.tf']!.match(/resource "aws_s3_bucket" "data"/g)).toHaveLength(1);
  expect(files['providers.tf']).toContain('source = "hashicorp/aws"');
  expect(files['providers.tf']).toContain('region = var.region');
  expect(files['variables.tf']).toContain('default     = "ap-northeast-2"');
  expect(files['outputs.tf']).toContain('output "arn"');
  const v = await staticValidate(files);
  expect(v).toEqual([]);
});

test('staticValidate reports parse errors, unresolved references, undeclared providers and duplicates', async () => {
  const diags = await staticValidate({
    'main.tf':
      'resource "aws_s3_bucket" "a" {\n  bucket = var.missing\n  policy = aws_iam_policy.nope.arn\n}\n' +
      'resource "aws_s3_bucket" "a" {\n  bucket = "x"\n}\n',
    'broken.tf': 'resource "aws_s3_bucket" "b" {\n  bucket = \n}\n',
  });
  const checks = diags.map((d) => d.check).sort();
  expect(checks).toEqual(['duplicate', 'hcl-parse', 'provider', 'reference', 'reference']);
  expect(diags.find((d) => d.check === 'hcl-parse')?.file).toBe('broken.tf');
  expect(diags.map((d) => d.message).join('\n')).toContain('var.missing');
  expect(diags.map((d) => d.message).join('\n')).toContain('aws_iam_policy.nope');
});

test('validateTerraform without a binary says terraform was not run, and why', async () => {
  const v = await validateTerraform({ 'main.tf': 'variable "x" {\n  default = 1\n}\n' }, { terraformBin: undefined });
  expect(v.ok).toBe(true);
  expect(v.terraform).toEqual({ ran: false, reason: 'no terraform or tofu binary on PATH' });
  expect(v.output).toContain('terraform validate not run');
});

const res = (id: string, dependsOn: string[] = []): PlannedResource => ({
  id,
  type: 'aws_s3_bucket',
  name: id,
  dependsOn,
  requirements: '',
});

test('planLevels sorts topologically and reports cycles and unknown dependencies', () => {
  expect(planLevels([res('c', ['a', 'b']), res('a'), res('b', ['a'])])).toEqual({ levels: [['a'], ['b'], ['c']] });
  expect(planLevels([res('a'), res('b'), res('c', ['a'])])).toEqual({ levels: [['a', 'b'], ['c']] });
  expect(planLevels([res('a', ['b']), res('b', ['a'])])).toEqual({ error: 'dependency cycle among: a, b' });
  expect(planLevels([res('a', ['zzz'])])).toEqual({ error: 'resource "a" depends on unknown resource "zzz"' });
  expect(normalizePlan({ resources: [] })).toEqual({ error: 'the plan has no resources' });
});

test('normalizePlan repairs what a small model gets loosely wrong and salvages a truncated reply', () => {
  const repaired = normalizePlan({
    resources: [
      { id: 'b', type: 'S3 Bucket', name: 'Data', dependsOn: ['b'] },
      { id: 'b', type: 's3-bucket', name: 'data', dependsOn: [] },
      { id: 'v', type: 'aws_s3_bucket', name: 'data', dependsOn: ['b', 'b'] },
    ],
  });
  expect(repaired).toEqual({
    resources: [
      { id: 'b', type: 'aws_s3_bucket', name: 'data', dependsOn: [], requirements: '' },
      { id: 'v', type: 'aws_s3_bucket', name: 'data_2', dependsOn: ['b'], requirements: '' },
    ],
  });
  const truncated =
    '{"resources": [{"id": "a", "type": "aws_s3_bucket", "name": "a", "dependsOn": []}, {"id": "b", "ty';
  expect(salvageResources(truncated)).toEqual({
    resources: [{ id: 'a', type: 'aws_s3_bucket', name: 'a', dependsOn: [] }],
  });
  expect(normalizePlan({ resources: [{ id: 'x', type: '' }] })).toEqual({ error: 'resource "x" has no type' });
});

test('normalizePlan maps a dependency named by type, name or type.name to the one resource it means', () => {
  const plan = normalizePlan({
    resources: [
      { id: 'q1', type: 'aws_s3_bucket', name: 'uploads', dependsOn: ['aws_s3_bucket'] },
      { id: 'q2', type: 'aws_s3_bucket_versioning', name: 'v', dependsOn: ['aws_s3_bucket'] },
      { id: 'q3', type: 'aws_s3_bucket_policy', name: 'p', dependsOn: ['uploads', 'aws_s3_bucket_versioning.v'] },
      { id: 'q4', type: 'aws_iam_role', name: 'r', dependsOn: ['nowhere'] },
    ],
  });
  if (!('resources' in plan)) throw new Error(plan.error);
  expect(plan.resources.map((r) => [r.id, r.dependsOn])).toEqual([
    ['q1', []], // its own type: itself, dropped
    ['q2', ['q1']],
    ['q3', ['q1', 'q2']],
    ['q4', ['nowhere']], // unknown: left for planLevels, whose error goes back to the model
  ]);
  expect(planLevels(plan.resources)).toEqual({ error: 'resource "q4" depends on unknown resource "nowhere"' });
});

test('renderResource always yields HCL the parser accepts, with references unquoted', async () => {
  const vpc: PlannedResource = { id: 'vpc', type: 'aws_vpc', name: 'Main VPC', dependsOn: [], requirements: '' };
  const normalized = normalizePlan({ resources: [vpc] });
  const r = 'resources' in normalized ? normalized.resources[0]! : vpc;
  const hcl = renderResource(
    r,
    {
      attributes: {
        cidr_block: '10.0.0.0/16',
        enable_dns: true,
        count: 2,
        tags: { Name: 'main "quoted"', 'bad key': 'x' },
        // A small model's slips: keys that clash once normalised, and almost-references.
        name: 'first',
        Name: 'second',
        note: 'aws_vpc.x[not an index]',
      },
      blocks: [{ type: 'timeouts', attributes: { create: '10m' } }],
      outputs: [{ name: 'id', value: 'aws_vpc.main_vpc.id' }],
    },
    [r],
  );
  expect(hcl).toContain('resource "aws_vpc" "main_vpc" {');
  expect(hcl).toContain('value = aws_vpc.main_vpc.id');
  expect(hcl).toContain('name = "first"');
  expect(hcl).not.toContain('second');
  expect(hcl).toContain('note = "aws_vpc.x[not an index]"');
  const diags = await staticValidate({ 'main.tf': hcl, 'providers.tf': 'provider "aws" {}\n' });
  expect(diags).toEqual([]);
});
