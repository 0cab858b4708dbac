/**
 * Makes a compiled vmchan binary deaf to the Bun variables that act before vmchan's code runs.
 *
 * Bun 1.4.x reads BUN_BE_BUN (become a general `bun`), BUN_OPTIONS (any runtime flag, e.g.
 * --preload FILE) and BUN_INSPECT* (open a debugger) in every standalone executable, and
 * `bun build --compile` has no flag to turn that off. The runtime looks each name up through a
 * NUL-terminated string in .rodata; setting the first byte of that string to NUL makes the name
 * empty, which no environment entry can match. Only those exact strings are touched (one byte
 * each), and the build fails if a required one is not found exactly once, so a Bun upgrade that
 * moves them cannot silently drop the protection. selfTest() then checks the result for real.
 */
import { readFileSync, writeFileSync } from "node:fs";

/** Names whose runtime lookup is disabled; `required` ones must be found exactly once. */
const NAMES: ReadonlyArray<{ name: string; required: boolean }> = [
  { name: "BUN_BE_BUN", required: true },
  { name: "BUN_OPTIONS", required: true },
  { name: "BUN_INSPECT", required: true },
  { name: "BUN_INSPECT_CONNECT_TO", required: true },
  { name: "BUN_INSPECT_PRELOAD", required: true },
  { name: "BUN_INSPECT_NOTIFY", required: false },
];

/** The file range of the ELF64 section `wanted`. */
function elfSection(buf: Buffer, wanted: string): { start: number; end: number } {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new Error("not a little-endian ELF64 file");
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const header = (i: number) => shoff + i * shentsize;
  const strtab = Number(buf.readBigUInt64LE(header(shstrndx) + 0x18));
  for (let i = 0; i < shnum; i++) {
    const nameOff = strtab + buf.readUInt32LE(header(i));
    const name = buf.subarray(nameOff, buf.indexOf(0, nameOff)).toString("latin1");
    if (name !== wanted) continue;
    const start = Number(buf.readBigUInt64LE(header(i) + 0x18));
    return { start, end: start + Number(buf.readBigUInt64LE(header(i) + 0x20)) };
  }
  throw new Error(`no ${wanted} section`);
}

/** Offsets of `\0NAME\0` in buf[start, end), pointing at NAME. */
function cStrings(buf: Buffer, name: string, start: number, end: number): number[] {
  const needle = Buffer.from(`\0${name}\0`, "latin1");
  const found: number[] = [];
  for (let at = buf.indexOf(needle, start); at >= 0 && at + needle.length <= end; at = buf.indexOf(needle, at + 1)) found.push(at + 1);
  return found;
}

/** Patches `file` in place; returns the names disabled. Throws when a required name is missing or ambiguous. */
export function disableRuntimeVariables(file: string): string[] {
  const buf = readFileSync(file);
  const { start, end } = elfSection(buf, ".rodata");
  const patched: string[] = [];
  for (const { name, required } of NAMES) {
    const at = cStrings(buf, name, start, end);
    if (at.length !== 1) {
      if (required) throw new Error(`cannot disable ${name}: its lookup string was found ${at.length} times in .rodata, expected once`);
      continue;
    }
    buf[at[0]!] = 0;
    patched.push(name);
  }
  writeFileSync(file, buf);
  return patched;
}

/** Runs the patched binary with BUN_BE_BUN, a BUN_OPTIONS preload and a waiting BUN_INSPECT; all must be ignored. */
export function selfTest(file: string): void {
  const cases: Array<[string, Record<string, string>]> = [
    ["BUN_BE_BUN=1", { BUN_BE_BUN: "1" }],
    ["BUN_OPTIONS=--preload", { BUN_OPTIONS: "--preload /nonexistent/vmchan-build-self-test.js" }],
    // An active inspector would wait here for a debugger that never comes (the timeout below ends it).
    ["BUN_INSPECT=...?wait=1", { BUN_INSPECT: "ws://127.0.0.1:0/vmchan-build-self-test?wait=1" }],
  ];
  for (const [what, env] of cases) {
    const r = Bun.spawnSync([file, "--version"], {
      env: { PATH: "/usr/bin:/bin", VMCHAN_ALLOW_BUN_ENV: "1", ...env },
      stdout: "pipe",
      stderr: "pipe",
      timeout: 30_000,
    });
    const out = r.stdout.toString();
    if (r.exitCode !== 0 || !out.startsWith("vmchan "))
      throw new Error(`self-test: ${what} still changes the binary (exit ${r.exitCode}, stdout ${JSON.stringify(out.slice(0, 80))}, stderr ${JSON.stringify(r.stderr.toString().slice(0, 200))})`);
  }
}
