import { afterEach } from "bun:test";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A throwaway root directory with a fake /sys, /dev and /proc, removed by `dispose()`. */
export class FixtureRoot {
  readonly root: string;
  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "vmchan-fixture-"));
    this.dir("/proc");
  }
  file(path: string, text: string): this {
    const full = join(this.root, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
    return this;
  }
  dir(path: string): this {
    mkdirSync(join(this.root, path), { recursive: true });
    return this;
  }
  link(path: string, target: string): this {
    const full = join(this.root, path);
    mkdirSync(dirname(full), { recursive: true });
    symlinkSync(target, full);
    return this;
  }
  /** A port as the kernel shows it: sysfs name, /dev node, optional udev link and debugfs entry. */
  port(
    port: string,
    name: string,
    opts: { link?: boolean; debug?: Record<string, string | number> } = {},
  ): this {
    this.file(`/sys/class/virtio-ports/${port}/name`, `${name}\n`);
    this.file(`/dev/${port}`, "");
    if (opts.link ?? true) this.link(`/dev/virtio-ports/${name}`, `../${port}`);
    if (opts.debug) {
      const d = { name, ...opts.debug };
      this.file(
        `/sys/kernel/debug/virtio-ports/${port}`,
        Object.entries(d)
          .map(([k, v]) => `${k}: ${v}\n`)
          .join(""),
      );
    }
    return this;
  }
  /** A process with fd 3 open on `target` (a /proc/PID/fd symlink; the target need not exist). */
  process(pid: number, comm: string, fds: string[]): this {
    this.file(`/proc/${pid}/comm`, `${comm}\n`);
    this.dir(`/proc/${pid}/fd`);
    fds.forEach((target, i) => this.link(`/proc/${pid}/fd/${i + 3}`, target));
    return this;
  }
  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Per-test cleanup for a test file: `const { fixture, later } = perTest();` at its top. `fixture()` makes a
 * FixtureRoot and `later(undo)` registers anything else to undo; after each test all of it runs, newest first.
 */
export function perTest(): { fixture: () => FixtureRoot; later: (undo: () => void) => void } {
  const undo: Array<() => void> = [];
  afterEach(() => {
    for (const u of undo.splice(0).reverse()) u();
  });
  return {
    fixture: () => {
      const fx = new FixtureRoot();
      undo.push(() => fx.dispose());
      return fx;
    },
    later: (u) => void undo.push(u),
  };
}
