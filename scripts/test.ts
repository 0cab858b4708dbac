#!/usr/bin/env bun
/**
 * Runs every test (unit and lab) with bun's test runner and ends with the line `N passed, N failed`
 * (plus `, N skipped`). A skipped or todo test is not a pass: it makes the run fail.
 * Extra arguments are passed to `bun test` (a path or `-t PATTERN` to run a subset).
 */
import { existsSync, readFileSync, rmSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const report = `${root}dist/test-report.xml`;
rmSync(report, { force: true });
const extra = process.argv.slice(2);
const proc = Bun.spawn(
  [process.execPath, "test", "--timeout", "300000", "--reporter=junit", `--reporter-outfile=${report}`, ...(extra.length ? extra : ["test/"])],
  { cwd: root, stdout: "inherit", stderr: "inherit", stdin: "ignore" },
);
const code = await proc.exited;

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(report)) {
  const xml = readFileSync(report, "utf8");
  for (const m of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = m[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
}
if (code !== 0 && failed === 0) failed = 1; // the runner itself failed (crash, file that did not load)
console.log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || skipped > 0 || passed === 0 ? 1 : 0);
