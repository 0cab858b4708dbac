#!/usr/bin/env bun
/** Regenerates completions/vmchan.{bash,zsh,fish} from the built binary (a test fails when they are stale). */
import { writeFileSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
for (const [shell, file] of [["bash", "vmchan.bash"], ["zsh", "_vmchan"], ["fish", "vmchan.fish"]] as const) {
  const proc = Bun.spawnSync([`${root}dist/vmchan`, "completions", shell], { stdout: "pipe", stderr: "inherit" });
  if (proc.exitCode !== 0) throw new Error(`vmchan completions ${shell} failed`);
  writeFileSync(`${root}completions/${file}`, proc.stdout);
  console.log(`completions/${file}`);
}
