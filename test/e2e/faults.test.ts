/**
 * Fault tests of the compiled binary with local peers: reconnect cycles, a peer that dies, a
 * consumer that stalls, a guest driving the terminal. Bounded in time; no VM needed here (the
 * guest-side faults are in the *.lab.test.ts files).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../lib/exit-codes.ts";
import { VMCHAN } from "../support/binary.ts";
import { randomBytes, sha256 } from "../support/host-io.ts";
import { fdCount, memoryOf, waitListening } from "../support/proc-stats.ts";

const dir = mkdtempSync(join(tmpdir(), "vmchan-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;

function connect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** A TCP connection to 127.0.0.1:`port`. */
function tcpConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** tcpConnect, retried while the listener is not up yet (at most `timeoutMs`). */
async function tcpWhenListening(port: number, timeoutMs = 20_000): Promise<net.Socket> {
  for (const until = Date.now() + timeoutMs; ; ) {
    try {
      return await tcpConnect(port);
    } catch (err) {
      if (Date.now() > until) throw err;
      await Bun.sleep(50);
    }
  }
}

/**
 * A process's descriptor count once it has settled: the same reading three times 100 ms apart, so a session
 * that is still closing is not counted (a loaded machine can take a while to close it).
 */
async function settledFdCount(pid: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  let same = 0;
  for (;;) {
    const n = fdCount(pid);
    same = n === last ? same + 1 : 0;
    last = n;
    if (same >= 2 || Date.now() > deadline) return n;
    await Bun.sleep(100);
  }
}

/** Waits until `pid` has at most `want` descriptors; fails listing what it still has open. */
async function expectFdsBackTo(pid: number, want: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (fdCount(pid) > want && Date.now() < deadline) await Bun.sleep(100);
  const { readdirSync, readlinkSync } = await import("node:fs");
  const open = readdirSync(`/proc/${pid}/fd`).map((fd) => `${fd} -> ${(() => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return "?"; } })()}`);
  expect(open.length, `descriptors still open after ${timeoutMs} ms (${want} before): ${open.join(", ")}`).toBeLessThanOrEqual(want);
}

/** Sends `data` and reads back `n` bytes, then closes fully. */
function roundTrip(sock: net.Socket, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let len = 0;
    sock.on("data", (d: Buffer) => {
      got.push(d);
      len += d.length;
      if (len >= data.length) {
        sock.destroy();
        resolve(Buffer.concat(got));
      }
    });
    sock.on("error", reject);
    sock.on("close", () => len < data.length && reject(new Error(`closed after ${len} of ${data.length} bytes`)));
    sock.write(data);
  });
}

