/**
 * The AWS provider schema check (schemas/aws-provider.json.gz, hashicorp/aws from the CDKTF bindings): what it
 * catches, what it lets through, the generator's JSON schema and the conforming of a generated resource.
 */
import { combineTerraform } from '../../lib/terraform/combine';
import { awsProviderSchema, conformResource, generationSchema } from '../../lib/terraform/schema';
import { validateTerraform } from '../../lib/terraform/validate';
import { AWS_RESOURCE_TYPES, defaultResource } from '../../workflows/design/catalog';
import { renderResource } from '../../workflows/design/hcl';
import type { PlannedResource } from '../../contracts/design';

jest.setTimeout(60_000);

const header = 'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws" }\n  }\n}\n';

test('the committed schema is the real provider: it knows the catalog types and not invented ones', () => {
  const schema = awsProviderSchema();
  expect(schema).not.toBeNull();
  expect(schema!.label).toMatch(/^hashicorp\/aws \d+\.\d+\.\d+/);
  expect(Object.keys(schema!.resources).length).toBeGreaterThan(1000);
  for (const type of AWS_RESOURCE_TYPES) expect(schema!.resources[type]).toBeDefined();
  expect(schema!.resources.aws_s3_bucket_versioning!.block.attributes!.bucket!.required).toBe(true);
  expect(schema!.resources.aws_fancy_thing).toBeUndefined();
});

test('every default body of the catalog passes the schema check', async () => {
  const all: PlannedResource[] = AWS_RESOURCE_TYPES.map((type, i) => ({
    id: `r${i}`,
    type,
    name: `n${i}`,
    dependsOn: [],
    requirements: '',
  }));
  const files = combineTerraform(
    all.map((r) => renderResource(r, defaultResource(r, all), all)),
    {},
  );
  const v = await validateTerraform(files, { terraformBin: undefined });
  expect(v.diagnostics.filter((d) => d.check === 'schema')).toEqual([]);
  expect(v.schemaCheck).toMatchObject({ status: 'passed', errors: 0 });
  expect(v.schemaCheck!.checked).toBeGreaterThanOrEqual(AWS_RESOURCE_TYPES.length);
});

test('invented arguments, wrong types, missing required blocks and unknown types are schema errors', async () => {
  const v = await validateTerraform(
    {
      'main.tf':
        header +
        'resource "aws_s3_bucket" "a" {\n  versioning_enabled = true\n  force_destroy = "maybe"\n  tags = ["x"]\n}\n' +
        'resource "aws_s3_bucket_versioning" "v" {\n  bucket = aws_s3_bucket.a.id\n}\n' +
        'resource "aws_fancy_thing" "z" {\n}\n',
    },
    { terraformBin: undefined },
  );
  const messages = v.diagnostics.filter((d) => d.check === 'schema').map((d) => d.message);
  expect(messages).toEqual(
    expect.arrayContaining([
      expect.stringContaining('aws_s3_bucket.a: unsupported argument or block "versioning_enabled"'),
      expect.stringContaining('aws_s3_bucket.a: argument "force_destroy" must be a bool'),
      expect.stringContaining('aws_s3_bucket.a: argument "tags" must be a map'),
      expect.stringContaining('aws_s3_bucket_versioning.v: missing required block "versioning_configuration"'),
      expect.stringContaining('resource type "aws_fancy_thing" does not exist'),
    ]),
  );
  expect(messages).toHaveLength(5);
  expect(v.ok).toBe(false);
  expect(v.schemaCheck).toMatchObject({ status: 'failed', errors: 5 });
  // No binary: terraform validate did not run, and says so.
  expect(v.terraformValidate).toBe('not_run');
  expect(v.output).toContain('terraform validate not run');
});

test('expressions and meta-arguments are not schema errors', async () => {
  const v = await validateTerraform(
    {
      'main.tf':
        header +
        'variable "on" {\n  type = bool\n}\n' +
        'resource "aws_s3_bucket" "a" {\n  bucket = "x"\n  force_destroy = var.on\n  count = 1\n' +
        '  lifecycle {\n    prevent_destroy = false\n  }\n}\n',
    },
    { terraformBin: undefined },
  );
  expect(v.diagnostics).toEqual([]);
  expect(v.schemaCheck?.status).toBe('passed');
});

test('generationSchema constrains attributes to the resource’s own arguments, required ones required', () => {
  const js = generationSchema('aws_s3_bucket_versioning') as {
    properties: {
      attributes: { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean };
    };
  };
  expect(js.properties.attributes.additionalProperties).toBe(false);
  expect(js.properties.attributes.required).toEqual(['bucket']);
  expect(Object.keys(js.properties.attributes.properties)).not.toContain('id');
  expect(generationSchema('aws_fancy_thing')).toBeUndefined();
});

test('conformResource drops what the schema does not know and fills required parts from the fallback', () => {
  const out = conformResource(
    'aws_s3_bucket_versioning',
    { attributes: { bucket: 'aws_s3_bucket.a.id', versioning: 'on' }, blocks: [{ type: 'nope', attributes: {} }] },
    { attributes: {}, blocks: [{ type: 'versioning_configuration', attributes: { status: 'Enabled' } }] },
  );
  expect(out.known).toBe(true);
  expect(out.resource.attributes).toEqual({ bucket: 'aws_s3_bucket.a.id' });
  expect(out.resource.blocks).toEqual([{ type: 'versioning_configuration', attributes: { status: 'Enabled' } }]);
  expect(out.dropped).toEqual(['versioning: unsupported argument', 'nope: unsupported block']);
  expect(out.filled).toEqual(['versioning_configuration']);
});

