/**
 * What must be undone however the process ends (normal end, error, SIGTERM, SIGINT, SIGHUP): the
 * process groups of the commands it started, what those left behind outside their group (adopted
 * as a child subreaper), and the files it made (listening sockets). Each owner registers its undo
 * here and unregisters it once it has cleaned up itself.
 */
import { readdirSync, readFileSync } from "node:fs";
import { reapIfExited, setChildSubreaper } from "./sys/subreaper.ts";

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
/** After SIGTERM, how long child groups get to exit before SIGKILL. */
export const CHILD_GRACE_MS = 2000;

const tasks = new Set<() => void>();
/** Child process groups (pgid = the child's pid, it was started with setsid) and whether the leader still runs. */
const groups = new Map<number, () => boolean>();
let exitHooked = false;
/** Whether this process is a child subreaper (set before the first command is started). */
let subreaper = false;
/** Children the runtime started and waits for itself: never reaped here. */
const ownChildren = new Set<number>();
/** Set once the signal path has already given the grace time: the exit hook then kills at once. */
let graceGiven = false;
/** The terminating signal being handled, if any: the exit code is 128 + it, whoever calls exit first. */
let stoppedBy: number | null = null;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Last resort for paths that skipped their own cleanup: remove files now, kill what still runs.
  process.on("exit", () => {
    runTasks();
    for (const pgid of groups.keys()) signalGroup(pgid, "SIGKILL");
    groups.clear();
    endDescendantsSync(graceGiven ? 0 : CHILD_GRACE_MS);
    // A session the signal ended may let the command return (and exit 0) before the grace is over: still a signal's exit.
    if (stoppedBy !== null) process.exitCode = 128 + stoppedBy;
  });
}

/**
 * Called before starting a command: makes this process a child subreaper, so that what the
 * command leaves behind outside its process group (setsid, a double fork) is re-parented to us
 * and ended at exit; `pid`, once known, is the runtime's own child (see ownChild).
 */
export function beforeSpawn(): void {
  hookExit();
  if (subreaper) return;
  subreaper = setChildSubreaper();
  // An adopted orphan that exits stays a zombie until we reap it (the runtime waits only for its own children):
  // look once a second, cheaply, at our direct children.
  if (subreaper) setInterval(() => reapAdopted(adoptedZombies()), 1000).unref();
}

/** Our zombie children, from /proc/self/task/TID/children (no scan of all of /proc); all of /proc without it. */
function adoptedZombies(): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return descendants().zombies;
  }
  const zombies: number[] = [];
  for (const tid of tasks) {
    let list: string;
    try {
      list = readFileSync(`/proc/self/task/${tid}/children`, "latin1");
    } catch {
      return descendants().zombies; // a kernel without CONFIG_PROC_CHILDREN
    }
    for (const pid of list.trim().split(" ").filter(Boolean).map(Number)) {
      if (ownChildren.has(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
        if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) zombies.push(pid);
      } catch {
        // gone meanwhile
      }
    }
  }
  return zombies;
}

/** Marks `pid` as a child the runtime itself waits for (Bun.spawn), so it is never reaped here. */
export function ownChild(pid: number): void {
  ownChildren.add(pid);
}

/** Most processes looked at in one scan of /proc (a bound on work, not on correctness for sane systems). */
const SCAN_LIMIT = 1 << 16;

/** Every live (not zombie) descendant of this process, from /proc/PID/stat; and the zombies whose parent we are. */
export function descendants(): { live: number[]; zombies: number[] } {
  const me = process.pid;
  const parent = new Map<number, number>();
  const zombie = new Set<number>();
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return { live: [], zombies: [] };
  }
  let seen = 0;
  for (const name of names) {
    if (!/^[1-9][0-9]{0,9}$/.test(name) || ++seen > SCAN_LIMIT) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold anything, including ")", so split after the last one.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    if (!Number.isInteger(ppid)) continue;
    parent.set(Number(name), ppid);
    if (fields[0] === "Z") zombie.add(Number(name));
  }
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parent) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const live: number[] = [];
  const zombies: number[] = [];
  const queue = [...(children.get(me) ?? [])];
  const visited = new Set<number>([me]);
  while (queue.length > 0) {
    const pid = queue.shift()!;
    if (visited.has(pid)) continue;
    visited.add(pid);
    if (zombie.has(pid)) {
      if (parent.get(pid) === me) zombies.push(pid);
    } else live.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return { live, zombies };
}

/** Reaps our exited children that the runtime does not wait for (adopted orphans). */
export function reapAdopted(zombies: number[] = descendants().zombies): void {
  for (const pid of zombies) if (!ownChildren.has(pid)) reapIfExited(pid);
}

function signalPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Ends every descendant synchronously (the exit hook): SIGTERM, up to `graceMs` to go, then SIGKILL; then reaps. */
function endDescendantsSync(graceMs: number): void {
  if (!subreaper) return;
  let { live, zombies } = descendants();
  reapAdopted(zombies);
  if (live.length === 0) return;
  if (graceMs > 0) {
    signalPids(live, "SIGTERM");
    const deadline = performance.now() + graceMs;
    while (live.length > 0 && performance.now() < deadline) {
      Bun.sleepSync(20);
      ({ live, zombies } = descendants());
      reapAdopted(zombies);
    }
  }
  // Kill until nothing is left: a process may fork while we look.
  for (let round = 0; round < 20 && live.length > 0; round++) {
    signalPids(live, "SIGKILL");
    Bun.sleepSync(5);
    ({ live, zombies } = descendants());
    reapAdopted(zombies);
  }
}

/**
 * Ends what the finished commands left behind, once no tracked command runs any more (the end of
 * a session of listen --keep): SIGTERM, up to CHILD_GRACE_MS, then SIGKILL; then reaps.
 */
export async function endAdopted(): Promise<void> {
  if (!subreaper || [...groups.values()].some((running) => running())) return;
  let { live, zombies } = descendants();
  reapAdopted(zombies);
  if (live.length === 0) return;
  signalPids(live, "SIGTERM");
  const deadline = performance.now() + CHILD_GRACE_MS;
  while (live.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    ({ live, zombies } = descendants());
    reapAdopted(zombies);
  }
  for (let round = 0; round < 20 && live.length > 0; round++) {
    signalPids(live, "SIGKILL");
    await new Promise((r) => setTimeout(r, 5));
    ({ live, zombies } = descendants());
    reapAdopted(zombies);
  }
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
  ownChildren.add(pgid);
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
        graceGiven = true;
        process.exit(128 + num);
      }
      stopping = true;
      stoppedBy = num;
      runTasks();
      const pgids = [...groups.keys()];
      for (const pgid of pgids) signalGroup(pgid, "SIGTERM");
      // What the commands left outside their groups (adopted by us as subreaper) gets the same grace.
      if (subreaper) signalPids(descendants().live, "SIGTERM");
      const deadline = performance.now() + CHILD_GRACE_MS;
      const check = () => {
        const left = [...groups.entries()].filter(([, running]) => running()).map(([pgid]) => pgid);
        let adopted = 0;
        if (subreaper) {
          const { live, zombies } = descendants();
          reapAdopted(zombies);
          adopted = live.filter((pid) => !groups.has(pid)).length;
        }
        if ((left.length > 0 || adopted > 0) && performance.now() < deadline) return void setTimeout(check, 20);
        if (left.length > 0 || adopted > 0) log(`vmchan: ${left.length + adopted} process(es) still running ${CHILD_GRACE_MS} ms after SIGTERM: killed`);
        for (const pgid of pgids) signalGroup(pgid, "SIGKILL");
        groups.clear();
        graceGiven = true;
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
