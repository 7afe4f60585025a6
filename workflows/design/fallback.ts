/**
 * Deterministic fallbacks of the design graph, used when the model's structured answer is still unusable
 * after one repair request: route by keywords, requirements by keywords, a plan built from keywords of the
 * request, and the deterministic repair of a plan's dependency graph (unknown edges dropped, cycles broken).
 * Pure functions of their input, so a replay takes the same path. Workflow-safe: no I/O.
 */
import type { AwsResourceType } from './catalog';
import { MAX_PLAN_RESOURCES } from './schemas';
import type { PlannedResource } from '../../contracts/design';

/** Words that make a request an infrastructure request for the keyword router. */
const INFRA_WORDS =
  /\b(aws|s3|buckets?|cloudfront|cdn|vpc|subnets?|lambdas?|serverless|databases?|db|rds|postgres(ql)?|mysql|dynamo(db)?|terraform|web ?sites?|static site|api|apis|gateway|servers?|ec2|instances?|vms?|containers?|docker|ecs|fargate|kubernetes|k8s|eks|load ?balancers?|alb|queues?|sqs|sns|topics?|redis|elasticache|cache|dns|route ?53|domains?|cloud|infrastructure|network(ing)?|storage|hosting|host|deploy(ment)?|iam|kms|encryption|backups?)\b/i;

export const KEYWORD_INVALID_REPLY =
  'I can only help design cloud infrastructure (for example: "an S3 bucket with versioning in eu-west-1").';

/** The route fallback: infrastructure words → `infrastructure`, anything else → `invalid`. */
export function keywordRoute(request: string): { category: 'infrastructure' | 'invalid'; reply: string } {
  return INFRA_WORDS.test(request)
    ? { category: 'infrastructure', reply: '' }
    : { category: 'invalid', reply: KEYWORD_INVALID_REPLY };
}

/**
 * The route decision from the model's answer and the request's words: infrastructure words decide for
 * `infrastructure` whatever the model said (both small models called most infrastructure requests "invalid");
 * without them the model decides; without a usable answer, the keywords. `overridden` when the words won.
 */
export function routeDecision<C extends string>(
  model: { category: C; reply: string } | undefined,
  request: string,
): { category: C | 'infrastructure' | 'invalid'; reply: string; overridden: boolean } {
  const words = keywordRoute(request);
  if (!model) return { ...words, overridden: false };
  if (words.category === 'infrastructure' && model.category !== 'infrastructure') return { ...words, overridden: true };
  return { ...model, overridden: false };
}

const REGION_NAMES: [RegExp, string][] = [
  [/\bseoul\b/i, 'ap-northeast-2'],
  [/\btokyo\b/i, 'ap-northeast-1'],
  [/\bsingapore\b/i, 'ap-southeast-1'],
  [/\bsydney\b/i, 'ap-southeast-2'],
  [/\bmumbai\b/i, 'ap-south-1'],
  [/\bfrankfurt\b/i, 'eu-central-1'],
  [/\bireland\b/i, 'eu-west-1'],
  [/\blondon\b/i, 'eu-west-2'],
  [/\bparis\b/i, 'eu-west-3'],
  [/\bstockholm\b/i, 'eu-north-1'],
  [/\b(n(orth(ern)?)?\.? virginia)\b/i, 'us-east-1'],
  [/\bohio\b/i, 'us-east-2'],
  [/\boregon\b/i, 'us-west-2'],
  [/\bcanada\b/i, 'ca-central-1'],
  [/\bs[aã]o paulo\b/i, 'sa-east-1'],
];

/** The gather fallback: what the text itself states (region, environment, data stores); never asks. */
export function keywordRequirements(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const region = /\b[a-z]{2}(-gov)?-(north|south|east|west|central|northeast|southeast|northwest|southwest)-\d\b/i.exec(
    text,
  )?.[0];
  const named = REGION_NAMES.find(([re]) => re.test(text))?.[1];
  if (region ?? named) out.region = (region ?? named)!.toLowerCase();
  if (/\b(prod|production)\b/i.test(text)) out.environment = 'prod';
  else if (/\b(staging|stage)\b/i.test(text)) out.environment = 'staging';
  else if (/\b(dev|development|test(ing)?)\b/i.test(text)) out.environment = 'dev';
  const stores = [
    [/\bs3|buckets?\b/i, 'S3'],
    [/\bpostgres(ql)?\b/i, 'PostgreSQL'],
    [/\bmysql\b/i, 'MySQL'],
    [/\bdynamo(db)?\b/i, 'DynamoDB'],
    [/\bredis\b/i, 'Redis'],
  ]
    .filter(([re]) => (re as RegExp).test(text))
    .map(([, name]) => name as string);
  if (stores.length) out.dataStores = stores.join(', ');
  return out;
}

