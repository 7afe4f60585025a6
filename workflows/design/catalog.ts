/**
 * The AWS resource types the design generator knows, each with a deterministic default body. The list is the
 * `type` enum of the plan schema (a small model picks a type, it never spells one), and the default body is
 * what `generate` renders when the model's description of a resource is unusable. Defaults reference only
 * the resource's planned dependencies (or a declared variable), so the combined module always passes the
 * static checks. Pure workflow code: no I/O.
 */
import type { GeneratedBlock, GeneratedResource, PlannedResource } from '../../contracts/design';

export const AWS_RESOURCE_TYPES = [
  // storage and static sites
  'aws_s3_bucket',
  'aws_s3_bucket_versioning',
  'aws_s3_bucket_public_access_block',
  'aws_s3_bucket_server_side_encryption_configuration',
  'aws_s3_bucket_website_configuration',
  'aws_s3_bucket_policy',
  'aws_cloudfront_origin_access_control',
  'aws_cloudfront_cache_policy',
  'aws_cloudfront_distribution',
  'aws_route53_zone',
  'aws_route53_record',
  'aws_acm_certificate',
  // network
  'aws_vpc',
  'aws_subnet',
  'aws_internet_gateway',
  'aws_eip',
  'aws_nat_gateway',
  'aws_route_table',
  'aws_route_table_association',
  'aws_security_group',
  // compute
  'aws_instance',
  'aws_launch_template',
  'aws_autoscaling_group',
  'aws_lb',
  'aws_lb_target_group',
  'aws_lb_listener',
  'aws_ecs_cluster',
  'aws_ecs_task_definition',
  'aws_ecs_service',
  'aws_ecr_repository',
  // serverless and identity
  'aws_iam_role',
  'aws_iam_policy',
  'aws_iam_role_policy_attachment',
  'aws_lambda_function',
  'aws_lambda_permission',
  'aws_apigatewayv2_api',
  'aws_apigatewayv2_integration',
  'aws_apigatewayv2_route',
  'aws_apigatewayv2_stage',
  // data
  'aws_dynamodb_table',
  'aws_db_subnet_group',
  'aws_db_instance',
  'aws_elasticache_subnet_group',
  'aws_elasticache_cluster',
  'aws_sqs_queue',
  'aws_sns_topic',
  'aws_sns_topic_subscription',
  // operations
  'aws_cloudwatch_log_group',
  'aws_kms_key',
  'aws_secretsmanager_secret',
] as const;

export type AwsResourceType = (typeof AWS_RESOURCE_TYPES)[number];

export function isKnownType(type: string): type is AwsResourceType {
  return (AWS_RESOURCE_TYPES as readonly string[]).includes(type);
}

/** `my_site` → `my-site`: names AWS wants lowercase with hyphens (buckets, prefixes), at most `max` chars. */
export function slug(name: string, max = 32): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
  return /^[a-z]/.test(s) ? s : `r-${s || 'resource'}`.slice(0, max);
}

/** What a default body is built from: the resource, its resolved dependencies and the whole plan. */
class Ctx {
  readonly extra: string[] = [];
  readonly addr: string;
  constructor(
    readonly r: PlannedResource,
    readonly plan: PlannedResource[],
  ) {
    this.addr = `${r.type}.${r.name}`;
  }
  /** Dependencies of one of these types, in plan order. */
  deps(...types: string[]): PlannedResource[] {
    return this.r.dependsOn
      .map((id) => this.plan.find((p) => p.id === id))
      .filter((p): p is PlannedResource => Boolean(p && types.includes(p.type)));
  }
  dep(...types: string[]): PlannedResource | undefined {
    return this.deps(...types)[0];
  }
  /** `type.name.attr` of the first dependency of `types`, or a declared input variable when there is none. */
  ref(types: string | string[], attr: string, what: string): string {
    const d = this.dep(...(Array.isArray(types) ? types : [types]));
    return d ? `${d.type}.${d.name}.${attr}` : this.variable(what.replace(/\W+/g, '_'), `The ${what} for ${this.addr}`);
  }
  refs(types: string | string[], attr: string): string[] {
    return this.deps(...(Array.isArray(types) ? types : [types])).map((d) => `${d.type}.${d.name}.${attr}`);
  }
  /** Declares `variable "<resource name>_<name>"` (no default: the user supplies it) and returns its reference. */
  variable(name: string, description: string, type = 'string'): string {
    const v = `${this.r.name}_${name}`;
    this.extra.push(`variable "${v}" {\n  description = ${JSON.stringify(description)}\n  type        = ${type}\n}`);
    return `var.${v}`;
  }
  /** Resources of the plan that depend on this one. */
  dependents(): PlannedResource[] {
    return this.plan.filter((p) => p.dependsOn.includes(this.r.id));
  }
  /** Zero-based index of this resource among the plan's resources of its type (for CIDR blocks). */
  indexOfType(): number {
    return this.plan.filter((p) => p.type === this.r.type).findIndex((p) => p.id === this.r.id);
  }
}

