/**
 * Makes sure the Debian packages the lab needs are installed: installs them when running as root,
 * otherwise fails with the exact command to run. Never skips.
 */

/** Debian packages every lab boot needs: QEMU, a static busybox for the guest, depmod for the kernel modules. */
export const labPackages = ["qemu-system-x86", "busybox-static", "kmod"] as const;

/** Result of a command run to completion. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell, with a timeout (kills it when exceeded). */
export async function runCommand(argv: string[], opts: { timeoutMs?: number; cwd?: string; env?: Record<string, string> } = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (timedOut) throw new Error(`command timed out after ${timeoutMs} ms: ${argv.join(" ")}`);
  return { code, stdout, stderr };
}

/** Like runCommand, but a non-zero exit is an error that quotes the command and its stderr. */
export async function mustRun(argv: string[], opts: Parameters<typeof runCommand>[1] = {}): Promise<string> {
  const r = await runCommand(argv, opts);
  if (r.code !== 0) throw new Error(`command failed (exit ${r.code}): ${argv.join(" ")}\n${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** Whether dpkg has `pkg` fully installed. */
async function isInstalled(pkg: string): Promise<boolean> {
  const r = await runCommand(["dpkg-query", "-W", "-f=${Status}", pkg], { timeoutMs: 30_000 });
  return r.code === 0 && r.stdout.trim() === "install ok installed";
}

const isRoot = () => process.getuid?.() === 0;

/** The apt-get line that installs `pkgs`, as printed in errors and run as root. */
export function aptInstallLine(pkgs: readonly string[]): string {
  return `apt-get install -y --no-install-recommends ${pkgs.join(" ")}`;
}

/**
 * Installs whichever of `pkgs` is missing (as root; `apt-get update` and one retry if the first install fails),
 * or throws an error naming the apt-get line when not root.
 */
export function ensurePackages(pkgs: readonly string[] = labPackages): Promise<void> {
  // Once per process and package list: labs booting in parallel must not run apt-get side by side (dpkg lock).
  const key = pkgs.join(" ");
  let p = ensured.get(key);
  if (!p) {
    p = installMissing(pkgs).catch((err: unknown) => {
      ensured.delete(key);
      throw err;
    });
    ensured.set(key, p);
  }
  return p;
}

const ensured = new Map<string, Promise<void>>();

async function installMissing(pkgs: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const p of pkgs) if (!(await isInstalled(p))) missing.push(p);
  if (missing.length === 0) return;
  if (!isRoot()) {
    throw new Error(`the lab needs Debian packages that are not installed: ${missing.join(", ")}; run as root: ${aptInstallLine(missing)}`);
  }
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const argv = ["apt-get", "install", "-y", "--no-install-recommends", ...missing];
  let r = await runCommand(argv, { env, timeoutMs: 600_000 });
  if (r.code !== 0) {
    // A fresh machine may have no package lists yet, or stale ones.
    await mustRun(["apt-get", "update"], { env, timeoutMs: 600_000 });
    r = await runCommand(argv, { env, timeoutMs: 600_000 });
  }
  if (r.code !== 0) throw new Error(`installing the lab's packages failed (exit ${r.code}): ${aptInstallLine(missing)}\n${r.stderr.trim()}`);
}

/** `apt-get update`, when running as root; used when a package look-up finds nothing. */
export async function aptUpdate(): Promise<void> {
  if (!isRoot()) throw new Error("the package lists are missing or stale; run as root: apt-get update");
  await mustRun(["apt-get", "update"], { env: { DEBIAN_FRONTEND: "noninteractive" }, timeoutMs: 600_000 });
}