test('conformResource leaves out a block the reply cannot complete, and the result passes the schema check', async () => {
  const out = conformResource(
    'aws_s3_bucket',
    { attributes: { bucket: 'acme' }, blocks: [{ type: 'cors_rule', attributes: { max_age_seconds: 10 } }] },
    { attributes: {}, blocks: [] },
  );
  expect(out.resource.blocks).toEqual([]);
  expect(out.dropped).toEqual(['cors_rule: block lacks required allowed_methods, allowed_origins']);
  const r: PlannedResource = { id: 'b', type: 'aws_s3_bucket', name: 'b', dependsOn: [], requirements: '' };
  const files = combineTerraform([renderResource(r, out.resource, [r])], {});
  const v = await validateTerraform(files, { terraformBin: undefined });
  expect(v.schemaCheck?.status).toBe('passed');
});

test('conformResource takes the essential arguments a reply lacks from the default body (an instance needs an AMI)', () => {
  const fallback = {
    attributes: {
      ami: 'data.aws_ssm_parameter.server_ami.value',
      instance_type: 't3.micro',
      subnet_id: 'aws_subnet.a.id',
      vpc_security_group_ids: ['aws_security_group.sg.id'],
    },
    blocks: [{ type: 'metadata_options', attributes: { http_tokens: 'required' } }],
  };
  // What smollm2 wrote for "an EC2 web server" on npm start: valid under the schema, useless as an instance.
  const out = conformResource(
    'aws_instance',
    { attributes: { disable_api_termination: true, instance_type: 't3.small' }, blocks: [] },
    fallback,
  );
  expect(out.resource.attributes).toEqual({
    disable_api_termination: true,
    instance_type: 't3.small', // the reply's own value stays
    ami: 'data.aws_ssm_parameter.server_ami.value',
    subnet_id: 'aws_subnet.a.id',
    vpc_security_group_ids: ['aws_security_group.sg.id'],
  });
  expect(out.filled).toEqual(['ami', 'subnet_id', 'vpc_security_group_ids']);

  // An argument or block that replaces one (a launch template) keeps it out.
  const templated = conformResource(
    'aws_instance',
    { attributes: {}, blocks: [{ type: 'launch_template', attributes: { id: 'aws_launch_template.t.id' } }] },
    fallback,
  );
  expect(templated.resource.attributes).toEqual({});
  expect(templated.filled).toEqual([]);
});

test('conformResource wires the design from the default body: a literal the reply wrote for a reference goes', () => {
  // What smollm2 wrote for a subnet under its schema: a made-up VPC id, and a CIDR of one letter.
  const out = conformResource(
    'aws_subnet',
    { attributes: { vpc_id: '1234567890', cidr_block: '10.0.0.0/24' }, blocks: [] },
    { attributes: { vpc_id: 'aws_vpc.vpc.id', cidr_block: '10.0.1.0/24' }, blocks: [] },
  );
  expect(out.resource.attributes).toEqual({ vpc_id: 'aws_vpc.vpc.id', cidr_block: '10.0.0.0/24' });
  expect(out.filled).toEqual(['vpc_id (wired to the design)']);
  // A reference the reply made itself (already checked against the design) stays.
  const own = conformResource(
    'aws_subnet',
    { attributes: { vpc_id: 'aws_vpc.other.id', cidr_block: '10.0.0.0/24' }, blocks: [] },
    { attributes: { vpc_id: 'aws_vpc.vpc.id' }, blocks: [] },
  );
  expect(own.resource.attributes?.vpc_id).toBe('aws_vpc.other.id');
});

test('the generation schema offers no outputs (they come from the default body)', () => {
  expect(Object.keys(generationSchema('aws_subnet')!.properties as object)).not.toContain('outputs');
});

test('essential blocks: a table gets its key attribute and the design KMS key unless the reply chose its own key', () => {
  const fallback = {
    attributes: { name: 'sessions', billing_mode: 'PAY_PER_REQUEST', hash_key: 'id' },
    blocks: [
      { type: 'attribute', attributes: { name: 'id', type: 'S' } },
      { type: 'server_side_encryption', attributes: { enabled: true, kms_key_arn: 'aws_kms_key.key.arn' } },
    ],
  };
  const bare = conformResource('aws_dynamodb_table', { attributes: { name: 'sessions' }, blocks: [] }, fallback);
  expect(bare.filled).toEqual(['hash_key', 'attribute', 'billing_mode', 'server_side_encryption']);
  expect(bare.resource.blocks?.map((b) => b.type)).toEqual(['attribute', 'server_side_encryption']);
  // Its own hash key: the default body's `attribute` (for "id") would not describe it, so it is not added.
  const own = conformResource(
    'aws_dynamodb_table',
    { attributes: { name: 'sessions', hash_key: 'session_id' }, blocks: [] },
    fallback,
  );
  expect(own.resource.attributes?.hash_key).toBe('session_id');
  expect(own.filled).toEqual(['billing_mode', 'server_side_encryption']);
});
