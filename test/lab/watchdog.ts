/**
 * Never leave a QEMU behind: a tiny shell process, in its own session so a Ctrl-C aimed at the test runner does not
 * stop it, polls the test process. When that process is gone (killed, crashed), it kills QEMU and removes the lab dir.
 */
import { spawn } from "node:child_process";

const script = `
parent=$1 qemu=$2 dir=$3
while kill -0 "$parent" 2>/dev/null; do
  # QEMU ended normally (the lab closed it): nothing left to guard.
  kill -0 "$qemu" 2>/dev/null || exit 0
  sleep 0.5
done
# Check the pid still is QEMU before killing it (comm is cut to 15 characters).
case "$(cat /proc/$qemu/comm 2>/dev/null)" in qemu-system-*) kill -9 "$qemu" ;; esac
rm -rf "$dir"
`;

/** Starts the watchdog for `qemuPid`; returns its pid. */
export function startWatchdog(qemuPid: number, dir: string): number {
  const child = spawn("sh", ["-c", script, "vmchan-lab-watchdog", String(process.pid), String(qemuPid), dir], {
    detached: true,
    stdio: "ignore",
  });
  // The test process must be free to exit while the watchdog runs.
  child.unref();
  if (child.pid === undefined) throw new Error("could not start the lab watchdog");
  return child.pid;
}
