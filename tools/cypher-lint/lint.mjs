// Lints Cypher statements with Neo4j's own parser and semantic analysis
// (@neo4j-cypher/language-support, version pinned by package-lock.json).
//
// stdin:  {"schema": DbSchema, "versions": ["CYPHER 5", ...],
//          "queries": {"NAME": "statement" | {"text": "statement", "parameters": {...}}}}
// A query's own "parameters" replace the schema's, so that each statement is checked
// against exactly the parameters it declares.
// stdout: {"package": version, "node": version,
//          "results": {"NAME": {"CYPHER 5": [diagnostic, ...], ...}}}
// where a diagnostic is {"severity": "error" | "warning" | "info" | "hint",
// "line": n, "column": n, "message": text}. Exit status 0 whenever linting ran, whatever
// the diagnostics; 2 when the input is unusable. One process lints every statement.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allCypherVersions, lintCypherQuery } from '@neo4j-cypher/language-support';

const SEVERITY = { 1: 'error', 2: 'warning', 3: 'info', 4: 'hint' };

function fail(message) {
  process.stderr.write(`cypher-lint: ${message}\n`);
  process.exit(2);
}

let input;
try {
  input = JSON.parse(readFileSync(0, 'utf8'));
} catch (err) {
  fail(`stdin is not JSON: ${err.message}`);
}
const { schema = {}, queries = {}, versions = ['CYPHER 5'] } = input;
for (const version of versions) {
  if (!allCypherVersions.includes(version)) {
    fail(`unknown Cypher version '${version}'; known: ${allCypherVersions.join(', ')}`);
  }
}

const here = dirname(fileURLToPath(import.meta.url));
const pkg = JSON.parse(
  readFileSync(join(here, 'node_modules/@neo4j-cypher/language-support/package.json'), 'utf8'),
);
const results = {};
for (const [name, query] of Object.entries(queries)) {
  const text = typeof query === 'string' ? query : query.text;
  const parameters = typeof query === 'string' ? schema.parameters : query.parameters;
  if (typeof text !== 'string') fail(`query ${name} has no text`);
  results[name] = {};
  for (const version of versions) {
    const dbSchema = { ...schema, parameters: parameters ?? {}, defaultLanguage: version };
    const { diagnostics } = lintCypherQuery(text, dbSchema);
    results[name][version] = diagnostics.map((d) => ({
      severity: SEVERITY[d.severity] ?? String(d.severity),
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
      message: d.message,
    }));
  }
}
process.stdout.write(
  JSON.stringify({ package: pkg.version, node: process.version, versions, results }) + '\n',
);
