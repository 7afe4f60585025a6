/**
 * The design graph's structured-output pieces without services: schema validation and parsing of replies,
 * the keyword fallbacks (route, requirements, plan), the deterministic plan repair (unknown edges, cycles) and
 * the default resource bodies, which must combine into files the HCL parser and static checks accept.
 */
import { routeDecision } from '../../workflows/design/fallback';
import { parse } from '@cdktf/hcl2json';
import { combineTerraform } from '../../lib/terraform/combine';
import { staticValidate } from '../../lib/terraform/validate';
import { AWS_RESOURCE_TYPES, defaultResource, slug } from '../../workflows/design/catalog';
import {
  FIX_SCHEMA,
  GATHER_SCHEMA,
  parseStructured,
  PLAN_SCHEMA,
  RESOURCE_SCHEMA,
  ROUTE_SCHEMA,
  validateJson,
} from '../../workflows/design/schemas';
import { acceptPlan, planLevels, salvagePlan } from '../../workflows/design/plan-graph';
import { renderResource } from '../../workflows/design/hcl';
import {
  KEYWORD_INVALID_REPLY,
  keywordPlan,
  namedTypes,
  keywordRequirements,
  keywordRoute,
  repairPlanGraph,
} from '../../workflows/design/fallback';
import type { PlannedResource } from '../../contracts/design';

jest.setTimeout(60_000);

const README_REQUEST = 'A static website on S3 behind CloudFront';
const res = (id: string, type: string, dependsOn: string[] = []): PlannedResource => ({
  id,
  type,
  name: id,
  dependsOn,
  requirements: '',
});

/** Renders every resource of a plan with its default body and combines them, as `generate` + `combine` do. */
function filesOf(plan: PlannedResource[]): Record<string, string> {
  return combineTerraform(plan.map((r) => renderResource(r, defaultResource(r, plan), plan)));
}

describe('validateJson', () => {
  it('accepts replies that match the schemas', () => {
    expect(validateJson({ category: 'infrastructure', reply: '' }, ROUTE_SCHEMA)).toEqual([]);
    expect(validateJson({ requirements: { region: 'eu-west-1' }, questions: ['Budget?'] }, GATHER_SCHEMA)).toEqual([]);
    expect(
      validateJson(
        { attributes: { bucket: 'x', force_destroy: false, tags_all: ['a'] }, blocks: [{ type: 't', attributes: {} }] },
        RESOURCE_SCHEMA,
      ),
    ).toEqual([]);
    expect(validateJson({ files: [{ name: 'main.tf', content: '' }] }, FIX_SCHEMA)).toEqual([]);
  });

  it('names the path of each violation: enum, missing, extra property, length, item count, nesting', () => {
    expect(validateJson({ category: 'maybe', reply: '' }, ROUTE_SCHEMA)).toEqual([
      '$.category: must be one of "infrastructure", "invalid", "end" (got "maybe")',
    ]);
    expect(validateJson({ category: 'end' }, ROUTE_SCHEMA)).toEqual(['$: missing "reply"']);
    expect(validateJson({ category: 'end', reply: '', extra: 1 }, ROUTE_SCHEMA)).toEqual([
      '$: unexpected property "extra"',
    ]);
    expect(validateJson({ category: 'end', reply: 'x'.repeat(161) }, ROUTE_SCHEMA)).toEqual([
      '$.reply: longer than 160 characters',
    ]);
    expect(validateJson({ requirements: {}, questions: ['a', 'b', 'c', 'd'] }, GATHER_SCHEMA)).toEqual([
      '$.questions: more than 3 items',
    ]);
    expect(validateJson({ requirements: { colour: 'red' }, questions: [] }, GATHER_SCHEMA)).toEqual([
      '$.requirements: unexpected property "colour"',
    ]);
    expect(validateJson({ attributes: { nested: { deep: 1 } } }, RESOURCE_SCHEMA)).toEqual([
      '$.attributes.nested: has a shape that is not allowed',
    ]);
    expect(validateJson('text', ROUTE_SCHEMA)).toEqual(['$: must be a object']);
  });

  it('rejects a plan with a type the generator does not know, or too many resources', () => {
    const plan = { resources: [{ ...res('a', 'aws_magic_box'), requirements: 'x' }] };
    expect(validateJson(plan, PLAN_SCHEMA)[0]).toMatch(/^\$\.resources\[0\]\.type: must be one of the allowed values/);
    const many = { resources: Array.from({ length: 13 }, (_, i) => res(`b${i}`, 'aws_s3_bucket')) };
    expect(validateJson(many, PLAN_SCHEMA)).toEqual(['$.resources: more than 12 items']);
  });
});

