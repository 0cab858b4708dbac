/**
 * What must be undone however the process ends (normal end, error, SIGTERM, SIGINT, SIGHUP): the
 * process groups of the commands it started, and the files it made (listening sockets). Each owner
 * registers its undo here and unregisters it once it has cleaned up itself.
 */

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
/** After SIGTERM, how long child groups get to exit before SIGKILL. */
export const CHILD_GRACE_MS = 2000;

const tasks = new Set<() => void>();
/** Child process groups (pgid = the child's pid, it was started with setsid) and whether the leader still runs. */
const groups = new Map<number, () => boolean>();
let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Last resort for paths that skipped their own cleanup: remove files now, kill what still runs.
  process.on("exit", () => {
    runTasks();
    for (const pgid of groups.keys()) signalGroup(pgid, "SIGKILL");
    groups.clear();
  });
}

/** Registers `undo` (synchronous, safe to run twice) to run at exit or on a terminating signal; returns the unregister function. */
export function onExit(undo: () => void): () => void {
  hookExit();
  tasks.add(undo);
  return () => void tasks.delete(undo);
}

/** Registers a child's process group, to be ended (SIGTERM, then SIGKILL) at exit or on a signal; returns the unregister function. */
export function trackGroup(pgid: number, running: () => boolean): () => void {
  hookExit();
  groups.set(pgid, running);
  return () => void groups.delete(pgid);
}

function runTasks(): void {
  for (const t of [...tasks]) {
    tasks.delete(t);
    try {
      t();
    } catch {
      // one failed undo must not stop the others
    }
  }
}

/** Sends `signal` to process group `pgid`; false when there is no such group any more. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes SIGTERM, SIGINT and SIGHUP end the process cleanly: registered undos run, child groups get
 * SIGTERM and up to CHILD_GRACE_MS to exit, then SIGKILL, and the exit code is 128 + the signal's
 * number. A second signal skips the wait. Returns the function that removes the handlers.
 */
export function exitOnSignals(log: (line: string) => void = () => {}): () => void {
  hookExit();
  let stopping = false;
  const handlers = Object.entries(SIGNALS).map(([name, num]) => {
    const handler = () => {
      if (stopping) {
        for (const pgid of groups.keys()) signalGroup(pgid, "SIGKILL");
        process.exit(128 + num);
      }
      stopping = true;
      runTasks();
      const pgids = [...groups.keys()];
      for (const pgid of pgids) signalGroup(pgid, "SIGTERM");
      const deadline = performance.now() + CHILD_GRACE_MS;
      const check = () => {
        const left = [...groups.entries()].filter(([, running]) => running()).map(([pgid]) => pgid);
        if (left.length > 0 && performance.now() < deadline) return void setTimeout(check, 20);
        if (left.length > 0) log(`vmchan: ${left.length} command(s) still running ${CHILD_GRACE_MS} ms after SIGTERM: killed`);
        for (const pgid of pgids) signalGroup(pgid, "SIGKILL");
        groups.clear();
        process.exit(128 + num);
      };
      check();
    };
    process.on(name as NodeJS.Signals, handler);
    return [name, handler] as const;
  });
  return () => {
    for (const [name, handler] of handlers) process.off(name as NodeJS.Signals, handler);
  };
}
