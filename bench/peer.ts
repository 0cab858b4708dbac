#!/usr/bin/env bun
/**
 * The benchmark's endpoints, one process each, on Bun's native sockets so they cost as little as
 * possible (bench/run.ts measures them connected to each other directly, to show they are not the
 * bottleneck). Every mode prints one JSON line on stdout when done; times are epoch milliseconds
 * (performance.timeOrigin + performance.now()), comparable across processes.
 *
 *   bun bench/peer.ts source PATH BYTES          connect, write BYTES from memory, close
 *   bun bench/peer.ts sink PATH BYTES [RATE]     listen, read and count BYTES (at most RATE bytes/s),
 *                                                report, close 300 ms later
 *   bun bench/peer.ts echo PATH                  listen, send back every byte of one client
 *   bun bench/peer.ts ping PATH MS               connect, 1-byte request/response for MS ms
 */
import type { Socket } from "bun";
import { rmSync } from "node:fs";

/** How long the sink keeps the connection after it has every byte. */
const HOLD_MS = 300;
const now = () => performance.timeOrigin + performance.now();
const [mode, path, arg] = process.argv.slice(2);
if (!mode || !path) {
  console.error("usage: peer.ts source|sink|echo|ping PATH [ARG...]");
  process.exit(2);
}

function done(result: Record<string, unknown>): never {
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

/** Connects, retrying while the listener is not up yet (the relay creates its socket asynchronously). */
async function connect<T>(handlers: Parameters<typeof Bun.connect<T>>[0]["socket"], data: T): Promise<Socket<T>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await Bun.connect<T>({ unix: path!, socket: handlers, data });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await Bun.sleep(5);
    }
  }
}

if (mode === "source") {
  const total = Number(arg);
  const block = new Uint8Array(1024 * 1024).map((_, i) => (i * 131) & 0xff);
  let sent = 0;
  let start = 0;
  let finished = false;
  const pumpOut = (s: Socket<null>) => {
    while (sent < total) {
      const want = Math.min(block.byteLength, total - sent);
      const off = sent % block.byteLength;
      const n = s.write(off === 0 && want === block.byteLength ? block : block.subarray(off, off + Math.min(want, block.byteLength - off)));
      if (n <= 0) return; // kernel buffer full: wait for drain
      sent += n;
    }
    if (!finished) {
      finished = true;
      const end = now();
      s.end();
      done({ start, end, bytes: sent });
    }
  };
  await connect<null>(
    {
      open(s) {
        start = now();
        pumpOut(s);
      },
      drain: pumpOut,
      data() {},
      error(_s, err) {
        console.error(`source: ${err.message}`);
        process.exit(1);
      },
    },
    null,
  );
} else if (mode === "sink") {
  const total = Number(arg);
  const rate = Number(process.argv[5] ?? "0"); // bytes per second, 0 = unlimited
  rmSync(path, { force: true });
  let got = 0;
  let reported = false;
  let first = 0;
  let t0 = 0;
  let resumeTimer: ReturnType<typeof setTimeout> | null = null;
  const server = Bun.listen<null>({
    unix: path,
    socket: {
      open() {
        t0 = now();
      },
      data(s, chunk) {
        if (got === 0) first = now();
        got += chunk.byteLength;
        if (got >= total && !reported) {
          reported = true;
          // Report at once, but stay connected a little so the driver can read the relay's peak RSS
          // (/proc/PID/status) before the relay sees the end of the session and exits.
          process.stdout.write(JSON.stringify({ first, end: now(), bytes: got }) + "\n");
          setTimeout(() => {
            s.terminate();
            server.stop(true);
            rmSync(path, { force: true });
            process.exit(0);
          }, HOLD_MS);
        }
        if (rate > 0 && !resumeTimer) {
          // Ahead of schedule: stop reading until the schedule catches up.
          const aheadMs = (got / rate) * 1000 - (now() - t0);
          if (aheadMs > 1) {
            s.pause();
            resumeTimer = setTimeout(() => {
              resumeTimer = null;
              s.resume();
            }, aheadMs);
          }
        }
      },
      close() {
        if (got < total) {
          console.error(`sink: connection closed after ${got} of ${total} bytes`);
          process.exit(1);
        }
      },
      error(_s, err) {
        console.error(`sink: ${err.message}`);
        process.exit(1);
      },
    },
    data: null,
  });
  process.stdout.write("listening\n");
} else if (mode === "echo") {
  rmSync(path, { force: true });
  const server = Bun.listen<null>({
    unix: path,
    socket: {
      data(s, chunk) {
        // 1-byte messages: a short write cannot happen on an idle socket.
        s.write(chunk);
      },
      close() {
        server.stop(true);
        rmSync(path, { force: true });
        done({});
      },
      error() {},
    },
    data: null,
  });
  process.stdout.write("listening\n");
} else if (mode === "ping") {
  const ms = Number(arg);
  const msg = new Uint8Array([0x2a]);
  let count = 0;
  let start = 0;
  let deadline = 0;
  const warmup = 200;
  await connect<null>(
    {
      open(s) {
        s.write(msg);
      },
      data(s, chunk) {
        for (let i = 0; i < chunk.byteLength; i++) {
          count++;
          if (count === warmup) {
            start = now();
            deadline = start + ms;
          }
          if (count > warmup && now() >= deadline) {
            const end = now();
            s.terminate();
            done({ roundTrips: count - warmup, start, end });
          }
          s.write(msg);
        }
      },
      error(_s, err) {
        console.error(`ping: ${err.message}`);
        process.exit(1);
      },
    },
    null,
  );
} else {
  console.error(`peer.ts: unknown mode "${mode}"`);
  process.exit(2);
}