describe('parseStructured', () => {
  it('parses JSON, and JSON wrapped in prose', () => {
    expect(parseStructured('{"a":1}')).toEqual({ value: { a: 1 } });
    expect(parseStructured('Sure! {"a":2} Hope it helps')).toEqual({ value: { a: 2 } });
  });

  it('says why a reply is unusable, including a cut-off', () => {
    expect(parseStructured('')).toEqual({ error: 'the reply was empty' });
    const cut = parseStructured('{"resources": [{"id": "a", "id": "a", "id": "a"', 'repetition');
    expect('error' in cut && cut.error).toMatch(/^not valid JSON \(.+\); the reply was cut off \(repetition\)$/);
  });
});

describe('acceptPlan', () => {
  it('coerces loosely spelled types and keeps unknown dependencies for the deterministic repair', () => {
    const out = acceptPlan({
      resources: [
        { id: 'site', type: 'S3 Bucket', name: 'site', dependsOn: ['ghost'], requirements: 'files' },
        { id: 'cdn', type: 'cloudfront-distribution', name: 'cdn', dependsOn: ['site'], requirements: '' },
      ],
    });
    expect(out).toEqual({
      value: [
        { id: 'site', type: 'aws_s3_bucket', name: 'site', dependsOn: ['ghost'], requirements: 'files' },
        { id: 'cdn', type: 'aws_cloudfront_distribution', name: 'cdn', dependsOn: ['site'], requirements: '' },
      ],
    });
  });

  it('rejects what the schema rejects, with the error to send back', () => {
    const out = acceptPlan({
      resources: [{ id: 'x', type: 'aws_magic_box', name: 'x', dependsOn: [], requirements: '' }],
    });
    expect('error' in out && out.error).toContain('$.resources[0].type');
    expect(acceptPlan({ resources: [] })).toEqual({ error: '$.resources: fewer than 1 items' });
  });

  it('salvages complete resources from a reply cut off mid-way', () => {
    const content =
      '{"resources": [{"id": "a", "type": "aws_s3_bucket", "name": "a", "dependsOn": [], "requirements": ""}, {"id": "b", "ty';
    expect(acceptPlan(salvagePlan(content))).toEqual({ value: [res('a', 'aws_s3_bucket')] });
    expect(salvagePlan('no json at all')).toBeUndefined();
  });
});

describe('keyword fallbacks', () => {
  it('routes by infrastructure words', () => {
    expect(keywordRoute(README_REQUEST)).toEqual({ category: 'infrastructure', reply: '' });
    expect(keywordRoute('Deploy a postgres database for our app').category).toBe('infrastructure');
    expect(keywordRoute('What is the capital of France?')).toEqual({
      category: 'invalid',
      reply: KEYWORD_INVALID_REPLY,
    });
  });

  it('takes requirements from what the user wrote', () => {
    expect(keywordRequirements('A bucket in Seoul for production')).toEqual({
      region: 'ap-northeast-2',
      environment: 'prod',
      dataStores: 'S3',
    });
    expect(keywordRequirements('postgres in eu-west-1, staging')).toEqual({
      region: 'eu-west-1',
      environment: 'staging',
      dataStores: 'PostgreSQL',
    });
    expect(keywordRequirements('something')).toEqual({});
  });

  it('plans the README request: private bucket, origin access control, distribution, bucket policy', () => {
    const plan = keywordPlan(README_REQUEST)!;
    expect(plan.map((r) => [r.id, r.type, r.dependsOn])).toEqual([
      ['site', 'aws_s3_bucket', []],
      ['site_public_access', 'aws_s3_bucket_public_access_block', ['site']],
      ['site_oac', 'aws_cloudfront_origin_access_control', []],
      ['cdn', 'aws_cloudfront_distribution', ['site', 'site_oac']],
      ['site_policy', 'aws_s3_bucket_policy', ['site', 'cdn']],
    ]);
    expect(planLevels(plan)).toEqual({
      levels: [['site', 'site_oac'], ['site_public_access', 'cdn'], ['site_policy']],
    });
  });

  it('plans other requests from their words, within 12 resources, and nothing for a request it cannot read', () => {
    const types = (text: string) => keywordPlan(text)!.map((r) => r.type);
    expect(types('one S3 bucket with versioning in ap-northeast-2')).toEqual([
      'aws_s3_bucket',
      'aws_s3_bucket_public_access_block',
      'aws_s3_bucket_versioning',
    ]);
    expect(types('a serverless REST API with a DynamoDB table')).toEqual(
      expect.arrayContaining(['aws_lambda_function', 'aws_apigatewayv2_api', 'aws_dynamodb_table', 'aws_iam_role']),
    );
    const sink = keywordPlan(
      'containers on ECS behind a load balancer with postgres, redis, an SQS queue, SNS topic, logs and secrets',
    )!;
    expect(sink.length).toBe(12);
    expect(planLevels(sink)).toHaveProperty('levels');
    for (const r of sink) for (const d of r.dependsOn) expect(sink.some((x) => x.id === d)).toBe(true);
    expect(keywordPlan('hello there')).toBeUndefined();
  });
});

