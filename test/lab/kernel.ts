/**
 * The guest kernel: Debian's current linux-image-*-amd64, unpacked once into the cache with just the modules
 * virtio-serial needs (uncompressed, so busybox insmod can load them).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { aptUpdate, mustRun, runCommand } from "./host-deps.ts";

/** Modules that must be present for virtio-serial over PCI; their dependencies are added from modules.dep. */
export const wantedModules = ["virtio_pci", "virtio_console"] as const;

/** A kernel ready to boot. */
export interface LabKernel {
  /** The package, e.g. "linux-image-6.1.0-56-amd64", and its version "6.1.192-2". */
  pkg: string;
  pkgVersion: string;
  /** `uname -r` of the kernel, e.g. "6.1.0-56-amd64". */
  release: string;
  vmlinuz: string;
  /** Module files (uncompressed .ko) in load order; built-in modules are not listed. */
  modules: string[];
}

interface Manifest {
  release: string;
  modules: string[];
}

/**
 * The kernel package linux-image-amd64 currently depends on, and its version. One apt-cache call (each costs
 * ~0.7 s): the metapackage pins the exact version ("Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)").
 */
async function currentKernelPackage(): Promise<{ pkg: string; version: string }> {
  for (let attempt = 0; ; attempt++) {
    const show = await runCommand(["apt-cache", "show", "--no-all-versions", "linux-image-amd64"], { timeoutMs: 60_000 });
    const m = show.stdout.match(/^Depends:.*?\b(linux-image-[\w.+-]+-amd64)\s*\(=\s*([^)\s]+)\)/m);
    if (m?.[1] && m[2]) return { pkg: m[1], version: m[2] };
    // No package lists yet (fresh machine): update once, then give up with what apt said.
    if (attempt > 0) throw new Error(`cannot find the guest kernel package: 'apt-cache show linux-image-amd64' said:\n${show.stdout}${show.stderr}`);
    await aptUpdate();
  }
}

// Asked once per process: several labs in one test run share the answer.
let current: Promise<{ pkg: string; version: string }> | null = null;

// One fetch per process even when labs boot in parallel.
const fetches = new Map<string, Promise<void>>();

/** Returns the cached kernel for Debian's current linux-image-amd64, fetching and unpacking it on first use. */
export async function ensureKernel(cacheDir: string): Promise<LabKernel> {
  current ??= currentKernelPackage();
  const { pkg, version } = await current.catch((err: unknown) => {
    current = null;
    throw err;
  });
  // The version is part of the key: a rebuilt package with the same ABI name must not reuse the old files.
  const dir = join(cacheDir, "kernel", `${pkg}_${version.replace(/[^\w.+-]/g, "_")}`);
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) {
    let fetch = fetches.get(dir);
    if (!fetch) {
      fetch = fetchKernel(pkg, version, dir).finally(() => fetches.delete(dir));
      fetches.set(dir, fetch);
    }
    await fetch;
  }
  const m = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
  return { pkg, pkgVersion: version, release: m.release, vmlinuz: join(dir, "vmlinuz"), modules: m.modules.map((name) => join(dir, "modules", `${name}.ko`)) };
}

async function fetchKernel(pkg: string, version: string, dir: string): Promise<void> {
  const parent = join(dir, "..");
  mkdirSync(parent, { recursive: true });
  // Built in a private temp dir and renamed into place, so a concurrent or interrupted run never sees half a cache.
  const work = mkdtempSync(join(parent, ".tmp-"));
  try {
    await mustRun(["apt-get", "download", `${pkg}=${version}`], { cwd: work, timeoutMs: 600_000 });
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg}=${version} produced no .deb in ${work}`);
    const tree = join(work, "tree");
    await mustRun(["dpkg", "-x", join(work, deb), tree], { timeoutMs: 300_000 });
    const release = readdirSync(join(tree, "lib/modules"))[0];
    if (!release) throw new Error(`${deb} has no lib/modules/<release>`);
    // The package ships no modules.dep (made at install time), so make one to learn the dependencies.
    await mustRun(["depmod", "-b", tree, release], { timeoutMs: 300_000 });
    const modDir = join(tree, "lib/modules", release);
    const order = resolveModules(readFileSync(join(modDir, "modules.dep"), "utf8"), readFileSync(join(modDir, "modules.builtin"), "utf8"), wantedModules);
    const out = join(work, "out");
    mkdirSync(join(out, "modules"), { recursive: true });
    const vmlinuz = readdirSync(join(tree, "boot")).find((f) => f.startsWith("vmlinuz-"));
    if (!vmlinuz) throw new Error(`${deb} has no boot/vmlinuz-*`);
    renameSync(join(tree, "boot", vmlinuz), join(out, "vmlinuz"));
    for (const m of order) writeFileSync(join(out, "modules", `${m.name}.ko`), await uncompressed(join(modDir, m.file)));
    const manifest: Manifest = { release, modules: order.map((m) => m.name) };
    writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    // Another process may have finished the same kernel meanwhile: theirs is as good as ours.
    if (!existsSync(join(dir, "manifest.json"))) {
      rmSync(dir, { recursive: true, force: true });
      renameSync(out, dir);
    }
    // Older kernels are stale once the current one is in place; so are work dirs an interrupted run left (after an hour).
    for (const f of readdirSync(parent)) {
      const path = join(parent, f);
      const stale = f.startsWith(".tmp-") ? path !== work && Date.now() - statSync(path).mtimeMs > 3_600_000 : path !== dir;
      if (stale) rmSync(path, { recursive: true, force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A module's name as the kernel knows it: file name without .ko*, dashes as underscores. */
export function moduleName(file: string): string {
  return (file.split("/").pop() ?? file).replace(/\.ko(\.\w+)?$/, "").replace(/-/g, "_");
}

/**
 * The modules to load for `wanted`, dependencies first, from the text of modules.dep and modules.builtin.
 * A built-in module (and so its built-in dependencies) needs no loading.
 */
export function resolveModules(modulesDep: string, modulesBuiltin: string, wanted: readonly string[]): Array<{ name: string; file: string }> {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of modulesDep.split("\n")) {
    const at = line.indexOf(":");
    if (at < 0) continue;
    const file = line.slice(0, at).trim();
    deps.set(moduleName(file), { file, deps: line.slice(at + 1).trim().split(/\s+/).filter(Boolean).map(moduleName) });
  }
  const builtin = new Set(modulesBuiltin.split("\n").filter(Boolean).map(moduleName));
  const order: Array<{ name: string; file: string }> = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name) || builtin.has(name)) return;
    seen.add(name);
    const entry = deps.get(name);
    if (!entry) throw new Error(`kernel module "${name}" is neither built in nor in modules.dep`);
    for (const d of entry.deps) visit(d);
    order.push({ name, file: entry.file });
  };
  for (const w of wanted) visit(w);
  return order;
}

/** The module file's bytes, decompressed on the host (busybox insmod cannot read .ko.xz / .ko.zst). */
async function uncompressed(path: string): Promise<Buffer> {
  const tool = path.endsWith(".xz") ? "xz" : path.endsWith(".zst") ? "zstd" : path.endsWith(".gz") ? "gzip" : null;
  if (!tool) return readFileSync(path);
  const proc = Bun.spawn([tool, "-dc", path], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
  const [data, err, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`decompressing ${path} with ${tool} failed (exit ${code}): ${err.trim()} (apt-get install -y ${tool === "xz" ? "xz-utils" : tool})`);
  return Buffer.from(data);
}
