/**
 * Fuzzing the QMP client's line handling (lib/host/qmp.ts) against a fake QMP server that sends random
 * and mutated lines in random chunkings. The client must neither crash nor hang: every bad line is
 * ignored or ends in a clean rejection, events are delivered exactly as the line rules say whatever the
 * chunking, and the client still answers a command afterwards. Deterministic (seeded), bounded in time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { QmpClient, QmpError } from "../../lib/host/qmp.ts";
import { caseRng, describeThrown, mutate, type Rng } from "./kit.ts";
import { SEED } from "./fuzz.ts";

const greeting = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "" }, capabilities: ["oob"] } };
const enc = new TextEncoder();

// ------------------------------------------------------------------------------------------- lines

const EVENTS = ["VSERPORT_CHANGE", "DEVICE_DELETED", "SHUTDOWN", "STOP", "RESUME", "", "vserport_change", "X".repeat(300)];
const JSON_TOKENS = ["{", "}", "[", "]", '"', ":", ",", "\\", "\\u", "\\ud800", "null", "true", "1e999", "-", "\r", " ", "\t", "\u2028", "\0"];

function validEvent(rng: Rng): Record<string, unknown> {
  const data = rng.pick<unknown>([
    { id: `port-${rng.int(9)}`, open: rng.chance(0.5) },
    { device: "p", path: "/machine/peripheral/p" },
    {},
    [],
    "text",
    null,
    undefined,
    { nested: { deep: [1, 2, { x: "y" }] } },
  ]);
  const ev: Record<string, unknown> = { event: rng.pick(EVENTS) };
  if (data !== undefined) ev.data = data;
  if (rng.chance(0.8)) ev.timestamp = { seconds: rng.int(2e9), microseconds: rng.int(1e6) };
  return ev;
}

function replyish(rng: Rng): Record<string, unknown> {
  return rng.pick<Record<string, unknown>>([
    { return: {} },
    { return: rng.int(100), id: `vmchan-${rng.int(50)}` },
    { return: "x", id: rng.int(5) },
    { error: { class: "GenericError", desc: "junk" } },
    { error: { class: 7 } },
    { error: "not an object" },
    { error: null, id: "vmchan-1" },
    { return: null, error: { desc: "both" } },
  ]);
}

/** Whether the client takes `line` for a command reply (a JSON object with "return" or "error"). */
function replyShaped(line: Uint8Array): boolean {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(line));
    return isRecord(v) && ("return" in v || "error" in v);
  } catch {
    return false;
  }
}

/** One junk line (without its newline) as bytes. `replies`: may include lines the client takes for a command reply. */
function junkLine(rng: Rng, replies: boolean): Uint8Array {
  for (;;) {
    const line = anyJunkLine(rng, replies);
    if (replies || !replyShaped(line)) return line;
  }
}

