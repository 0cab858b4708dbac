import { VmchanError } from "../errors.ts";
import { RespawnBackoff, type RespawnPolicy } from "./backoff.ts";
import type { GettyProcess } from "./process.ts";

export interface SuperviseOptions {
  /** The tty or port, for messages. */
  label: string;
  /** Starts one getty. */
  start: () => GettyProcess;
  /** Aborting it hangs up the running getty and returns. */
  stop: AbortSignal;
  policy?: RespawnPolicy;
  log: (line: string) => void;
}

/** Resolves when `signal` is aborted. */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/**
 * Keeps one getty running until `stop`: started again when it exits, at once after a normal run,
 * after a growing delay when it died at once (see RespawnBackoff). On stop, the running getty and
 * its session are hung up.
 */
export async function supervise(options: SuperviseOptions): Promise<void> {
  const backoff = new RespawnBackoff(options.policy);
  const stopped = aborted(options.stop);
  while (!options.stop.aborted) {
    const started = performance.now();
    let child: GettyProcess | null = null;
    let how: string;
    try {
      child = options.start();
    } catch (err) {
      if (!(err instanceof VmchanError)) throw err;
      how = `could not start: ${err.message}`;
    }
    if (child) {
      const exited = await Promise.race([child.exited.then(() => true), stopped.then(() => false)]);
      if (!exited) {
        await child.hangUp();
        return;
      }
      how = `exited (${child.describeExit()})`;
    }
    const ranMs = performance.now() - started;
    const delay = backoff.next(ranMs);
    if (delay > 0)
      options.log(
        `vmchan: the getty on ${options.label} ${how!} after ${(ranMs / 1000).toFixed(1)} s; starting it again in ${delay / 1000} s`,
      );
    await sleepUnless(delay, options.stop);
  }
}

/** Sleeps `ms`, or less if `signal` is aborted meanwhile (no timer is left behind). */
export function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
