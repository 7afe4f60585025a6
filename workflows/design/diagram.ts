/**
 * The Mermaid diagram of a design: one node per planned resource (its Terraform address), one edge per
 * dependency (`A --> B`: A depends on B), grouped by service. Pure, workflow-safe.
 */
import type { PlannedResource } from '../../contracts/design';

const nodeId = (r: PlannedResource) => `r_${r.id.replace(/[^A-Za-z0-9_]/g, '_')}`;
const label = (s: string) => s.replace(/["<>]/g, '');

/** `flowchart LR` of the resources and their dependencies; '' when there are none. */
export function designDiagram(resources: PlannedResource[]): string {
  if (resources.length === 0) return '';
  const ids = new Set(resources.map((r) => r.id));
  const lines = ['flowchart LR'];
  const groups = new Map<string, PlannedResource[]>();
  for (const r of resources) {
    const service = r.type.replace(/^aws_/, '').split('_')[0] ?? 'other';
    groups.set(service, [...(groups.get(service) ?? []), r]);
  }
  for (const [service, members] of groups) {
    lines.push(`  subgraph ${service}`);
    for (const r of members) lines.push(`    ${nodeId(r)}["${label(`${r.type}.${r.name}`)}"]`);
    lines.push('  end');
  }
  for (const r of resources) {
    for (const d of r.dependsOn)
      if (ids.has(d) && d !== r.id) lines.push(`  ${nodeId(r)} --> r_${d.replace(/[^A-Za-z0-9_]/g, '_')}`);
  }
  return lines.join('\n');
}