type Spec = [id: string, type: AwsResourceType, dependsOn: string[], requirements: string];

/**
 * The plan fallback: resources for what the request names, with their dependencies. "A static website on S3
 * behind CloudFront" → a private bucket, its public access block, an origin access control, the distribution
 * and the bucket policy that lets only that distribution read. Undefined when the request names nothing
 * this table knows.
 */
export function keywordPlan(text: string, opts: { kms?: boolean } = {}): PlannedResource[] | undefined {
  const has = (re: RegExp) => re.test(text);
  const website = has(/\b(web ?sites?|static site|cloudfront|cdn|frontend|spa|landing page)\b/i);
  const bucket = has(/\b(s3|buckets?|object storage|file storage|uploads?|backups?)\b/i);
  const versioning = has(/\bversion(ing|ed)?\b/i);
  const encryption = has(/\b(encrypt(ed|ion)?|kms)\b/i);
  // DESIGN_PLAN_PARTS_PATCH: a KMS key the request names is planned, and what it encrypts uses it.
  const kmsKey = Boolean(opts.kms) && has(/\bkms\b/i);
  const api = has(/\b(apis?|rest|http endpoints?|api gateway)\b/i);
  const lambda = has(/\b(lambdas?|serverless|functions?)\b/i);
  const containers = has(/\b(ecs|fargate|containers?|docker)\b/i);
  const lb = has(/\b(load ?balanc(er|ed|ing)|alb|elb)\b/i);
  const vm = has(/\b(ec2|vms?|virtual machines?|instances?|servers?)\b/i) && !containers;
  const sql = has(/\b(databases?|postgres(ql)?|mysql|maria ?db|rds|sql)\b/i) && !has(/\bnosql\b/i);
  const dynamo = has(/\b(dynamo(db)?|nosql|key-value)\b/i);
  const cache = has(/\b(redis|elasticache|memcached)\b/i);
  const queue = has(/\b(sqs|queues?)\b/i);
  const topic = has(/\b(sns|topics?|notifications?|pub\/?sub)\b/i);
  const dns = has(/\b(route ?53|dns|domains?)\b/i);
  const logs = has(/\b(logs?|logging|cloudwatch)\b/i);
  const secrets = has(/\b(secrets?|secrets manager)\b/i);
  const network = has(/\b(vpc|network(ing)?|subnets?)\b/i) || containers || sql || cache || lb || vm;

  const specs: Spec[] = [];
  if (kmsKey) specs.push(['key', 'aws_kms_key', [], 'The encryption key']);
  if (website) {
    specs.push(
      ['site', 'aws_s3_bucket', [], 'Private bucket holding the static website files'],
      ['site_public_access', 'aws_s3_bucket_public_access_block', ['site'], 'Blocks all public access to the bucket'],
      ['site_oac', 'aws_cloudfront_origin_access_control', [], 'Lets CloudFront sign its requests to the bucket'],
      ['cdn', 'aws_cloudfront_distribution', ['site', 'site_oac'], 'Serves the website over HTTPS from the bucket'],
      ['site_policy', 'aws_s3_bucket_policy', ['site', 'cdn'], 'Allows only the distribution to read the bucket'],
    );
    if (dns) {
      specs.push(
        ['zone', 'aws_route53_zone', [], 'The DNS zone of the domain'],
        ['site_record', 'aws_route53_record', ['zone', 'cdn'], 'Points the domain at the distribution'],
      );
    }
  } else if (bucket || (!api && !lambda && !containers && !vm && !sql && !dynamo && has(/\bstorage\b/i))) {
    specs.push(
      ['data', 'aws_s3_bucket', [], 'The data bucket'],
      ['data_public_access', 'aws_s3_bucket_public_access_block', ['data'], 'Blocks all public access'],
    );
    if (versioning) specs.push(['data_versioning', 'aws_s3_bucket_versioning', ['data'], 'Keeps object versions']);
    if (encryption) {
      specs.push([
        'data_encryption',
        'aws_s3_bucket_server_side_encryption_configuration',
        kmsKey ? ['data', 'key'] : ['data'],
        'Encrypts at rest',
      ]);
    }
  }
  if (network) {
    specs.push(
      ['vpc', 'aws_vpc', [], 'The private network'],
      ['subnet_a', 'aws_subnet', ['vpc'], 'First subnet'],
      ['subnet_b', 'aws_subnet', ['vpc'], 'Second subnet, another address range'],
    );
  }
  const subnets = network ? ['subnet_a', 'subnet_b'] : [];
  if (dynamo) specs.push(['table', 'aws_dynamodb_table', kmsKey ? ['key'] : [], 'The key-value table']);
  if (queue) specs.push(['queue', 'aws_sqs_queue', [], 'The work queue']);
  if (topic) {
    specs.push(['topic', 'aws_sns_topic', [], 'The notification topic']);
    if (queue) specs.push(['topic_queue', 'aws_sns_topic_subscription', ['topic', 'queue'], 'Delivers to the queue']);
  }
  if (lambda || (api && !containers && !vm)) {
    const data = [...(dynamo ? ['table'] : []), ...(queue ? ['queue'] : [])];
    specs.push(
      ['fn_role', 'aws_iam_role', [], 'The role the function runs as'],
      ['fn', 'aws_lambda_function', ['fn_role', ...data], 'The function'],
    );
    if (api) {
      specs.push(
        ['api', 'aws_apigatewayv2_api', [], 'The HTTP API'],
        ['api_integration', 'aws_apigatewayv2_integration', ['api', 'fn'], 'Sends requests to the function'],
        ['api_route', 'aws_apigatewayv2_route', ['api', 'api_integration'], 'Routes every path to the integration'],
        ['api_stage', 'aws_apigatewayv2_stage', ['api'], 'The default stage, deployed automatically'],
        ['api_permission', 'aws_lambda_permission', ['fn', 'api'], 'Lets the API invoke the function'],
      );
    }
  }
  if (containers) {
    specs.push(
      ['app_sg', 'aws_security_group', ['vpc'], 'Traffic rules of the service'],
      ['cluster', 'aws_ecs_cluster', [], 'The container cluster'],
      ['task_role', 'aws_iam_role', [], 'The task execution role'],
      ['task', 'aws_ecs_task_definition', ['task_role'], 'The container and its resources'],
    );
    if (lb) {
      specs.push(
        ['lb', 'aws_lb', [...subnets, 'app_sg'], 'The public load balancer'],
        ['tg', 'aws_lb_target_group', ['vpc'], 'The containers behind the load balancer'],
        ['listener', 'aws_lb_listener', ['lb', 'tg'], 'Forwards HTTP to the target group'],
      );
    }
    specs.push([
      'service',
      'aws_ecs_service',
      ['cluster', 'task', ...subnets, 'app_sg', ...(lb ? ['tg'] : [])],
      'The service',
    ]);
  } else if (vm) {
    specs.push(
      ['app_sg', 'aws_security_group', ['vpc'], 'Traffic rules of the server'],
      ['server', 'aws_instance', ['subnet_a', 'app_sg'], 'The server'],
    );
  }
  if (sql) {
    specs.push(
      ['db_sg', 'aws_security_group', ['vpc'], 'Traffic rules of the database'],
      ['db_subnets', 'aws_db_subnet_group', subnets, 'Subnets of the database'],
      [
        'db',
        'aws_db_instance',
        ['db_subnets', 'db_sg'],
        has(/mysql|maria/i) ? 'A MySQL database' : 'A PostgreSQL database',
      ],
    );
  }
  if (cache) {
    specs.push(
      ['cache_subnets', 'aws_elasticache_subnet_group', subnets, 'Subnets of the cache'],
      ['cache', 'aws_elasticache_cluster', ['cache_subnets'], 'A Redis cache'],
    );
  }
  if (logs) specs.push(['logs', 'aws_cloudwatch_log_group', [], 'Application logs, kept 30 days']);
  if (secrets) specs.push(['secret', 'aws_secretsmanager_secret', [], 'Application secrets']);
  if (specs.length === 0) return undefined;

  // Keep the first MAX_PLAN_RESOURCES; every dependency points at an earlier spec, so none dangles.
  const kept = specs.slice(0, MAX_PLAN_RESOURCES);
  const ids = new Set(kept.map(([id]) => id));
  return kept.map(([id, type, dependsOn, requirements]) => ({
    id,
    type,
    name: id,
    dependsOn: dependsOn.filter((d) => ids.has(d)),
    requirements,
  }));
}

