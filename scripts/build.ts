#!/usr/bin/env bun
/**
 * Builds the single-file binaries into dist/.
 * `bun scripts/build.ts` makes dist/vmchan (this machine's target, linux x64);
 * `--all` also makes the arm64 and musl variants.
 * Always without .env / bunfig.toml auto-loading: a binary must not change behaviour with the directory it runs in.
 */
import { $ } from "bun";
import { mkdirSync } from "node:fs";
import { disableRuntimeVariables, selfTest } from "./harden.ts";

const root = new URL("..", import.meta.url).pathname;
const pkg = (await Bun.file(`${root}package.json`).json()) as { version: string };
const commit = (await $`git -C ${root} rev-parse --short=12 HEAD`.nothrow().quiet().text()).trim() || "unknown";
const dirty = (await $`git -C ${root} status --porcelain --untracked-files=no`.nothrow().quiet().text()).trim() ? "-dirty" : "";

const targets: Array<[target: string, outfile: string]> = [["bun-linux-x64", "dist/vmchan"]];
if (process.argv.includes("--all")) {
  targets.push(
    ["bun-linux-arm64", "dist/vmchan-linux-arm64"],
    ["bun-linux-x64-musl", "dist/vmchan-linux-x64-musl"],
    ["bun-linux-arm64-musl", "dist/vmchan-linux-arm64-musl"],
  );
}

mkdirSync(`${root}dist`, { recursive: true });
for (const [target, outfile] of targets) {
  const args = [
    "build",
    "--compile",
    `--target=${target}`,
    "--minify",
    "--bytecode",
    "--format=esm",
    "--sourcemap",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    // Collect garbage more often: relayed chunks are short-lived, and RSS must stay flat.
    "--compile-exec-argv=--smol",
    `--define=VMCHAN_VERSION=${JSON.stringify(pkg.version)}`,
    `--define=VMCHAN_COMMIT=${JSON.stringify(commit + dirty)}`,
    "cli/main.ts",
    "--outfile",
    outfile,
  ];
  const proc = Bun.spawnSync([process.execPath, ...args], { cwd: root, stdout: "pipe", stderr: "pipe" });
  if (proc.exitCode !== 0) {
    process.stderr.write(proc.stdout.toString() + proc.stderr.toString());
    console.error(`build: ${target} failed (exit ${proc.exitCode})`);
    process.exit(1);
  }
  try {
    const patched = disableRuntimeVariables(`${root}${outfile}`);
    if (target === "bun-linux-x64") selfTest(`${root}${outfile}`);
    console.log(`build: ${outfile} (${target}, ${pkg.version}, commit ${commit}${dirty}; runtime ignores ${patched.join(", ")})`);
  } catch (err) {
    console.error(`build: ${target}: ${(err as Error).message}`);
    process.exit(1);
  }
}
