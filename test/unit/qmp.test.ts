import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { _lineSplitter, MAX_QMP_LINE, QmpClient, QmpError, QmpPeerError } from "../../lib/host/qmp.ts";

const greeting = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "" }, capabilities: ["oob"] } };

/** A fake QMP server on a unix socket: records requests and lets the test answer them. */
class FakeQmp {
  readonly dir = mkdtempSync(join(tmpdir(), "vmchan-qmp-"));
  readonly path = join(this.dir, "qmp.sock");
  readonly requests: Array<Record<string, unknown>> = [];
  #server: net.Server;
  #peer: net.Socket | null = null;
  #waiters: Array<() => void> = [];

  /** `answer` replies to each request; return null to stay silent. By default every command succeeds with {}. */
  constructor(
    private readonly answer: (req: Record<string, unknown>) => Record<string, unknown> | null = (req) => ({ return: {}, id: req.id }),
    private readonly sendGreeting: (sock: net.Socket) => void = (sock) => sock.write(JSON.stringify(greeting) + "\r\n"),
  ) {
    this.#server = net.createServer((sock) => {
      this.#peer = sock;
      this.sendGreeting(sock);
      let buf = "";
      sock.on("data", (chunk) => {
        buf += chunk.toString();
        let at: number;
        while ((at = buf.indexOf("\n")) >= 0) {
          const req = JSON.parse(buf.slice(0, at)) as Record<string, unknown>;
          buf = buf.slice(at + 1);
          this.requests.push(req);
          const reply = this.answer(req);
          if (reply) sock.write(JSON.stringify(reply) + "\r\n");
          for (const w of this.#waiters.splice(0)) w();
        }
      });
      sock.on("error", () => {});
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }

  /** Writes raw bytes to the connected client. */
  send(raw: string): void {
    this.#peer!.write(raw);
  }

  /** Resolves once `n` requests have arrived. */
  async requestCount(n: number): Promise<void> {
    while (this.requests.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  dropClient(): void {
    this.#peer?.destroy();
  }

  close(): void {
    this.#peer?.destroy();
    this.#server.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let fake: FakeQmp | null = null;
let client: QmpClient | null = null;
afterEach(() => {
  client?.close();
  client = null;
  fake?.close();
  fake = null;
});

async function start(...args: ConstructorParameters<typeof FakeQmp>): Promise<FakeQmp> {
  fake = new FakeQmp(...args);
  await fake.listen();
  return fake;
}

describe("QmpClient", () => {
  test("connect reads the greeting and negotiates capabilities", async () => {
    const f = await start();
    client = await QmpClient.connect(f.path, { timeoutMs: 2000 });
    expect(client.greeting).toEqual(greeting.QMP);
    expect(f.requests).toEqual([{ execute: "qmp_capabilities", id: "vmchan-1" }]);
  });

  test("execute resolves with the return value of the reply carrying its id", async () => {
    const f = await start((req) => {
      if (req.execute === "qom-get") return { return: "ch-port-a", id: req.id };
      return { return: {}, id: req.id };
    });
    client = await QmpClient.connect(f.path);
    const value = await client.execute<string>("qom-get", { path: "/machine/peripheral/port-a", property: "chardev" });
    expect(value).toBe("ch-port-a");
    expect(f.requests[1]).toEqual({
      execute: "qom-get",
      id: "vmchan-2",
      arguments: { path: "/machine/peripheral/port-a", property: "chardev" },
    });
  });

  test("replies that arrive out of order go to the command with their id", async () => {
    const f = await start((req) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null));
    client = await QmpClient.connect(f.path);
    const first = client.execute("first");
    const second = client.execute("second");
    await f.requestCount(3);
    f.send(JSON.stringify({ return: 2, id: f.requests[2]!.id }) + "\n");
    f.send(JSON.stringify({ return: 1, id: f.requests[1]!.id }) + "\n");
    expect(await Promise.all([first, second])).toEqual([1, 2]);
  });

  test("an error reply rejects with QmpError carrying class and desc", async () => {
    const f = await start((req) =>
      req.execute === "device_del"
        ? { error: { class: "DeviceNotFound", desc: "Device 'nope' not found" }, id: req.id }
        : { return: {}, id: req.id },
    );
    client = await QmpClient.connect(f.path);
    const err = await client.execute("device_del", { id: "nope" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    const q = err as QmpError;
    expect(q.errorClass).toBe("DeviceNotFound");
    expect(q.desc).toBe("Device 'nope' not found");
    expect(q.command).toBe("device_del");
    expect(q.message).toBe(`QMP command "device_del" failed: Device 'nope' not found (DeviceNotFound)`);
  });

  test("events reach onEvent listeners and waitEvent picks the matching one", async () => {
    const f = await start();
    client = await QmpClient.connect(f.path);
    const seen: string[] = [];
    const off = client.onEvent((ev) => seen.push(`${ev.event}:${String(ev.data.id)}`));
    const waited = client.waitEvent("VSERPORT_CHANGE", (d) => d.id === "port-b" && d.open === true, 2000);
    const ts = { seconds: 1, microseconds: 2 };
    f.send(JSON.stringify({ event: "VSERPORT_CHANGE", data: { id: "port-a", open: true }, timestamp: ts }) + "\n");
    f.send(JSON.stringify({ event: "VSERPORT_CHANGE", data: { id: "port-b", open: true }, timestamp: ts }) + "\n");
    expect(await waited).toEqual({ event: "VSERPORT_CHANGE", data: { id: "port-b", open: true }, timestamp: ts });
    off();
    f.send(JSON.stringify({ event: "DEVICE_DELETED", data: { device: "x" }, timestamp: ts }) + "\n");
    await client.execute("query-status"); // the event above was read before this reply
    expect(seen).toEqual(["VSERPORT_CHANGE:port-a", "VSERPORT_CHANGE:port-b"]);
  });

  test("messages split across packets and glued together are parsed whole", async () => {
    // The greeting arrives in three pieces, and an event is glued to it.
    const onlyCapabilities = (req: Record<string, unknown>) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null);
    const f = await start(onlyCapabilities, (sock) => {
      const text = JSON.stringify(greeting) + "\r\n" + JSON.stringify({ event: "RESUME", data: {}, timestamp: {} }) + "\r\n";
      sock.write(text.slice(0, 5));
      setTimeout(() => sock.write(text.slice(5, 40)), 20);
      setTimeout(() => sock.write(text.slice(40)), 40);
    });
    client = await QmpClient.connect(f.path, { timeoutMs: 2000 });
    expect(client.greeting).toEqual(greeting.QMP);
    const reply = client.execute<{ status: string }>("query-status");
    await f.requestCount(2);
    const text = JSON.stringify({ return: { status: "running" }, id: f.requests[1]!.id }) + "\n";
    f.send(text.slice(0, 10));
    await Bun.sleep(20);
    f.send(text.slice(10));
    expect(await reply).toEqual({ status: "running" });
  });

  test("execute rejects after its timeout when QEMU does not answer", async () => {
    const f = await start((req) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null));
    client = await QmpClient.connect(f.path);
    await expect(client.execute("query-status", undefined, { timeoutMs: 50 })).rejects.toThrow(
      'QMP command "query-status" failed: no reply within 50 ms',
    );
  });

  test("waitEvent rejects after its timeout", async () => {
    const f = await start();
    client = await QmpClient.connect(f.path);
    await expect(client.waitEvent("SHUTDOWN", undefined, 50)).rejects.toThrow('QMP event "SHUTDOWN" did not arrive within 50 ms');
  });

  test("pending commands and waits reject when QEMU closes the connection", async () => {
    const f = await start((req) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null));
    client = await QmpClient.connect(f.path);
    // Catch at once: both reject in the same tick, before the first expect would attach a handler to the second.
    const cmd = client.execute("quit").catch((e: unknown) => e);
    const ev = client.waitEvent("SHUTDOWN", undefined, 5000).catch((e: unknown) => e);
    await f.requestCount(2);
    f.dropClient();
    expect(String(await cmd)).toBe("Error: QMP connection closed");
    expect(String(await ev)).toBe("Error: QMP connection closed");
    await expect(client.execute("query-status")).rejects.toThrow("QMP connection closed");
  });

  test("connect fails with the path when nothing listens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vmchan-qmp-"));
    try {
      await expect(QmpClient.connect(join(dir, "none.sock"), { timeoutMs: 1000 })).rejects.toThrow(
        `QMP connect to "${join(dir, "none.sock")}" failed:`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("connect fails when the peer does not speak QMP", async () => {
    const f = await start(undefined, (sock) => sock.write('{"hello": 1}\n'));
    await expect(QmpClient.connect(f.path, { timeoutMs: 1000 })).rejects.toThrow("unexpected greeting");
  });

  test("a peer that sends a line over the bound without a newline is dropped: commands reject with the reason", async () => {
    const f = await start((req) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null));
    client = await QmpClient.connect(f.path);
    const pending = client.execute("query-status").then(
      () => "resolved",
      (err: Error) => err,
    );
    const chunk = "z".repeat(256 * 1024);
    for (let sent = 0; sent <= MAX_QMP_LINE; sent += chunk.length) f.send(chunk);
    const outcome = await pending;
    expect(outcome, `what I saw: ${String(outcome)}`).toBeInstanceOf(QmpPeerError);
    expect(String(outcome)).toMatch(/QMP peer sent a line over 4194304 bytes without a newline/);
    // Later commands fail at once instead of waiting for their timeout.
    await expect(client.execute("query-status")).rejects.toBeInstanceOf(QmpPeerError);
  });
});

describe("QMP error replies from a hostile peer", () => {
  test("an error nested a million deep or megabytes long rejects with a short description, no crash", async () => {
    const f = await start((req) => (req.execute === "qmp_capabilities" ? { return: {}, id: req.id } : null));
    client = await QmpClient.connect(f.path);
    const deep = client.execute("query-status").catch((e: unknown) => e);
    await f.requestCount(2);
    f.send(`{"error": ${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}, "id": "vmchan-2"}\n`);
    const e1 = await deep;
    expect(e1, `what I saw: ${String(e1)}`).toBeInstanceOf(QmpError);
    expect((e1 as QmpError).desc).toBe("an error reply too deeply nested to show");
    const long = client.execute("query-status").catch((e: unknown) => e);
    await f.requestCount(3);
    f.send(`{"error": {"class": "X", "data": "${"d".repeat(2_000_000)}"}, "id": "vmchan-3"}\n`);
    const e2 = (await long) as QmpError;
    expect(e2.desc.length, `what I saw: ${e2.desc.slice(0, 100)}`).toBeLessThan(300);
    expect(e2.errorClass).toBe("X");
  });
});

describe("QMP line splitting", () => {
  test("lines split across chunks, CRLF and blank lines; a line at the bound passes, one byte more throws", () => {
    const split = _lineSplitter(10);
    expect(split(Buffer.from('{"a":1}\r\n\n{"b"'))).toEqual(['{"a":1}']);
    expect(split(Buffer.from(':2}\n'))).toEqual(['{"b":2}']);
    expect(split(Buffer.from("0123456789\n"))).toEqual(["0123456789"]);
    expect(split(Buffer.from("01234"))).toEqual([]);
    expect(() => split(Buffer.from("567890"))).toThrow(QmpPeerError);
    // Multi-byte UTF-8 split across chunks is decoded whole.
    const again = _lineSplitter(10);
    const euro = Buffer.from("€\n");
    expect([...again(euro.subarray(0, 1)), ...again(euro.subarray(1))]).toEqual(["€"]);
  });
});
