/**
 * A design's Mermaid diagram rendered to SVG in Node, without a browser: beautiful-mermaid (pure JS layout with
 * elkjs, no DOM). The package is ESM-only and this project is CommonJS on Node 20 (no `require` of ESM), so the
 * render runs in a short child `node` process that imports it: the text goes in on stdin, the SVG comes out.
 */
import { execFile } from 'node:child_process';

const SCRIPT = [
  "import { renderMermaidSVG } from 'beautiful-mermaid';",
  "let src = ''; process.stdin.setEncoding('utf8');",
  'for await (const c of process.stdin) src += c;',
  'process.stdout.write(renderMermaidSVG(src));',
].join('\n');

/** The SVG of a Mermaid flowchart; rejects when the text does not parse or the render takes too long. */
export function renderDiagramSvg(mermaid: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['--input-type=module', '-e', SCRIPT],
      { cwd: __dirname, timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err || !stdout.startsWith('<svg')) {
          reject(new Error(`diagram render failed: ${String(stderr || err?.message || 'no SVG').slice(0, 300)}`));
        } else resolve(stdout);
      },
    );
    child.stdin?.end(mermaid);
  });
}
