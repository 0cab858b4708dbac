/**
 * Never leave a QEMU behind: a tiny shell process, in its own session so a Ctrl-C aimed at the test runner does not
 * stop it, kills QEMU and removes the lab dir when the test process goes away without closing the lab.
 *
 * It learns that from a pipe, not by polling the pid: its stdin is a pipe whose only writer is the test process, so
 * it reads end-of-file the moment that process dies, however it dies, even when it lingers as an unreaped zombie
 * (which `kill -0` would still report as alive).
 */

const script = `
qemu=$1 dir=$2
read -r line
[ "$line" = closed ] && exit 0
# Check the pid still is QEMU before killing it (comm is cut to 15 characters).
case "$(cat /proc/$qemu/comm 2>/dev/null)" in qemu-system-*) kill -9 "$qemu" ;; esac
rm -rf "$dir"
`;

/** A running watchdog; `release()` tells it the lab was closed properly, so it exits without doing anything. */
export interface Watchdog {
  pid: number;
  release(): void;
}

/** Starts the watchdog for `qemuPid` and the lab dir `dir`. */
export function startWatchdog(qemuPid: number, dir: string): Watchdog {
  const proc = Bun.spawn(["sh", "-c", script, "vmchan-lab-watchdog", String(qemuPid), dir], {
    detached: true,
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
  });
  // The test process must stay free to exit while the watchdog waits.
  proc.unref();
  let released = false;
  return {
    pid: proc.pid,
    release: () => {
      if (released) return;
      released = true;
      try {
        proc.stdin.write("closed\n");
        void proc.stdin.end();
      } catch {
        // Already gone: nothing to release.
      }
    },
  };
}