/**
 * Repairs a plan's dependency graph without asking anyone: a dependency on an id the plan does not have is
 * dropped; then a depth-first walk in plan order drops every back-edge, which leaves no cycle. Each dropped
 * edge is one note. The resources are copied, never changed in place.
 */
export function repairPlanGraph(resources: PlannedResource[]): { resources: PlannedResource[]; notes: string[] } {
  const notes: string[] = [];
  const ids = new Set(resources.map((r) => r.id));
  const out = resources.map((r) => {
    const dependsOn: string[] = [];
    for (const d of r.dependsOn) {
      if (d === r.id) notes.push(`plan: dropped the self-dependency of "${r.id}"`);
      else if (!ids.has(d)) notes.push(`plan: dropped the dependency of "${r.id}" on unknown resource "${d}"`);
      else if (!dependsOn.includes(d)) dependsOn.push(d);
    }
    return { ...r, dependsOn };
  });
  const byId = new Map(out.map((r) => [r.id, r]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (r: PlannedResource) => {
    state.set(r.id, 'visiting');
    for (const d of [...r.dependsOn]) {
      const s = state.get(d);
      if (s === 'visiting') {
        r.dependsOn = r.dependsOn.filter((x) => x !== d);
        notes.push(`plan: broke a dependency cycle by dropping "${r.id}" → "${d}"`);
      } else if (s === undefined) {
        visit(byId.get(d)!);
      }
    }
    state.set(r.id, 'done');
  };
  for (const r of out) if (!state.has(r.id)) visit(r);
  return { resources: out, notes };
}

/** Services a request names in so many words, and the resource type each one means. */
const NAMED_TYPES: readonly [RegExp, string][] = [
  [/\bcache\s?polic(y|ies)\b/i, 'aws_cloudfront_cache_policy'],
  [/\bcloud\s?front\b|\bcdn\b/i, 'aws_cloudfront_distribution'],
  [/\bs3\b|\bbuckets?\b/i, 'aws_s3_bucket'],
  [/\blambdas?\b/i, 'aws_lambda_function'],
  [/\bdynamo(db)?\b/i, 'aws_dynamodb_table'],
  [/\brds\b|\bpostgres(ql)?\b|\bmysql\b/i, 'aws_db_instance'],
  [/\bvpc\b/i, 'aws_vpc'],
  [/\bsqs\b|\bqueues?\b/i, 'aws_sqs_queue'],
  [/\bsns\b/i, 'aws_sns_topic'],
  [/\bload\s?balancer\b|\balb\b/i, 'aws_lb'],
];

/**
 * The parts a request names besides its services (DESIGN_PLAN_PARTS_PATCH): "an EC2 web server in a public subnet
 * with a security group" names three resources, and "a bucket with versioning" two. Each is checked only where the
 * keyword plan has that type for the same words (it has versioning only for a bucket, a security group only next
 * to a server, containers or a database), so a part the keyword plan would not add never replaces a plan.
 */
const NAMED_PARTS: readonly [RegExp, string][] = [
  [/\bversion(ing|ed)\b/i, 'aws_s3_bucket_versioning'],
  [/\bencrypt(ed|ion)?\b/i, 'aws_s3_bucket_server_side_encryption_configuration'],
  [/\bsecurity\s?groups?\b|\bfirewall\b/i, 'aws_security_group'],
  [/\bsubnets?\b/i, 'aws_subnet'],
  [/\bec2\b|\bvms?\b|\bvirtual machines?\b/i, 'aws_instance'],
  [/\becs\b|\bfargate\b/i, 'aws_ecs_service'],
  [/\bapi\s?gateway\b/i, 'aws_apigatewayv2_api'],
  [/\bredis\b|\belasticache\b/i, 'aws_elasticache_cluster'],
  [/\blog\s?groups?\b|\bcloudwatch\b/i, 'aws_cloudwatch_log_group'],
  [/\biam\s?roles?\b/i, 'aws_iam_role'],
  [/\bsecrets?\s?manager\b/i, 'aws_secretsmanager_secret'],
  [/\broute\s?53\b/i, 'aws_route53_zone'],
  [/\bkms\b/i, 'aws_kms_key'],
];

/**
 * The resource types the request's words name directly (not what they need besides); with `parts`, also the
 * parts it names (NAMED_PARTS).
 */
export function namedTypes(text: string, opts: { parts?: boolean } = {}): string[] {
  const table = opts.parts ? [...NAMED_TYPES, ...NAMED_PARTS] : NAMED_TYPES;
  return [...new Set(table.filter(([re]) => re.test(text)).map(([, type]) => type))];
}