function anyJunkLine(rng: Rng, replies: boolean): Uint8Array {
  const r = rng.int(12);
  let text: string;
  if (r < 3) text = JSON.stringify(validEvent(rng));
  else if (r < 4 && replies) text = JSON.stringify(replyish(rng));
  else if (r < 7) text = mutate(rng, JSON.stringify(rng.chance(0.7) ? validEvent(rng) : replyish(rng)), JSON_TOKENS);
  else if (r < 8) text = rng.pick(["", " ", "\r", "\t\r", "null", "[]", "42", '"event"', "{}", '{"event":1}', '{"event":null}', '{"QMP":{}}']);
  else if (r < 9) {
    // Random bytes, including invalid UTF-8, but never a newline.
    const bytes = new Uint8Array(rng.len(60));
    for (let i = 0; i < bytes.length; i++) bytes[i] = rng.int(256) === 10 ? 11 : rng.int(256);
    return bytes;
  } else if (r < 10) text = rng.chance(0.5) ? "[".repeat(rng.range(1, 20_000)) + "]".repeat(rng.range(0, 20_000)) : `{"event":"BIG","data":{"s":"${"y".repeat(rng.range(1, 100_000))}"}}`;
  else text = Array.from({ length: rng.len(20) }, () => rng.pick(JSON_TOKENS)).join("");
  if (rng.chance(0.1)) text += "\r";
  return enc.encode(text.replaceAll("\n", " "));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** What the client must make of a stream of lines: the events it must deliver, by the rules in qmp.ts. */
function expectedEvents(stream: Uint8Array): Array<{ event: string; data: unknown }> {
  const out: Array<{ event: string; data: unknown }> = [];
  for (const raw of new TextDecoder().decode(stream).split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (isRecord(v) && typeof v.event === "string") out.push({ event: v.event, data: isRecord(v.data) ? v.data : {} });
  }
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Writes `bytes` in random pieces (1 byte to 8 KiB), yielding now and then so the client sees many boundaries. */
async function writeChunked(rng: Rng, sock: net.Socket, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.byteLength) {
    const n = rng.chance(0.3) ? rng.range(1, 16) : rng.range(1, 8192);
    const ok = sock.write(bytes.subarray(at, at + n));
    at += n;
    if (!ok) await new Promise<void>((resolve) => sock.once("drain", resolve));
    else if (rng.chance(0.05)) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

// ------------------------------------------------------------------------------------------- fake server

type Handler = (sock: net.Socket, requests: AsyncIterator<Record<string, unknown>>) => Promise<void>;

/** A QMP server on a unix socket; each connection is handed to the current handler with its requests. */
class FakeQmp {
  readonly dir = mkdtempSync(join(tmpdir().length > 60 ? "/tmp" : tmpdir(), "vmchan-qmpfuzz-"));
  readonly path = join(this.dir, "qmp.sock");
  handler: Handler = async () => {};
  readonly #server = net.createServer((sock) => {
    sock.on("error", () => {});
    void this.handler(sock, requestsOf(sock)).catch(() => sock.destroy());
  });
  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }
  close(): void {
    this.#server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The client's requests, one JSON object per line. */
function requestsOf(sock: net.Socket): AsyncIterator<Record<string, unknown>> {
  const queue: Array<Record<string, unknown>> = [];
  const waiting: Array<(r: IteratorResult<Record<string, unknown>>) => void> = [];
  let buf = "";
  let done = false;
  const push = (r: IteratorResult<Record<string, unknown>>) => {
    const w = waiting.shift();
    if (w) w(r);
    else if (!r.done) queue.push(r.value);
  };
  sock.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    let at: number;
    while ((at = buf.indexOf("\n")) >= 0) {
      push({ done: false, value: JSON.parse(buf.slice(0, at)) as Record<string, unknown> });
      buf = buf.slice(at + 1);
    }
  });
  sock.on("close", () => {
    done = true;
    while (waiting.length) waiting.shift()!({ done: true, value: undefined });
  });
  return {
    next: () =>
      new Promise((resolve) => {
        const q = queue.shift();
        if (q) resolve({ done: false, value: q });
        else if (done) resolve({ done: true, value: undefined });
        else waiting.push(resolve);
      }),
  };
}

async function nextRequest(requests: AsyncIterator<Record<string, unknown>>): Promise<Record<string, unknown>> {
  const r = await requests.next();
  if (r.done) throw new Error("client went away");
  return r.value;
}

const reply = (sock: net.Socket, value: unknown, id: unknown) => sock.write(`${JSON.stringify({ return: value, id })}\r\n`);

/** Rejects when `p` does not settle within `ms`: a hang. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms} ms`)), ms)));
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------------- tests

let fake: FakeQmp;
const uncaught: string[] = [];
const onUncaught = (err: unknown) => uncaught.push(describeThrown(err));
beforeAll(async () => {
  fake = new FakeQmp();
  await fake.listen();
  process.on("uncaughtException", onUncaught);
  process.on("unhandledRejection", onUncaught);
});
afterAll(() => {
  fake?.close();
  process.off("uncaughtException", onUncaught);
  process.off("unhandledRejection", onUncaught);
});

/** Case streams for each scenario: independent of the others, so they keep their inputs when one changes. */
const seedFor = (scenario: number) => (SEED ^ Math.imul(scenario, 0x27d4eb2d)) >>> 0;

