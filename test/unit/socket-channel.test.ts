import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VmchanError } from "../../lib/errors.ts";
import { ExitCode } from "../../lib/exit-codes.ts";
import { SocketChannel } from "../../lib/host/socket-channel.ts";
import { unixSocketHeld } from "../../lib/host/unix-held.ts";
import { pump } from "../../lib/relay.ts";
import { bytesSource } from "../../lib/fd-stream.ts";

let dir: string;
let server: net.Server | undefined;
afterEach(() => {
  server?.close();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** A server that records what it receives, when, and how the client ended (half-close or full close). */
function recordingServer(path: string) {
  const got: Buffer[] = [];
  const events: { what: string; at: number }[] = [];
  const ready = new Promise<void>((resolve) => {
    server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", (d) => {
        got.push(Buffer.from(d));
        events.push({ what: "data", at: performance.now() });
      });
      s.on("end", () => events.push({ what: "end", at: performance.now() }));
      s.on("close", () => events.push({ what: "close", at: performance.now() }));
    });
    server.listen(path, resolve);
  });
  return { got, events, ready };
}

describe("host socket channel", () => {
  test("send waits for the output queue and the linger before closing, and delivers every byte", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-sock-"));
    const path = join(dir, "s.sock");
    const srv = recordingServer(path);
    await srv.ready;
    const data = crypto.getRandomValues(new Uint8Array(3 * 1024 * 1024 + 17).subarray(0, 65536));
    const big = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i += data.length) big.set(data.subarray(0, Math.min(data.length, big.length - i)), i);
    const ch = await SocketChannel.connect(path, "test", { lingerMs: 300 });
    const t0 = performance.now();
    await pump(bytesSource(big), ch);
    await ch.close();
    const finished = performance.now();
    // The server's last data events may still be queued behind the close in this process's event loop.
    for (let i = 0; i < 500 && Buffer.concat(srv.got).length < big.length; i++) await Bun.sleep(10);
    const got = Buffer.concat(srv.got);
    expect(got.equals(Buffer.from(big)), `the server got ${got.length} of ${big.length} bytes`).toBe(true);
    const lastData = Math.max(...srv.events.filter((e) => e.what === "data").map((e) => e.at));
    expect(finished - lastData).toBeGreaterThanOrEqual(290);
    expect(finished - t0).toBeGreaterThanOrEqual(300);
  });

  test("refuses a socket another client already holds, with the busy code", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-sock-"));
    const path = join(dir, "held.sock");
    const srv = recordingServer(path);
    await srv.ready;
    expect(unixSocketHeld(path)).toBe(false);
    const first = net.connect(path);
    await new Promise((r) => first.on("connect", r));
    // The kernel shows the connection once the server side has it; wait for that rather than a fixed time.
    for (let i = 0; i < 500 && !unixSocketHeld(path); i++) await Bun.sleep(10);
    expect(unixSocketHeld(path), "the connected socket never showed as held").toBe(true);
    const err = await SocketChannel.connect(path, "vm:port").catch((e) => e);
    expect(err).toBeInstanceOf(VmchanError);
    expect(err.code).toBe(ExitCode.busy);
    expect(err.message).toBe(`cannot connect to "vm:port": another client already holds ${path}`);
    first.destroy();
  });

  test("reads until the peer closes, pausing instead of buffering without bound", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-sock-"));
    const path = join(dir, "r.sock");
    const payload = Buffer.alloc(8 * 1024 * 1024, 7);
    await new Promise<void>((resolve) => {
      server = net.createServer((s) => s.end(payload)).listen(path, resolve);
    });
    const ch = await SocketChannel.connect(path, "reader");
    let total = 0;
    let maxQueued = 0;
    for (;;) {
      await Bun.sleep(0);
      const queued = (ch as unknown as { queued: number }).queued;
      maxQueued = Math.max(maxQueued, queued);
      const chunk = await ch.read();
      if (!chunk) break;
      total += chunk.byteLength;
    }
    expect(total).toBe(payload.length);
    // the cap is 1 MiB; one socket read may overshoot it by a chunk
    expect(maxQueued).toBeLessThan(2 * 1024 * 1024);
    ch.close();
  });

  test("a missing socket is reported as not found with a hint", async () => {
    dir = mkdtempSync(join(tmpdir(), "vmchan-sock-"));
    const err = await SocketChannel.connect(join(dir, "none.sock"), "vm:x").catch((e) => e);
    expect(err.code).toBe(ExitCode.notFound);
    expect(err.message).toContain("no socket at");
  });
});