const block = (type: string, attributes: Record<string, unknown>, blocks?: GeneratedBlock[]): GeneratedBlock => ({
  type,
  attributes,
  ...(blocks ? { blocks } : {}),
});

/** An IAM policy document as a JSON string; `${...}` references inside stay Terraform interpolations. */
const policy = (statements: Record<string, unknown>[]) =>
  JSON.stringify({ Version: '2012-10-17', Statement: statements });

const ssmAmi = (c: Ctx): string => {
  c.extra.push(
    `data "aws_ssm_parameter" "${c.r.name}_ami" {\n  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"\n}`,
  );
  return `data.aws_ssm_parameter.${c.r.name}_ami.value`;
};

const SUBNET_TYPES = ['aws_subnet'];
const listOr = (refs: string[], c: Ctx, what: string) => (refs.length ? refs : [c.variable(what, `A ${what}`)]);

const DEFAULTS: Record<AwsResourceType, (c: Ctx) => GeneratedResource> = {
  aws_s3_bucket: (c) => ({
    attributes: { bucket_prefix: `${slug(c.r.name, 30)}-`, force_destroy: false },
    outputs: [{ name: 'bucket', value: `${c.addr}.bucket` }],
  }),
  aws_s3_bucket_versioning: (c) => ({
    attributes: { bucket: c.ref('aws_s3_bucket', 'id', 'bucket') },
    blocks: [block('versioning_configuration', { status: 'Enabled' })],
  }),
  aws_s3_bucket_public_access_block: (c) => ({
    attributes: {
      bucket: c.ref('aws_s3_bucket', 'id', 'bucket'),
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    },
  }),
  aws_s3_bucket_server_side_encryption_configuration: (c) => {
    const kms = c.dep('aws_kms_key');
    return {
      attributes: { bucket: c.ref('aws_s3_bucket', 'id', 'bucket') },
      blocks: [
        block('rule', {}, [
          block(
            'apply_server_side_encryption_by_default',
            kms
              ? { sse_algorithm: 'aws:kms', kms_master_key_id: `${kms.type}.${kms.name}.arn` }
              : { sse_algorithm: 'AES256' },
          ),
        ]),
      ],
    };
  },
  aws_s3_bucket_website_configuration: (c) => ({
    attributes: { bucket: c.ref('aws_s3_bucket', 'id', 'bucket') },
    blocks: [block('index_document', { suffix: 'index.html' }), block('error_document', { key: 'error.html' })],
  }),
  aws_s3_bucket_policy: (c) => {
    const bucket = c.dep('aws_s3_bucket');
    const cdn = c.dep('aws_cloudfront_distribution');
    const arn = bucket ? `\${${bucket.type}.${bucket.name}.arn}` : '*';
    const statement = cdn
      ? {
          Sid: 'AllowCloudFrontRead',
          Effect: 'Allow',
          Principal: { Service: 'cloudfront.amazonaws.com' },
          Action: 's3:GetObject',
          Resource: `${arn}/*`,
          Condition: { StringEquals: { 'AWS:SourceArn': `\${${cdn.type}.${cdn.name}.arn}` } },
        }
      : {
          Sid: 'DenyInsecureTransport',
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:*',
          Resource: [arn, `${arn}/*`],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        };
    return { attributes: { bucket: c.ref('aws_s3_bucket', 'id', 'bucket'), policy: policy([statement]) } };
  },
  aws_cloudfront_origin_access_control: (c) => ({
    attributes: {
      name: slug(c.r.name, 64),
      description: `Origin access for ${c.r.name}`,
      origin_access_control_origin_type: 's3',
      signing_behavior: 'always',
      signing_protocol: 'sigv4',
    },
  }),
  aws_cloudfront_cache_policy: (c) => ({
    attributes: {
      name: slug(c.r.name, 64),
      comment: `Cache policy for ${c.r.name}`,
      default_ttl: 3600,
      max_ttl: 86400,
      min_ttl: 0,
    },
    blocks: [
      block('parameters_in_cache_key_and_forwarded_to_origin', { enable_accept_encoding_gzip: true }, [
        block('cookies_config', { cookie_behavior: 'none' }),
        block('headers_config', { header_behavior: 'none' }),
        block('query_strings_config', { query_string_behavior: 'none' }),
      ]),
    ],
  }),
  aws_cloudfront_distribution: (c) => {
    const bucket = c.dep('aws_s3_bucket');
    const lb = c.dep('aws_lb');
    const oac = c.dep('aws_cloudfront_origin_access_control');
    const cert = c.dep('aws_acm_certificate');
    const originId = bucket?.name ?? lb?.name ?? 'origin';
    const origin = bucket
      ? block('origin', {
          domain_name: `${bucket.type}.${bucket.name}.bucket_regional_domain_name`,
          origin_id: originId,
          ...(oac ? { origin_access_control_id: `${oac.type}.${oac.name}.id` } : {}),
        })
      : block(
          'origin',
          {
            domain_name: lb ? `${lb.type}.${lb.name}.dns_name` : c.variable('origin_domain', 'The origin domain name'),
            origin_id: originId,
          },
          [
            block('custom_origin_config', {
              http_port: 80,
              https_port: 443,
              origin_protocol_policy: lb ? 'http-only' : 'https-only',
              origin_ssl_protocols: ['TLSv1.2'],
            }),
          ],
        );
    return {
      attributes: { enabled: true, is_ipv6_enabled: true, ...(bucket ? { default_root_object: 'index.html' } : {}) },
      blocks: [
        origin,
        block('default_cache_behavior', {
          allowed_methods: ['GET', 'HEAD'],
          cached_methods: ['GET', 'HEAD'],
          target_origin_id: originId,
          viewer_protocol_policy: 'redirect-to-https',
          // The AWS-managed "CachingOptimized" cache policy.
          cache_policy_id: '658327ea-f89d-4fab-a63d-7e88639e58f6',
        }),
        block('restrictions', {}, [block('geo_restriction', { restriction_type: 'none' })]),
        block(
          'viewer_certificate',
          cert
            ? { acm_certificate_arn: `${cert.type}.${cert.name}.arn`, ssl_support_method: 'sni-only' }
            : { cloudfront_default_certificate: true },
        ),
      ],
      outputs: [{ name: 'domain_name', value: `${c.addr}.domain_name`, description: 'The CloudFront domain' }],
    };
  },
  aws_route53_zone: (c) => ({ attributes: { name: c.variable('domain', 'The domain name of the zone') } }),
  aws_route53_record: (c) => {
    const zone = c.dep('aws_route53_zone');
    const cdn = c.dep('aws_cloudfront_distribution');
    const lb = c.dep('aws_lb');
    const base = {
      zone_id: zone ? `${zone.type}.${zone.name}.zone_id` : c.variable('zone_id', 'The Route 53 zone id'),
      name: zone ? `${zone.type}.${zone.name}.name` : c.variable('record_name', 'The record name'),
    };
    const target = cdn
      ? { name: `${cdn.type}.${cdn.name}.domain_name`, zone_id: `${cdn.type}.${cdn.name}.hosted_zone_id` }
      : lb
        ? { name: `${lb.type}.${lb.name}.dns_name`, zone_id: `${lb.type}.${lb.name}.zone_id` }
        : undefined;
    return target
      ? { attributes: { ...base, type: 'A' }, blocks: [block('alias', { ...target, evaluate_target_health: false })] }
      : {
          attributes: { ...base, type: 'CNAME', ttl: 300, records: [c.variable('target', 'The record target')] },
        };
  },
  aws_acm_certificate: (c) => {
    const zone = c.dep('aws_route53_zone');
    return {
      attributes: {
        domain_name: zone ? `${zone.type}.${zone.name}.name` : c.variable('domain', 'The certificate domain'),
        validation_method: 'DNS',
      },
    };
  },
  aws_vpc: (c) => ({
    attributes: { cidr_block: '10.0.0.0/16', enable_dns_support: true, enable_dns_hostnames: true },
    outputs: [{ name: 'id', value: `${c.addr}.id` }],
  }),
  aws_subnet: (c) => ({
    attributes: {
      vpc_id: c.ref('aws_vpc', 'id', 'vpc_id'),
      cidr_block: `10.0.${Math.max(0, c.indexOfType()) % 256}.0/24`,
      map_public_ip_on_launch: false,
    },
  }),
  aws_internet_gateway: (c) => ({ attributes: { vpc_id: c.ref('aws_vpc', 'id', 'vpc_id') } }),
  aws_eip: () => ({ attributes: { domain: 'vpc' } }),
  aws_nat_gateway: (c) => ({
    attributes: {
      allocation_id: c.ref('aws_eip', 'id', 'eip_allocation_id'),
      subnet_id: c.ref(SUBNET_TYPES, 'id', 'subnet_id'),
    },
  }),
  aws_route_table: (c) => {
    const igw = c.dep('aws_internet_gateway');
    const nat = c.dep('aws_nat_gateway');
    const routes = [
      ...(igw ? [block('route', { cidr_block: '0.0.0.0/0', gateway_id: `${igw.type}.${igw.name}.id` })] : []),
      ...(!igw && nat
        ? [block('route', { cidr_block: '0.0.0.0/0', nat_gateway_id: `${nat.type}.${nat.name}.id` })]
        : []),
    ];
    return { attributes: { vpc_id: c.ref('aws_vpc', 'id', 'vpc_id') }, ...(routes.length ? { blocks: routes } : {}) };
  },
  aws_route_table_association: (c) => ({
    attributes: {
      subnet_id: c.ref(SUBNET_TYPES, 'id', 'subnet_id'),
      route_table_id: c.ref('aws_route_table', 'id', 'route_table_id'),
    },
  }),
  aws_security_group: (c) => {
    const vpc = c.dep('aws_vpc');
    const fronted = c.dependents().some((d) => d.type === 'aws_lb');
    return {
      attributes: {
        name_prefix: `${slug(c.r.name, 30)}-`,
        description: `Managed by ainode: ${c.r.name}`,
        ...(vpc ? { vpc_id: `${vpc.type}.${vpc.name}.id` } : {}),
      },
      blocks: [
        ...(fronted
          ? [block('ingress', { from_port: 443, to_port: 443, protocol: 'tcp', cidr_blocks: ['0.0.0.0/0'] })]
          : []),
        block('egress', { from_port: 0, to_port: 0, protocol: '-1', cidr_blocks: ['0.0.0.0/0'] }),
      ],
    };
  },
  aws_instance: (c) => {
    const subnet = c.dep(...SUBNET_TYPES);
    const sgs = c.refs('aws_security_group', 'id');
    return {
      attributes: {
        ami: ssmAmi(c),
        instance_type: 't3.micro',
        ...(subnet ? { subnet_id: `${subnet.type}.${subnet.name}.id` } : {}),
        ...(sgs.length ? { vpc_security_group_ids: sgs } : {}),
      },
      blocks: [block('metadata_options', { http_tokens: 'required' })],
    };
  },
  aws_launch_template: (c) => {
    const sgs = c.refs('aws_security_group', 'id');
    return {
      attributes: {
        name_prefix: `${slug(c.r.name, 30)}-`,
        image_id: ssmAmi(c),
        instance_type: 't3.micro',
        ...(sgs.length ? { vpc_security_group_ids: sgs } : {}),
      },
    };
  },
  aws_autoscaling_group: (c) => {
    const tgs = c.refs('aws_lb_target_group', 'arn');
    return {
      attributes: {
        name_prefix: `${slug(c.r.name, 30)}-`,
        min_size: 1,
        max_size: 2,
        desired_capacity: 1,
        vpc_zone_identifier: listOr(c.refs(SUBNET_TYPES, 'id'), c, 'subnet_id'),
        ...(tgs.length ? { target_group_arns: tgs } : {}),
      },
      blocks: [
        block('launch_template', {
          id: c.ref('aws_launch_template', 'id', 'launch_template_id'),
          version: '$Latest',
        }),
      ],
    };
  },
  aws_lb: (c) => {
    const sgs = c.refs('aws_security_group', 'id');
    return {
      attributes: {
        name: slug(c.r.name, 32),
        load_balancer_type: 'application',
        internal: false,
        subnets: listOr(c.refs(SUBNET_TYPES, 'id'), c, 'subnet_id'),
        ...(sgs.length ? { security_groups: sgs } : {}),
      },
      outputs: [{ name: 'dns_name', value: `${c.addr}.dns_name` }],
    };
  },
  aws_lb_target_group: (c) => {
    const vpc = c.dep('aws_vpc');
    const forContainers = c.dependents().some((d) => d.type === 'aws_ecs_service');
    return {
      attributes: {
        name: slug(c.r.name, 32),
        port: 80,
        protocol: 'HTTP',
        target_type: forContainers ? 'ip' : 'instance',
        ...(vpc ? { vpc_id: `${vpc.type}.${vpc.name}.id` } : {}),
      },
      blocks: [block('health_check', { path: '/' })],
    };
  },
  aws_lb_listener: (c) => {
    const tg = c.dep('aws_lb_target_group');
    return {
      attributes: { load_balancer_arn: c.ref('aws_lb', 'arn', 'load_balancer_arn'), port: 80, protocol: 'HTTP' },
      blocks: [
        tg
          ? block('default_action', { type: 'forward', target_group_arn: `${tg.type}.${tg.name}.arn` })
          : block('default_action', { type: 'fixed-response' }, [
              block('fixed_response', { content_type: 'text/plain', status_code: '200', message_body: 'ok' }),
            ]),
      ],
    };
  },
  aws_ecs_cluster: (c) => ({
    attributes: { name: slug(c.r.name, 64) },
    blocks: [block('setting', { name: 'containerInsights', value: 'enabled' })],
  }),
  aws_ecs_task_definition: (c) => {
    const role = c.dep('aws_iam_role');
    const repo = c.dep('aws_ecr_repository');
    const image = repo ? `\${${repo.type}.${repo.name}.repository_url}:latest` : 'public.ecr.aws/nginx/nginx:stable';
    return {
      attributes: {
        family: slug(c.r.name, 64),
        requires_compatibilities: ['FARGATE'],
        network_mode: 'awsvpc',
        cpu: '256',
        memory: '512',
        ...(role ? { execution_role_arn: `${role.type}.${role.name}.arn` } : {}),
        container_definitions: JSON.stringify([
          { name: slug(c.r.name), image, essential: true, portMappings: [{ containerPort: 80, protocol: 'tcp' }] },
        ]),
      },
    };
  },
  aws_ecs_service: (c) => {
    const td = c.dep('aws_ecs_task_definition');
    const tg = c.dep('aws_lb_target_group');
    const sgs = c.refs('aws_security_group', 'id');
    return {
      attributes: {
        name: slug(c.r.name, 64),
        cluster: c.ref('aws_ecs_cluster', 'id', 'cluster_id'),
        task_definition: td ? `${td.type}.${td.name}.arn` : c.variable('task_definition_arn', 'The task definition'),
        desired_count: 1,
        launch_type: 'FARGATE',
      },
      blocks: [
        block('network_configuration', {
          subnets: listOr(c.refs(SUBNET_TYPES, 'id'), c, 'subnet_id'),
          ...(sgs.length ? { security_groups: sgs } : {}),
          assign_public_ip: false,
        }),
        ...(tg
          ? [
              block('load_balancer', {
                target_group_arn: `${tg.type}.${tg.name}.arn`,
                container_name: slug(td?.name ?? c.r.name),
                container_port: 80,
              }),
            ]
          : []),
      ],
    };
  },
  aws_ecr_repository: (c) => ({
    attributes: { name: slug(c.r.name, 64), image_tag_mutability: 'IMMUTABLE' },
    blocks: [block('image_scanning_configuration', { scan_on_push: true })],
    outputs: [{ name: 'url', value: `${c.addr}.repository_url` }],
  }),
  aws_iam_role: (c) => {
    const users = c.dependents().map((d) => d.type);
    const service = users.some((t) => t === 'aws_ecs_task_definition' || t === 'aws_ecs_service')
      ? 'ecs-tasks.amazonaws.com'
      : users.some((t) => t === 'aws_instance' || t === 'aws_launch_template')
        ? 'ec2.amazonaws.com'
        : 'lambda.amazonaws.com';
    return {
      attributes: {
        name_prefix: `${slug(c.r.name, 30)}-`,
        assume_role_policy: policy([{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }]),
      },
    };
  },
  aws_iam_policy: (c) => {
    const statements: Record<string, unknown>[] = [];
    for (const b of c.deps('aws_s3_bucket')) {
      statements.push({
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject'],
        Resource: `\${${b.type}.${b.name}.arn}/*`,
      });
    }
    for (const t of c.deps('aws_dynamodb_table')) {
      statements.push({
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
        Resource: `\${${t.type}.${t.name}.arn}`,
      });
    }
    for (const q of c.deps('aws_sqs_queue')) {
      statements.push({
        Effect: 'Allow',
        Action: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'],
        Resource: `\${${q.type}.${q.name}.arn}`,
      });
    }
    if (statements.length === 0) {
      statements.push({ Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' });
    }
    return { attributes: { name_prefix: `${slug(c.r.name, 30)}-`, policy: policy(statements) } };
  },
  aws_iam_role_policy_attachment: (c) => {
    const p = c.dep('aws_iam_policy');
    return {
      attributes: {
        role: c.ref('aws_iam_role', 'name', 'role_name'),
        policy_arn: p ? `${p.type}.${p.name}.arn` : 'arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole',
      },
    };
  },
  aws_lambda_function: (c) => {
    const env: Record<string, string> = {};
    for (const b of c.deps('aws_s3_bucket')) env[`${b.name.toUpperCase()}_BUCKET`] = `${b.type}.${b.name}.bucket`;
    for (const t of c.deps('aws_dynamodb_table')) env[`${t.name.toUpperCase()}_TABLE`] = `${t.type}.${t.name}.name`;
    for (const q of c.deps('aws_sqs_queue')) env[`${q.name.toUpperCase()}_QUEUE_URL`] = `${q.type}.${q.name}.url`;
    return {
      attributes: {
        function_name: slug(c.r.name, 64),
        role: c.ref('aws_iam_role', 'arn', 'role_arn'),
        runtime: 'python3.12',
        handler: 'app.handler',
        filename: 'lambda.zip',
        timeout: 10,
        memory_size: 128,
      },
      ...(Object.keys(env).length ? { blocks: [block('environment', { variables: env })] } : {}),
      outputs: [{ name: 'arn', value: `${c.addr}.arn` }],
    };
  },
  aws_lambda_permission: (c) => {
    const api = c.dep('aws_apigatewayv2_api');
    return {
      attributes: {
        statement_id: 'AllowInvoke',
        action: 'lambda:InvokeFunction',
        function_name: c.ref('aws_lambda_function', 'function_name', 'function_name'),
        principal: 'apigateway.amazonaws.com',
        ...(api ? { source_arn: `\${${api.type}.${api.name}.execution_arn}/*/*` } : {}),
      },
    };
  },
  aws_apigatewayv2_api: (c) => ({
    attributes: { name: slug(c.r.name, 64), protocol_type: 'HTTP' },
    outputs: [{ name: 'endpoint', value: `${c.addr}.api_endpoint` }],
  }),
  aws_apigatewayv2_integration: (c) => ({
    attributes: {
      api_id: c.ref('aws_apigatewayv2_api', 'id', 'api_id'),
      integration_type: 'AWS_PROXY',
      integration_uri: c.ref('aws_lambda_function', 'invoke_arn', 'integration_uri'),
      payload_format_version: '2.0',
    },
  }),
  aws_apigatewayv2_route: (c) => {
    const integration = c.dep('aws_apigatewayv2_integration');
    return {
      attributes: {
        api_id: c.ref('aws_apigatewayv2_api', 'id', 'api_id'),
        route_key: 'ANY /{proxy+}',
        ...(integration ? { target: `integrations/\${${integration.type}.${integration.name}.id}` } : {}),
      },
    };
  },
  aws_apigatewayv2_stage: (c) => ({
    attributes: { api_id: c.ref('aws_apigatewayv2_api', 'id', 'api_id'), name: '$default', auto_deploy: true },
  }),
  aws_dynamodb_table: (c) => {
    const kms = c.dep('aws_kms_key');
    return {
      attributes: { name: slug(c.r.name, 64), billing_mode: 'PAY_PER_REQUEST', hash_key: 'id' },
      blocks: [
        block('attribute', { name: 'id', type: 'S' }),
        block('point_in_time_recovery', { enabled: true }),
        ...(kms
          ? [block('server_side_encryption', { enabled: true, kms_key_arn: `${kms.type}.${kms.name}.arn` })]
          : []),
      ],
    };
  },
  aws_db_subnet_group: (c) => ({
    attributes: {
      name_prefix: `${slug(c.r.name, 30)}-`,
      subnet_ids: listOr(c.refs(SUBNET_TYPES, 'id'), c, 'subnet_id'),
    },
  }),
  aws_db_instance: (c) => {
    const group = c.dep('aws_db_subnet_group');
    const sgs = c.refs('aws_security_group', 'id');
    const mysql = /mysql|maria/i.test(c.r.requirements);
    return {
      attributes: {
        identifier_prefix: `${slug(c.r.name, 30)}-`,
        engine: mysql ? 'mysql' : 'postgres',
        instance_class: 'db.t4g.micro',
        allocated_storage: 20,
        storage_encrypted: true,
        username: 'app',
        manage_master_user_password: true,
        skip_final_snapshot: true,
        ...(group ? { db_subnet_group_name: `${group.type}.${group.name}.name` } : {}),
        ...(sgs.length ? { vpc_security_group_ids: sgs } : {}),
      },
      outputs: [{ name: 'endpoint', value: `${c.addr}.endpoint` }],
    };
  },
  aws_elasticache_subnet_group: (c) => ({
    attributes: { name: slug(c.r.name, 40), subnet_ids: listOr(c.refs(SUBNET_TYPES, 'id'), c, 'subnet_id') },
  }),
  aws_elasticache_cluster: (c) => {
    const group = c.dep('aws_elasticache_subnet_group');
    const sgs = c.refs('aws_security_group', 'id');
    return {
      attributes: {
        cluster_id: slug(c.r.name, 40),
        engine: 'redis',
        node_type: 'cache.t4g.micro',
        num_cache_nodes: 1,
        ...(group ? { subnet_group_name: `${group.type}.${group.name}.name` } : {}),
        ...(sgs.length ? { security_group_ids: sgs } : {}),
      },
    };
  },
  aws_sqs_queue: (c) => ({
    attributes: {
      name_prefix: `${slug(c.r.name, 30)}-`,
      message_retention_seconds: 345600,
      sqs_managed_sse_enabled: true,
    },
  }),
  aws_sns_topic: (c) => ({ attributes: { name_prefix: `${slug(c.r.name, 30)}-` } }),
  aws_sns_topic_subscription: (c) => {
    const queue = c.dep('aws_sqs_queue');
    const fn = c.dep('aws_lambda_function');
    const [protocol, endpoint] = queue
      ? ['sqs', `${queue.type}.${queue.name}.arn`]
      : fn
        ? ['lambda', `${fn.type}.${fn.name}.arn`]
        : ['email', c.variable('email', 'The e-mail address to notify')];
    return { attributes: { topic_arn: c.ref('aws_sns_topic', 'arn', 'topic_arn'), protocol, endpoint } };
  },
  aws_cloudwatch_log_group: (c) => ({ attributes: { name: `/ainode/${slug(c.r.name, 64)}`, retention_in_days: 30 } }),
  aws_kms_key: (c) => ({
    attributes: { description: `Key for ${c.r.name}`, enable_key_rotation: true, deletion_window_in_days: 7 },
  }),
  aws_secretsmanager_secret: (c) => ({ attributes: { name_prefix: `${slug(c.r.name, 30)}-` } }),
};

/**
 * The deterministic description of a planned resource (what `generate` renders when the model's is unusable).
 * Unknown types get an empty body: still valid HCL, and the validator reports what it lacks.
 */
export function defaultResource(r: PlannedResource, plan: PlannedResource[]): GeneratedResource {
  if (!isKnownType(r.type)) return { attributes: {} };
  const c = new Ctx(r, plan);
  const gen = DEFAULTS[r.type](c);
  return c.extra.length ? { ...gen, extra: c.extra } : gen;
}