describe("QMP client under fuzzed server lines", () => {
  test("100,000 junk lines in random chunkings: events delivered exactly by the rules, the rest ignored, client still answers", async () => {
    const connections = 25;
    const perConnection = 4000;
    let lines = 0;
    let events = 0;
    const started = performance.now();
    for (let c = 0; c < connections; c++) {
      const rng = caseRng(seedFor(1), c);
      const junk = Array.from({ length: perConnection }, () => junkLine(rng, true));
      const stream = concat(junk.flatMap((l) => [l, enc.encode("\n")]));
      const want = expectedEvents(stream);
      const nonce = `end-${c}`;
      fake.handler = async (sock, requests) => {
        await writeChunked(rng, sock, enc.encode(`${JSON.stringify(greeting)}\r\n`));
        const caps = await nextRequest(requests);
        reply(sock, {}, caps.id);
        const start = await nextRequest(requests); // the client listens for events from here on
        reply(sock, "go", start.id);
        await writeChunked(rng, sock, concat([stream, enc.encode(`${JSON.stringify({ event: "FUZZ_END", data: { nonce } })}\n`)]));
        const probe = await nextRequest(requests);
        reply(sock, { probe: probe.arguments }, probe.id);
      };
      const client = await bounded(QmpClient.connect(fake.path, { timeoutMs: 5000 }), 10_000, `connect #${c}`);
      try {
        const got: Array<{ event: string; data: unknown }> = [];
        client.onEvent((ev) => {
          if (ev.event !== "FUZZ_END") got.push({ event: ev.event, data: ev.data });
        });
        const end = client.waitEvent("FUZZ_END", (d) => d.nonce === nonce, 20_000);
        expect(await bounded(client.execute("start"), 10_000, "start")).toBe("go");
        await bounded(end, 20_000, `events of connection #${c}`);
        expect(got.length).toBe(want.length);
        expect(got).toEqual(want);
        expect(await bounded(client.execute("probe", { c }), 10_000, "probe")).toEqual({ probe: { c } });
      } finally {
        client.close();
      }
      lines += perConnection;
      events += want.length;
    }
    expect(uncaught).toEqual([]);
    expect(lines).toBeGreaterThanOrEqual(100_000);
    console.log(`fuzz QMP lines: ${lines} lines (${events} events) over ${connections} connections in ${((performance.now() - started) / 1000).toFixed(1)} s (seed ${SEED})`);
  }, 120_000);

  test("junk while a command waits: the command settles with a value or QmpError, and the client keeps working", async () => {
    const connections = 300;
    const outcomes: Record<string, number> = {};
    const started = performance.now();
    for (let c = 0; c < connections; c++) {
      const rng = caseRng(seedFor(2), c);
      const junk = concat(Array.from({ length: 40 }, () => [junkLine(rng, true), enc.encode("\n")]).flat());
      const nonce = `end-${c}`;
      fake.handler = async (sock, requests) => {
        sock.write(`${JSON.stringify(greeting)}\n`);
        const caps = await nextRequest(requests);
        reply(sock, {}, caps.id);
        const pending = await nextRequest(requests);
        await writeChunked(rng, sock, junk);
        reply(sock, "late", pending.id);
        sock.write(`${JSON.stringify({ event: "FUZZ_END", data: { nonce } })}\n`);
        const probe = await nextRequest(requests);
        reply(sock, "alive", probe.id);
      };
      const client = await bounded(QmpClient.connect(fake.path, { timeoutMs: 5000 }), 10_000, `connect #${c}`);
      try {
        const end = client.waitEvent("FUZZ_END", (d) => d.nonce === nonce, 10_000);
        const settled = await bounded(
          client.execute("pending").then(
            (v) => (v === "late" ? "answered" : "answered-by-junk"),
            (err: unknown) => (err instanceof QmpError ? "QmpError" : `other: ${describeThrown(err)}`),
          ),
          10_000,
          `pending command #${c}`,
        );
        outcomes[settled] = (outcomes[settled] ?? 0) + 1;
        expect(settled.startsWith("other")).toBe(false);
        await bounded(end, 10_000, `end of connection #${c}`);
        expect(await bounded(client.execute("probe"), 10_000, "probe")).toBe("alive");
      } finally {
        client.close();
      }
    }
    expect(uncaught).toEqual([]);
    console.log(`fuzz QMP pending: ${connections} connections in ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(outcomes)}`);
  }, 120_000);

  test("random greetings, then the server hangs up: connect always rejects with an Error, never hangs", async () => {
    const connections = 1500;
    const messages: Record<string, number> = {};
    const started = performance.now();
    for (let c = 0; c < connections; c++) {
      const rng = caseRng(seedFor(3), c);
      const lines = Array.from({ length: rng.range(0, 3) }, () =>
        rng.chance(0.3) ? enc.encode(mutate(rng, JSON.stringify(greeting), JSON_TOKENS)) : rng.chance(0.2) ? enc.encode(JSON.stringify(greeting)) : junkLine(rng, true),
      );
      const bytes = concat(lines.flatMap((l) => [l, enc.encode(rng.chance(0.9) ? "\n" : "")]));
      fake.handler = async (sock) => {
        await writeChunked(rng, sock, bytes);
        sock.end();
      };
      const r = await bounded(
        QmpClient.connect(fake.path, { timeoutMs: 5000 }).then(
          (client) => {
            client.close();
            return "connected";
          },
          (err: unknown) => {
            if (!(err instanceof Error) || err.constructor !== Error) return `other: ${describeThrown(err)}`;
            return /unexpected greeting|closed before the greeting|no greeting|QMP connection closed/.exec(err.message)?.[0] ?? err.message;
          },
        ),
        10_000,
        `connect with greeting #${c}`,
      );
      messages[r] = (messages[r] ?? 0) + 1;
      expect(r.startsWith("other")).toBe(false);
      expect(r).not.toBe("connected");
    }
    expect(uncaught).toEqual([]);
    console.log(`fuzz QMP greetings: ${connections} connections in ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(messages)}`);
  }, 120_000);

  test("the server closes mid-line: pending commands and event waits reject at once", async () => {
    const connections = 200;
    for (let c = 0; c < connections; c++) {
      const rng = caseRng(seedFor(4), c);
      const junk = concat(Array.from({ length: rng.range(1, 20) }, () => [junkLine(rng, false), enc.encode("\n")]).flat());
      const cut = junk.subarray(0, rng.int(junk.byteLength + 1));
      fake.handler = async (sock, requests) => {
        sock.write(`${JSON.stringify(greeting)}\n`);
        const caps = await nextRequest(requests);
        reply(sock, {}, caps.id);
        await nextRequest(requests);
        await writeChunked(rng, sock, cut);
        sock.destroy();
      };
      const client = await bounded(QmpClient.connect(fake.path, { timeoutMs: 5000 }), 10_000, `connect #${c}`);
      const wait = client.waitEvent("NEVER", () => true, 30_000);
      const cmd = client.execute("never-answered", undefined, { timeoutMs: 30_000 });
      const [w, x] = await bounded(Promise.allSettled([wait, cmd]), 5000, `rejections after close #${c}`);
      expect(w.status).toBe("rejected");
      expect(x.status).toBe("rejected");
      expect((x as PromiseRejectedResult).reason).toBeInstanceOf(Error);
      expect((w as PromiseRejectedResult).reason).toBeInstanceOf(Error);
      await expect(client.execute("after-close")).rejects.toBeInstanceOf(Error);
      client.close();
    }
    expect(uncaught).toEqual([]);
  }, 120_000);
});

