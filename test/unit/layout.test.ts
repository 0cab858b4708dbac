import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("../../", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

const importsOf = (file: string) =>
  [...readFileSync(join(root, file), "utf8").matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)["']([^"']+)["']/g)].map((m) => m[1]!);

describe("layout rules", () => {
  test("lib/ never imports cli/", () => {
    const offenders = sources("lib").filter((f) => importsOf(f).some((i) => /(^|\/)cli\//.test(i)));
    expect(offenders).toEqual([]);
  });

  test("FFI is only used under lib/sys/", () => {
    const offenders = [...sources("lib"), ...sources("cli")].filter((f) => !f.startsWith("lib/sys/") && importsOf(f).includes("bun:ffi"));
    expect(offenders).toEqual([]);
  });

  test("the TypeScript sources type-check (strict)", () => {
    const tsc = Bun.spawnSync([join(root, "node_modules/.bin/tsc"), "--noEmit", "-p", root], { stdout: "pipe", stderr: "pipe" });
    expect(tsc.stdout.toString() + tsc.stderr.toString()).toBe("");
    expect(tsc.exitCode).toBe(0);
  });
});
