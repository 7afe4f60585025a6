#!/usr/bin/env bash
# Rebuilds schemas/aws-provider.json.gz, the AWS provider schema the design checker and generator use
# (lib/terraform/schema.ts), from the prebuilt CDKTF AWS provider bindings on the npm registry: the package's
# jsii assembly (.jsii) is generated from `terraform providers schema -json` of hashicorp/aws, so it holds every
# resource's and data source's arguments, types, required flags and nested blocks. Run it to move to a newer
# provider (set AWS_PROVIDER_PACKAGE_VERSION), then commit the file. Not part of setup: the file is committed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${AWS_PROVIDER_PACKAGE_VERSION:-21.22.1}"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@cdktf/provider-aws@$VERSION" >/dev/null)
tar -xzf "$tmp"/cdktf-provider-aws-*.tgz -C "$tmp" package/.jsii
(cd "$ROOT" && npx tsx scripts/lib/aws-schema.ts "$tmp/package/.jsii" "$tmp/aws-provider.json")
mkdir -p "$ROOT/schemas"
gzip -9 -n -c "$tmp/aws-provider.json" >"$ROOT/schemas/aws-provider.json.gz"
echo "wrote schemas/aws-provider.json.gz"
