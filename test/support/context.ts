import type { Context } from "../../lib/context.ts";
import { formatError } from "../../lib/errors.ts";

/** A Context that records what a command printed. */
export function fakeContext(root: string, isTTY = false): Context & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { out: (t) => void stdout.push(t), err: (t) => void stderr.push(t), root, env: {}, isTTY, stdout, stderr };
}

/** Runs a command function the way cli/run.ts does: returns exit code, stdout and stderr text. */
export async function runCommand(
  root: string,
  body: (ctx: Context) => number | Promise<number>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const ctx = fakeContext(root);
  let code: number;
  try {
    code = await body(ctx);
  } catch (err) {
    const f = formatError(err);
    ctx.err(f.text);
    code = f.code;
  }
  return { code, stdout: ctx.stdout.join(""), stderr: ctx.stderr.join("") };
}