/**
 * Found while fuzzing replies (not crashes, but a bad line that is not a clean error): each test passes
 * while the bug is there and fails once it is fixed; then make it an ordinary test.
 */
describe("QMP reply regressions (found by fuzzing, fixed)", () => {
  /** Connects to a server that answers only qmp_capabilities; returns the client, the socket and the requests seen. */
  async function silentServer(): Promise<{ client: QmpClient; peer: () => net.Socket; requests: Array<Record<string, unknown>> }> {
    const requests: Array<Record<string, unknown>> = [];
    let sock: net.Socket | null = null;
    fake.handler = async (s, reqs) => {
      sock = s;
      s.write(`${JSON.stringify(greeting)}\n`);
      for (let r = await reqs.next(); !r.done; r = await reqs.next()) {
        requests.push(r.value);
        if (r.value.execute === "qmp_capabilities") reply(s, {}, r.value.id);
      }
    };
    const client = await QmpClient.connect(fake.path, { timeoutMs: 5000 });
    return { client, peer: () => sock!, requests };
  }

  test('a late reply to a timed-out command (its id no longer pending) is dropped, not given to the next command', async () => {
    const { client, peer, requests } = await silentServer();
    try {
      await expect(client.execute("query-a", undefined, { timeoutMs: 50 })).rejects.toThrow("no reply within 50 ms");
      const b = client.execute("query-b", undefined, { timeoutMs: 1000 });
      while (requests.length < 3) await Bun.sleep(5);
      reply(peer(), "for A", requests[1]!.id); // QEMU's late answer to query-a
      // Fixed means: the stray reply is dropped and query-b is still waiting for its own.
      expect(await Promise.race([b, Bun.sleep(300).then(() => "still waiting")])).toBe("still waiting");
    } finally {
      client.close();
    }
  });

  test('an error reply whose "error" is not an object rejects the command', async () => {
    const { client, peer, requests } = await silentServer();
    try {
      const cmd = client.execute("query-x", undefined, { timeoutMs: 1000 });
      while (requests.length < 2) await Bun.sleep(5);
      peer().write(`${JSON.stringify({ error: "x", id: requests[1]!.id })}\n`);
      await expect(cmd).rejects.toBeInstanceOf(QmpError);
    } finally {
      client.close();
    }
  });
});
