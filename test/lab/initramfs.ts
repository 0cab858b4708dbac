/**
 * The guest's initramfs: a cached base archive (busybox, init, agent, modules, the binary's libraries) and, per boot,
 * a second archive with the vmchan binary appended to it. The kernel unpacks concatenated newc archives in order.
 * Uncompressed on purpose: decompressing ~110 MB under TCG costs seconds, reading it does not.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { CpioWriter, padding, trailer } from "./cpio.ts";
import { mustRun } from "./host-deps.ts";
import type { LabKernel } from "./kernel.ts";

/** Where the vmchan binary is in the guest (on PATH). */
export const guestBinary = "/usr/bin/vmchan";

// Bump when the layout below changes in a way the inputs hashed into the key do not show.
const formatVersion = 1;
const busyboxPath = "/bin/busybox";
const guestDir = new URL("./guest/", import.meta.url).pathname;

/**
 * The guest's account files. "test" (password "vmchan", uid 1000) is for login tests (getty, console); root keeps no
 * password entry, so it cannot log in. Hashed into the cache key, so changing them rebuilds the base archive.
 */
export const labUser = { name: "test", password: "vmchan", uid: 1000, home: "/home/test" } as const;
const accounts: ReadonlyArray<{ path: string; text: string; mode: number }> = [
  { path: "etc/passwd", text: `root:x:0:0:root:/root:/bin/sh\ntest:x:1000:1000:vmchan test user:/home/test:/bin/sh\n`, mode: 0o644 },
  { path: "etc/group", text: "root:x:0:\ntest:x:1000:\n", mode: 0o644 },
  // openssl passwd -6 -salt vmchanlabsalt01 vmchan
  { path: "etc/shadow", text: "test:$6$vmchanlabsalt01$W3lJHHGXZyYYtcuSr0ONk5uOMD1fNfZ8RNTlWRNKFRsPTgqfCGtP9RbmbonkuABB3cPmVqw7ApI.Tl.yyoEPZ1:19000:0:99999:7:::\n", mode: 0o600 },
];

/** The shared libraries (and dynamic loader) `ldd` lists for `binary`: paths as the binary looks them up. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await mustRun(["ldd", binary], { timeoutMs: 60_000 }).catch((err: Error) => {
    // A static binary (the musl build) has no libraries; ldd says so and exits non-zero.
    if (/not a dynamic executable|statically linked/.test(err.message)) return "";
    throw err;
  });
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = line.match(/=>\s*(\/\S+)/) ?? line.match(/^\s*(\/\S+)\s+\(/);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

function sha256(data: Uint8Array | string): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

/** Everything the base archive is made of, with the bytes that go in. */
interface BaseInputs {
  init: string;
  agent: string;
  busybox: Buffer;
  applets: string[];
  libs: Array<{ path: string; data: Buffer }>;
  modules: Array<{ name: string; data: Buffer }>;
}

async function gatherInputs(kernel: LabKernel, binary: string): Promise<BaseInputs> {
  const applets = (await mustRun([busyboxPath, "--list-full"], { timeoutMs: 30_000 })).split("\n").filter(Boolean);
  const libs = (await sharedLibraries(binary)).map((path) => ({ path, data: readFileSync(path) }));
  return {
    init: readFileSync(join(guestDir, "init.sh"), "utf8"),
    agent: readFileSync(join(guestDir, "agent.sh"), "utf8"),
    busybox: readFileSync(busyboxPath),
    applets,
    libs,
    modules: kernel.modules.map((path) => ({ name: (path.split("/").pop() ?? path).replace(/\.ko$/, ""), data: readFileSync(path) })),
  };
}

/** The cache key: a hash of every input's bytes, so a changed script, library or kernel never reuses a stale archive. */
function cacheKey(kernel: LabKernel, inp: BaseInputs): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(JSON.stringify({ formatVersion, kernel: [kernel.pkg, kernel.pkgVersion, kernel.release], applets: inp.applets, accounts }));
  for (const part of [inp.init, inp.agent, sha256(inp.busybox)]) h.update(part + "\0");
  for (const l of inp.libs) h.update(`${l.path}\0${sha256(l.data)}\0`);
  for (const m of inp.modules) h.update(`${m.name}\0${sha256(m.data)}\0`);
  return h.digest("hex").slice(0, 16);
}

function buildBase(inp: BaseInputs): Buffer {
  const w = new CpioWriter(1);
  const dirs = new Set<string>();
  const addDir = (path: string) => {
    if (path === "." || path === "" || dirs.has(path)) return;
    addDir(dirname(path));
    dirs.add(path);
    w.dir(path);
  };
  for (const d of ["dev", "proc", "sys", "tmp", "root", "etc", "lab", "lib/modules/lab", "usr/bin", "usr/sbin", "bin", "sbin"]) addDir(d);
  // Without /dev/console in the archive, init would start with no stdin/stdout/stderr.
  w.charDevice("dev/console", 5, 1);
  w.file("bin/busybox", inp.busybox, 0o755);
  for (const applet of inp.applets) {
    if (applet === "bin/busybox") continue;
    addDir(dirname(applet));
    w.symlink(applet, "/bin/busybox");
  }
  w.file("init", inp.init, 0o755);
  w.file("lab/agent", inp.agent, 0o755);
  for (const m of inp.modules) w.file(`lib/modules/lab/${m.name}.ko`, m.data);
  w.file("lib/modules/lab/order", inp.modules.map((m) => m.name).join("\n") + "\n");
  for (const l of inp.libs) {
    const rel = l.path.replace(/^\/+/, "");
    addDir(dirname(rel));
    w.file(rel, l.data, 0o755);
  }
  for (const a of accounts) w.file(a.path, a.text, a.mode);
  addDir(labUser.home.slice(1));
  return w.bytes();
}

/** Returns the path of the cached base archive for this kernel and binary's libraries, building it if needed. */
export async function ensureBaseInitramfs(cacheDir: string, kernel: LabKernel, binary: string): Promise<string> {
  const inputs = await gatherInputs(kernel, binary);
  const dir = join(cacheDir, "initramfs");
  const path = join(dir, `base-${cacheKey(kernel, inputs)}.cpio`);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  // Written under a private name and renamed, so a concurrent boot never reads half an archive.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, buildBase(inputs));
  renameSync(tmp, path);
  // Older bases are stale by construction; QEMU reads its initrd at start, and each lab has its own copy.
  for (const f of readdirSync(dir)) if (f.startsWith("base-") && join(dir, f) !== path && !f.endsWith(".tmp")) rmSync(join(dir, f), { force: true });
  return path;
}

/** Writes `out`: the base archive followed by a second archive holding `binary` at guestBinary. */
export function writeInitrd(out: string, basePath: string, binary: string): void {
  const bin = readFileSync(binary);
  // High inode numbers: equal numbers across the two archives would make the kernel hard-link the entries.
  const w = new CpioWriter(1_000_000).dir("usr").dir("usr/bin");
  const head = Buffer.concat([w.bytes(false), w.fileHeader(guestBinary.slice(1), bin.length, 0o755)]);
  const size = head.length + bin.length;
  const pad = padding(size);
  const fd = openSync(out, "w");
  try {
    for (const part of [readFileSync(basePath), head, bin, pad, trailer(size + pad.length)]) writeAll(fd, part);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, data: Buffer): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}
