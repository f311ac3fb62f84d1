// Prints the final "N passed, N failed" line of `npm test` and sets the exit status.
import { existsSync, readFileSync } from "node:fs";

const [file, checksPassed, checksFailed, vitestStatus, tallyFile] = process.argv.slice(2);
let passed = Number(checksPassed);
let failed = Number(checksFailed);

if (existsSync(file)) {
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  if (report.numPendingTests + report.numTodoTests > 0) {
    console.log(`skipped: ${report.numPendingTests}, todo: ${report.numTodoTests}`);
  }
  if (report.numTotalTests === 0) {
    console.log("vitest ran no tests");
    failed += 1;
  }
  // A suite that fails to load has no test results: count it as a failure.
  const brokenSuites = report.testResults.filter(
    (s) => s.status === "failed" && s.assertionResults.length === 0,
  );
  for (const suite of brokenSuites)
    console.log(`suite failed to run: ${suite.name}: ${suite.message}`);
  failed += brokenSuites.length;
} else {
  console.log(`vitest wrote no report (${file})`);
  failed += 1;
}
if (Number(vitestStatus) !== 0 && failed === 0) failed += 1;

// The adversarial suite's one line (tests/adversarial/tally.ts), when it ran.
if (tallyFile !== undefined && existsSync(tallyFile)) {
  const parts = readFileSync(tallyFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  const sum = (f) => parts.reduce((n, p) => n + f(p), 0);
  console.log(
    `adversarial suite: ${sum((p) => p.cases).toLocaleString("en")} hostile cases in ${parts.length} parts, ` +
      `${sum((p) => (p.crashed ? 1 : 0))} crashes, ${sum((p) => (p.leaked ? 1 : 0))} leaks`,
  );
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