describe('namedTypes', () => {
  it('names the services a request mentions; with parts, also the parts it asks for', () => {
    const ec2 = 'An EC2 web server in a public subnet with a security group allowing HTTPS';
    expect(namedTypes(ec2)).toEqual([]);
    expect(namedTypes(ec2, { parts: true })).toEqual(['aws_security_group', 'aws_subnet', 'aws_instance']);
    expect(namedTypes('An S3 bucket for log archives with versioning', { parts: true })).toEqual([
      'aws_s3_bucket',
      'aws_s3_bucket_versioning',
    ]);
    expect(namedTypes('A Redis cache on ElastiCache in a VPC', { parts: true })).toEqual([
      'aws_vpc',
      'aws_elasticache_cluster',
    ]);
  });

  it('every part of the ten bench requests that the keyword plan has for the same words', () => {
    // What the coverage check can demand: a named type the keyword plan of the same request offers.
    const demanded = (text: string) => {
      const offered = new Set(keywordPlan(text, { kms: true })!.map((r) => r.type));
      return namedTypes(text, { parts: true }).filter((t) => offered.has(t));
    };
    expect(demanded('An EC2 web server in a public subnet with a security group allowing HTTPS')).toEqual([
      'aws_security_group',
      'aws_subnet',
      'aws_instance',
    ]);
    expect(demanded('A Lambda function triggered by an SQS queue, with its IAM role and a log group')).toEqual([
      'aws_lambda_function',
      'aws_sqs_queue',
      'aws_cloudwatch_log_group',
      'aws_iam_role',
    ]);
    // "encryption" names the bucket's encryption configuration, which a table does not have; the KMS key it has.
    expect(demanded('A DynamoDB table for sessions with a KMS key for encryption')).toEqual([
      'aws_dynamodb_table',
      'aws_kms_key',
    ]);
  });

  it('plans a KMS key the request names (with the parts patch), and the table it encrypts uses it', () => {
    const text = 'A DynamoDB table for sessions with a KMS key for encryption';
    expect(keywordPlan(text)!.map((r) => r.type)).toEqual(['aws_dynamodb_table']); // before the patch
    const plan = keywordPlan(text, { kms: true })!;
    expect(plan.map((r) => [r.type, r.dependsOn])).toEqual([
      ['aws_kms_key', []],
      ['aws_dynamodb_table', ['key']],
    ]);
    const table = defaultResource(plan[1]!, plan);
    expect(table.blocks).toContainEqual({
      type: 'server_side_encryption',
      attributes: { enabled: true, kms_key_arn: 'aws_kms_key.key.arn' },
    });
  });
});

