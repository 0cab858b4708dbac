import { existsSync } from "node:fs";

/** The compiled binary under test (npm test builds it first). */
export const VMCHAN = new URL("../../dist/vmchan", import.meta.url).pathname;

if (!existsSync(VMCHAN)) throw new Error(`${VMCHAN} is missing: run 'npm run build' first`);

/** Runs dist/vmchan with a clean environment; returns exit code and output. */
export async function vmchan(
  args: string[],
  opts: { cwd?: string; stdin?: Uint8Array | string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const proc = Bun.spawn([VMCHAN, ...args], {
    cwd: opts.cwd,
    env: { PATH: "/usr/bin:/bin", ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).arrayBuffer(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout: Buffer.from(stdout), stderr };
}
