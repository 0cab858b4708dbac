/**
 * SIGIO as an awaitable event. The port driver sends one SIGIO on host connect, disconnect, data
 * arrival and hot-unplug; it carries no state, so waiters re-poll after waking. A generation
 * counter closes the race between "checked, nothing to do" and "started waiting".
 */
let generation = 0;
let installed = false;
const waiters = new Set<() => void>();

function install(): void {
  if (installed) return;
  installed = true;
  // Installed before any fd gets O_ASYNC: SIGIO's default action would kill the process.
  process.on("SIGIO", () => {
    generation++;
    for (const wake of [...waiters]) wake();
  });
}

/** The current generation; pass it to `waitSigio` after checking state. */
export function sigioGeneration(): number {
  install();
  return generation;
}

/** Resolves at the next SIGIO after generation `since` (at once if one came already), or after `timeoutMs`. */
export function waitSigio(since: number, timeoutMs: number): Promise<void> {
  install();
  if (generation !== since) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      waiters.delete(done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, timeoutMs));
    waiters.add(done);
  });
}

/** Installs the handler; call before enabling O_ASYNC on any fd. */
export function installSigio(): void {
  install();
}