describe("faults", () => {
  test("100 connect/disconnect cycles through bridge: every cycle's bytes come back, the process lives, no fd leaks", async () => {
    // A TCP echo server that closes when its client has finished, as servers do.
    const echo = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: { data: (s, d) => void s.write(d), end: (s) => void s.end() },
    });
    const sock = join(dir, "bridge.sock");
    const proc = Bun.spawn([VMCHAN, "bridge", `unix-listen:${sock}`, `tcp:127.0.0.1:${echo.port}`], { stdout: "ignore", stderr: "pipe" });
    try {
      await waitListening(sock);
      let fdsAfterFirst = 0;
      for (let i = 0; i < 100; i++) {
        const data = randomBytes(4096, i + 1);
        const back = await roundTrip(await connect(sock), data);
        expect(back.equals(data), `cycle ${i}: ${back.length} bytes back, sha256 ${sha256(back)} against ${sha256(data)}`).toBe(true);
        // Counted after a few cycles: the runtime opens some descriptors lazily on first use.
        if (i === 9) fdsAfterFirst = await settledFdCount(proc.pid);
      }
      expect(proc.exitCode).toBeNull();
      await expectFdsBackTo(proc.pid, fdsAfterFirst);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
      echo.stop(true);
    }
  }, 120_000);

  test("100 connect/disconnect cycles against listen -k: every cycle's bytes arrive in order, no fd leaks", async () => {
    const sock = join(dir, "listen.sock");
    const proc = Bun.spawn([VMCHAN, "listen", "-k", `unix:${sock}`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    // Read as it comes, so clients can be paced: listen keeps at most MAX_WAITING_CLIENTS waiting and closes the rest.
    const got: Buffer[] = [];
    let received = 0;
    const output = (async () => {
      for await (const chunk of proc.stdout) {
        got.push(Buffer.from(chunk));
        received += chunk.byteLength;
      }
      return Buffer.concat(got);
    })();
    const expected = createHash("sha256");
    try {
      await waitListening(sock);
      let fdsAfterFirst = 0;
      for (let i = 0; i < 100; i++) {
        // A few clients may wait while one is served; more would be refused (see the flood test).
        for (const until = Date.now() + 30_000; received < (i - 4) * 1024 && Date.now() < until; ) await Bun.sleep(5);
        const data = randomBytes(1024, 1000 + i);
        expected.update(data);
        const s = await connect(sock);
        await new Promise<void>((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
        s.destroy();
        if (i === 9) fdsAfterFirst = await settledFdCount(proc.pid);
      }
      expect(proc.exitCode).toBeNull();
      // The last clients may still be waiting their turn: SIGTERM only once every byte is out.
      for (const until = Date.now() + 30_000; received < 100 * 1024 && Date.now() < until; ) await Bun.sleep(10);
      await expectFdsBackTo(proc.pid, fdsAfterFirst);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    const out = await output;
    expect(out.length, `listen's stderr: ${await new Response(proc.stderr).text()}`).toBe(100 * 1024);
    expect(sha256(out)).toBe(expected.digest("hex"));
  }, 120_000);

  test("a peer killed mid-transfer: send reports it with the peer-gone code and the byte count, no hang", async () => {
    const sock = join(dir, "victim.sock");
    // The peer is a separate process that reads a little, then is killed with SIGKILL.
    // It says "connected" once send's connection is accepted, so it is killed mid-transfer, not before it. On a
    // loaded machine send may not yet have seen its connection open: then the connect itself fails with the reset,
    // which is the peer-gone code too.
    const victim = Bun.spawn(
      [process.execPath, "-e", `require("net").createServer(s => { s.pause(); console.log("connected"); }).listen(${JSON.stringify(sock)})`],
      { stdout: "pipe", stderr: "inherit" },
    );
    await waitListening(sock);
    const file = join(dir, "big.bin");
    writeFileSync(file, randomBytes(64 * MiB, 9));
    const send = Bun.spawn([VMCHAN, "send", `unix:${sock}`, file], { stdout: "ignore", stderr: "pipe" });
    const victimOut = victim.stdout.getReader();
    let said = "";
    while (!said.includes("connected")) {
      const { value, done } = await victimOut.read();
      if (done) break;
      said += Buffer.from(value).toString();
    }
    expect(said).toContain("connected");
    victim.kill("SIGKILL");
    await victim.exited;
    const t0 = performance.now();
    // A send that missed the peer's death would block until the 30 s kill; noticing it takes one failed write.
    const timer = setTimeout(() => send.kill("SIGKILL"), 30_000);
    const [code, stderr] = await Promise.all([send.exited, new Response(send.stderr).text()]);
    clearTimeout(timer);
    expect(performance.now() - t0, `send ended with ${code}: ${stderr}`).toBeLessThan(15_000);
    expect(code, stderr).toBe(ExitCode.peerGone);
    expect(stderr).toMatch(/^vmchan: (cannot write to "unix:.+": the peer closed the connection after \d+ bytes were written|connection "unix:.+" failed: .+) \(hint: .+\)\n$|^vmchan: connection "unix:.+" failed: .+\n$/);
    rmSync(file);
  }, 60_000);

  test("a consumer that stops reading for 5 s pauses the producer, memory stays under 64 MiB, and every byte arrives", async () => {
    const inSock = join(dir, "stall-in.sock");
    const outSock = join(dir, "stall-out.sock");
    const total = 256 * MiB;
    const hashOut = createHash("sha256");
    let consumed = 0;
    let consumer!: net.Socket;
    const done = new Promise<void>((resolve) => {
      const server = net.createServer((s) => {
        consumer = s;
        s.on("data", (d: Buffer) => {
          hashOut.update(d);
          consumed += d.length;
          if (consumed >= total) {
            s.destroy();
            server.close();
            resolve();
          }
        });
      });
      server.listen(outSock);
    });
    const proc = Bun.spawn([VMCHAN, "bridge", "--once", "--linger", "0", `unix-listen:${inSock}`, `unix:${outSock}`], { stdout: "ignore", stderr: "pipe" });
    try {
      await waitListening(inSock);
      const producer = await connect(inSock);
      const chunk = randomBytes(MiB, 42);
      const hashIn = createHash("sha256");
      let produced = 0;
      const produce = (async () => {
        while (produced < total) {
          hashIn.update(chunk);
          produced += chunk.length;
          if (!producer.write(chunk)) await new Promise((r) => producer.once("drain", r));
        }
      })();
      while (consumed < 8 * MiB) await Bun.sleep(10);
      consumer.pause();
      // Wait until the socket buffers on the way have filled and the producer stops, however slow the machine
      // (at most 30 s; an unbounded relay never stops, and is caught below).
      for (let last = -1, until = Date.now() + 30_000; produced !== last && produced < total && Date.now() < until; ) {
        last = produced;
        await Bun.sleep(500);
      }
      const producedAtPause = produced;
      await Bun.sleep(4000);
      const mem = memoryOf(proc.pid);
      expect(mem, "vmchan exited during the pause").not.toBeNull();
      expect(produced - producedAtPause, `the producer went on from ${producedAtPause} to ${produced} bytes while the consumer was paused`).toBeLessThan(4 * MiB);
      expect(produced).toBeLessThan(total);
      expect(mem!.rss).toBeLessThan(64 * MiB);
      consumer.resume();
      await produce;
      await done;
      expect(hashOut.digest("hex")).toBe(hashIn.digest("hex"));
      console.log(`stalled consumer: vmchan RSS ${(mem!.rss / MiB).toFixed(1)} MiB during the pause, peak ${((memoryOf(proc.pid)?.peak ?? NaN) / MiB).toFixed(1)} MiB for 256 MiB`);
      producer.destroy();
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
  }, 120_000);

  test("a flood of 3000 TCP connection attempts while a session runs: descriptors stay bounded, extras are closed, the session and a waiting client are served", async () => {
    const echo = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: { data: (s, d) => void s.write(d), end: (s) => void s.end() },
    });
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const proc = Bun.spawn([VMCHAN, "bridge", "-v", `tcp-listen:127.0.0.1:${port}`, `tcp:127.0.0.1:${echo.port}`], { stdout: "ignore", stderr: "pipe" });
    const stderrText = new Response(proc.stderr).text();
    const tcp = () => tcpConnect(port);
    const flood: net.Socket[] = [];
    try {
      // The bridge listens once it has started: retry a refused connect, up to 20 s.
      const active = await tcpWhenListening(port);
      expect((await roundTrip(active, Buffer.from("first session"))).toString()).toBe("first session");
      const session = await tcp(); // the session that stays active during the flood
      session.on("error", () => {});
      const waiter = await tcp(); // waits behind it, and must be served later
      const before = await settledFdCount(proc.pid);
      let closedByServer = 0;
      let peakFds = before;
      const failures = new Map<string, number>();
      for (let batch = 0; batch < 30; batch++) {
        const opened = await Promise.allSettled(Array.from({ length: 100 }, () => tcp()));
        for (const r of opened)
          if (r.status === "fulfilled") {
            r.value.on("error", () => {});
            r.value.on("close", () => closedByServer++);
            flood.push(r.value);
          } else {
            const code = (r.reason as { code?: string }).code ?? String(r.reason);
            failures.set(code, (failures.get(code) ?? 0) + 1);
          }
        peakFds = Math.max(peakFds, fdCount(proc.pid));
      }
      peakFds = Math.max(peakFds, await settledFdCount(proc.pid));
      console.log(
        `flood: ${flood.length} of 3000 connected (failed: ${JSON.stringify(Object.fromEntries(failures))}), vmchan fds ${before} before, peak ${peakFds}, ${closedByServer} closed by vmchan`,
      );
      expect(flood.length, "almost no connection got through: the flood did not happen").toBeGreaterThan(200);
      // 16 waiting at most, plus a few the runtime opens lazily; unbounded queueing held one per connection.
      expect(peakFds - before, `descriptors grew from ${before} to ${peakFds} during ${flood.length} connections`).toBeLessThan(40);
      for (const until = Date.now() + 20_000; closedByServer < flood.length - 20 && Date.now() < until; ) await Bun.sleep(50);
      expect(closedByServer, `only ${closedByServer} of ${flood.length} extra connections were closed`).toBeGreaterThanOrEqual(flood.length - 20);
      expect(proc.exitCode).toBeNull();
      // The session still works, and the client that waited before the flood is served after it.
      expect((await roundTrip(session, Buffer.from("during"))).toString()).toBe("during");
      expect((await roundTrip(waiter, Buffer.from("after"))).toString()).toBe("after");
    } finally {
      for (const s of flood) s.destroy();
      proc.kill("SIGTERM");
      await proc.exited;
      echo.stop(true);
    }
    expect(await stderrText).toContain("clients already waiting; closing new connections until one is served");
  }, 180_000);

  test("clients that connect and leave (FIN, RST) while a session runs hold no waiting slot and never become sessions", async () => {
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const sessions = join(dir, `sessions-${port}`);
    const data = join(dir, `data-${port}`);
    writeFileSync(sessions, "");
    writeFileSync(data, "");
    const proc = Bun.spawn([VMCHAN, "listen", "-k", "-v", "--exec", `sh -c 'echo x >> ${sessions}; tee -a ${data}'`, `tcp-listen:127.0.0.1:${port}`], {
      stdout: "ignore",
      stderr: "pipe",
    });
    const stderrText = new Response(proc.stderr).text();
    const tcp = () => tcpConnect(port);
    const spawned = () => readFileSync(sessions, "utf8").split("\n").filter(Boolean).length;
    try {
      // The bridge listens once it has started: retry a refused connect, up to 20 s.
      const active = await tcpWhenListening(port);
      active.on("error", () => {});
      // The session runs: its bytes come back through the command.
      const echoed = new Promise<string>((resolve) => active.once("data", (d) => resolve(d.toString())));
      active.write("first");
      expect(await echoed).toBe("first");
      const before = await settledFdCount(proc.pid);
      // One client sends bytes and leaves: it is still a session (its bytes reach the command), as with nc.
      const sender = await tcp();
      sender.on("error", () => {});
      sender.end("bytes from a client that left\n");
      // 16 that connect and close (FIN), with and without waiting for the connection, and 16 that reset (RST).
      for (let i = 0; i < 16; i++) {
        const s = await tcp();
        s.on("error", () => {});
        if (i % 2 === 0) s.end();
        else s.destroy();
      }
      const rst = Bun.spawnSync([
        "python3",
        "-c",
        `import socket, struct\nfor _ in range(16):\n  s = socket.create_connection(("127.0.0.1", ${port}))\n  s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))\n  s.close()\n`,
      ]);
      expect(rst.exitCode, rst.stderr.toString()).toBe(0);
      // Gone clients are dropped and their descriptors closed: back near the count before them (the sender, and
      // what the runtime opens lazily); while they held their slots, 16 more stayed open.
      await expectFdsBackTo(proc.pid, before + 4);
      // A real client now finds a free slot, waits, and is served once the session ends.
      const real = await tcp();
      real.on("error", () => {});
      const realClosed = new Promise<string>((resolve) => real.once("close", () => resolve("closed by vmchan")));
      active.end();
      const served = await Promise.race([roundTrip(real, Buffer.from("real client")).then((b) => b.toString()), realClosed]);
      expect(served, "the real client after 32 that left").toBe("real client");
      expect(proc.exitCode).toBeNull();
      expect(spawned(), `commands started: the first session, the sender, the real client; ${readFileSync(sessions, "utf8")}`).toBe(3);
      const want = "firstbytes from a client that left\nreal client";
      // tee writes the file after our copy: wait for it (bounded), then compare.
      for (const until = Date.now() + 10_000; readFileSync(data, "utf8") !== want && Date.now() < until; ) await Bun.sleep(20);
      expect(readFileSync(data, "utf8"), "what the commands received").toBe(want);
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    const log = await stderrText;
    const ended = log.split("\n").filter((l) => /session \d+ ended/.test(l));
    expect(ended.length, `session lines: ${JSON.stringify(ended)}; stderr ${JSON.stringify(log)}`).toBe(3);
  }, 120_000);

  test("a terminal gets control characters from the peer escaped, unless --raw", async () => {
    const sock = join(dir, "tty.sock");
    const server = net.createServer((s) => s.end("\x1b]0;pwned\x07\x1b[2Jhello\r\n"));
    await new Promise<void>((r) => server.listen(sock, r));
    const underPty = async (args: string) => {
      // script(1) gives the binary a terminal as stdout, as a user's shell would.
      const p = Bun.spawn(["script", "-qec", `${VMCHAN} ${args}`, "/dev/null"], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
      const out = await new Response(p.stdout).text();
      await p.exited;
      return out;
    };
    const escaped = await underPty(`cat unix:${sock}`);
    const raw = await underPty(`cat --raw unix:${sock}`);
    server.close();
    expect(escaped).toContain("^[]0;pwned^G^[[2Jhello");
    expect(escaped).not.toContain("\x1b");
    expect(raw).toContain("\x1b]0;pwned\x07\x1b[2Jhello");
  }, 30_000);
});
