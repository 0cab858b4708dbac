import type { Subprocess } from "bun";
import { sleep } from "../endpoint.ts";
import { errnoOf, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { beforeSpawn, ownChild } from "../exit-cleanup.ts";
import { childEnv } from "../runtime-env.ts";

/** One running getty (and, once someone logs in, the login and shell it became). */
export interface GettyProcess {
  readonly pid: number;
  /** Resolves when it has exited (and, on a PTY, its last output has been read). */
  readonly exited: Promise<void>;
  /** How it ended, for messages: "status 1", "signal SIGKILL". */
  describeExit(): string;
  /** Ends the login session as a modem hang-up would: SIGHUP, then SIGTERM, then SIGKILL. */
  hangUp(): Promise<void>;
}

/** Runs `argv` (a getty that opens its tty itself) with our stderr, so its complaints reach the log. */
export function spawnGetty(argv: string[]): GettyProcess {
  return wrap(spawnOrThrow(argv, { stdin: "ignore", stdout: "inherit", stderr: "inherit" }), () => {});
}

/** Bun.spawn, with a missing program as a VmchanError. */
export function spawnOrThrow(argv: string[], options: Parameters<typeof Bun.spawn>[1]): Subprocess {
  try {
    // Without the variables that change a Bun runtime, whatever the caller passed. As a subreaper,
    // what a login session moves out of its group (setsid) is adopted and ended at exit.
    beforeSpawn();
    const proc = Bun.spawn(argv, { ...options, env: childEnv(options?.env ?? process.env) });
    ownChild(proc.pid);
    return proc;
  } catch (err) {
    throw new VmchanError(`cannot run "${argv[0]}": ${errnoOf(err) === "ENOENT" ? "not found" : (err as Error).message}`, {
      code: ExitCode.notFound,
      cause: err,
    });
  }
}

/** A GettyProcess over a subprocess; `closeTerminal` hangs up its PTY, if it has one. */
export function wrap(proc: Subprocess, closeTerminal: () => void, exited: Promise<void> = proc.exited.then(() => {})): GettyProcess {
  return {
    pid: proc.pid,
    exited,
    describeExit: () => (proc.signalCode ? `signal ${proc.signalCode}` : `status ${proc.exitCode ?? "?"}`),
    async hangUp() {
      // getty made itself a session and process group leader (pid = pgid), so its login and shell are in that group.
      const steps: Array<NodeJS.Signals> = ["SIGHUP", "SIGTERM", "SIGKILL"];
      for (const [i, signal] of steps.entries()) {
        if (i === 0) closeTerminal();
        if (proc.exitCode !== null || proc.signalCode !== null) break;
        signalGroup(proc.pid, signal);
        if (await exitedWithin(proc, 1000)) break;
      }
      // What else still holds the group (a background job of the shell) goes too.
      signalGroup(proc.pid, "SIGKILL", true);
    },
  };
}

/** Sends `signal` to the process group `pid` and to the process itself (before its setsid it has no group of its own). */
function signalGroup(pid: number, signal: NodeJS.Signals, groupOnly = false): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // no such group (yet, or any more)
  }
  if (groupOnly) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function exitedWithin(proc: Subprocess, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  return Promise.race([proc.exited.then(() => true), sleep(ms).then(() => false)]);
}