describe('repairPlanGraph', () => {
  it('drops a dependency on an unknown resource and says so', () => {
    const input = [res('a', 'aws_s3_bucket', ['ghost']), res('b', 'aws_s3_bucket_versioning', ['a'])];
    const out = repairPlanGraph(input);
    expect(out.resources.map((r) => r.dependsOn)).toEqual([[], ['a']]);
    expect(out.notes).toEqual(['plan: dropped the dependency of "a" on unknown resource "ghost"']);
    expect(input[0]!.dependsOn).toEqual(['ghost']); // the input is not changed in place
  });

  it('breaks cycles by dropping back-edges in plan order, deterministically', () => {
    const two = repairPlanGraph([res('a', 'aws_s3_bucket', ['b']), res('b', 'aws_s3_bucket', ['a'])]);
    expect(two.resources.map((r) => [r.id, r.dependsOn])).toEqual([
      ['a', ['b']],
      ['b', []],
    ]);
    expect(two.notes).toEqual(['plan: broke a dependency cycle by dropping "b" → "a"']);
    expect(planLevels(two.resources)).toEqual({ levels: [['b'], ['a']] });

    const three = repairPlanGraph([
      res('a', 'aws_vpc', ['c']),
      res('b', 'aws_subnet', ['a']),
      res('c', 'aws_subnet', ['b', 'c']),
    ]);
    expect(three.notes).toEqual([
      'plan: dropped the self-dependency of "c"',
      'plan: broke a dependency cycle by dropping "b" → "a"',
    ]);
    expect(planLevels(three.resources)).toEqual({ levels: [['b'], ['c'], ['a']] });
  });

  it('leaves a valid plan as it is', () => {
    const plan = keywordPlan(README_REQUEST)!;
    expect(repairPlanGraph(plan)).toEqual({ resources: plan, notes: [] });
  });
});

describe('default resource bodies', () => {
  it('render the README plan as files the HCL parser and the static checks accept', async () => {
    const plan = keywordPlan(README_REQUEST)!;
    const files = filesOf(plan);
    expect(await staticValidate(files)).toEqual([]);
    const main = await parse('main.tf', files['main.tf']!);
    const cdn = main.resource.aws_cloudfront_distribution.cdn[0];
    expect(cdn.origin[0].domain_name).toBe('${aws_s3_bucket.site.bucket_regional_domain_name}');
    expect(cdn.origin[0].origin_access_control_id).toBe('${aws_cloudfront_origin_access_control.site_oac.id}');
    expect(cdn.restrictions[0].geo_restriction[0].restriction_type).toBe('none');
    const policy = main.resource.aws_s3_bucket_policy.site_policy[0].policy as string;
    expect(policy).toContain('cloudfront.amazonaws.com');
    expect(policy).toContain('${aws_cloudfront_distribution.cdn.arn}');
  });

  it('render larger keyword plans cleanly too', async () => {
    for (const text of [
      'a serverless REST API with a DynamoDB table and an SQS queue',
      'containers on ECS behind a load balancer with postgres',
      'an EC2 server in a VPC with redis, logs, a KMS key and secrets',
      'a static website on S3 behind CloudFront with a route53 domain',
    ]) {
      const plan = keywordPlan(text)!;
      expect({ text, diagnostics: await staticValidate(filesOf(plan)) }).toEqual({ text, diagnostics: [] });
    }
  });

  it('give every known type a body that stands alone (a missing dependency becomes a declared variable)', async () => {
    for (const type of AWS_RESOURCE_TYPES) {
      const files = filesOf([res('thing', type)]);
      expect({ type, diagnostics: await staticValidate(files) }).toEqual({ type, diagnostics: [] });
    }
    const versioning = filesOf([res('v', 'aws_s3_bucket_versioning')]);
    expect(versioning['variables.tf']).toContain('variable "v_bucket"');
    expect(versioning['main.tf']).toContain('bucket = var.v_bucket');
  });

  it('slug makes AWS-style names', () => {
    expect(slug('My_Site')).toBe('my-site');
    expect(slug('1st')).toBe('r-1st');
    expect(slug('a'.repeat(50), 10)).toBe('aaaaaaaaaa');
  });
});

describe('route decision', () => {
  it('infrastructure words decide for infrastructure over the model; otherwise the model, else keywords', () => {
    const invalid = { category: 'invalid' as const, reply: 'I cannot help.' };
    expect(routeDecision(invalid, 'A static website on S3 behind CloudFront')).toEqual({
      category: 'infrastructure',
      reply: '',
      overridden: true,
    });
    expect(routeDecision(invalid, 'What is the capital of France?')).toEqual({ ...invalid, overridden: false });
    const infra = { category: 'infrastructure' as const, reply: '' };
    expect(routeDecision(infra, 'somewhere to host my app')).toEqual({ ...infra, overridden: false });
    expect(routeDecision(undefined, 'Write me a poem').category).toBe('invalid');
  });
});
