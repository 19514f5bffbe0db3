// Parse Mermaid blocks with Mermaid's own parser (the one GitHub and JupyterLab render with).
// stdin: a JSON list of diagram texts. stdout: a JSON list, null for a block that parses, else
// the parser's message. argv[2]: the node_modules folder that scripts/provision.sh --test filled.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.argv[2] + '/');
const load = (name) => import(pathToFileURL(require.resolve(name)).href);
// Flowcharts sanitize labels with DOMPurify, which needs a window: a jsdom one, no browser.
const { JSDOM } = await load('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await load('mermaid');

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    await mermaid.parse(text);
    results.push(null);
  } catch (e) {
    results.push(String(e && e.message ? e.message : e));
  }
}
process.stdout.write(JSON.stringify(results));
