import { VmchanError } from "./errors.ts";
import { ExitCode } from "./exit-codes.ts";

/** Set to 1 to start even when the environment carries variables that change the Bun runtime. */
export const ALLOW_BUN_ENV = "VMCHAN_ALLOW_BUN_ENV";

/**
 * Variables the Bun runtime reads (measured on the compiled binary, Bun 1.4.5) that run code, open a
 * debugger or change how the engine behaves: `BUN_OPTIONS` (any runtime flag, e.g. --preload or
 * --inspect), `BUN_BE_BUN` (the binary becomes a general Bun), `BUN_INSPECT*` (a debugger on a
 * port), `BUN_JSC_*` and `JSC_*` (engine options, read under both prefixes: `JSC_SIGNAL_FOR_GC=15`
 * makes the engine take SIGTERM for itself, so vmchan would ignore it), `BUN_CONFIG_*` (runtime and
 * package-manager settings).
 * NODE_OPTIONS is not read by Bun, so it is neither refused nor removed.
 */
const EXACT = new Set(["BUN_OPTIONS", "BUN_BE_BUN"]);
const PREFIXES = ["BUN_INSPECT", "BUN_JSC_", "JSC_", "BUN_CONFIG_"];

/** Whether `name` is one of the runtime-changing variables. */
export function isRuntimeVariable(name: string): boolean {
  return EXACT.has(name) || PREFIXES.some((p) => name.startsWith(p));
}

/** The runtime-changing variables set (to anything, even "") in `env`, sorted. */
export function runtimeVariables(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.keys(env)
    .filter((k) => env[k] !== undefined && isRuntimeVariable(k))
    .sort();
}

/**
 * Refuses to run when `env` sets a runtime-changing variable, unless VMCHAN_ALLOW_BUN_ENV=1. The
 * message names the variables (not their values, which may be long or hostile).
 */
export function checkRuntimeEnv(env: Readonly<Record<string, string | undefined>>): void {
  const found = runtimeVariables(env);
  if (found.length === 0 || env[ALLOW_BUN_ENV] === "1") return;
  const names = found.slice(0, 5).map((n) => JSON.stringify(n).slice(1, -1).replace(/[^\x20-\x7e]/g, "?"));
  const more = found.length > 5 ? ` and ${found.length - 5} more` : "";
  const what = found.length === 1 ? "a variable that changes" : "variables that change";
  throw new VmchanError(`refusing to start: the environment sets ${names.join(", ")}${more}, ${what} the Bun runtime vmchan is built on`, {
    code: ExitCode.unsafeEnvironment,
    hint: `unset ${found.length === 1 ? "it" : "them"}, or set ${ALLOW_BUN_ENV}=1 to run anyway; programs vmchan starts never get ${found.length === 1 ? "it" : "them"}`,
  });
}

/** A copy of `env` for a child process (exec:, a getty), without the runtime-changing variables. */
export function childEnv(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !isRuntimeVariable(k)) out[k] = v;
  return out;
}
