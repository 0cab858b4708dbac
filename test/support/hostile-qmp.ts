import * as net from "node:net";
import { FixtureRoot } from "./fixture.ts";

const greeting = JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "" }, capabilities: [] } });

/** What a hostile QMP peer does once the client has entered command mode. */
export type Misbehaviour =
  /**
   * Writes this text again and again, as fast as the client reads (events, or one endless line without a newline):
   * once qmp_capabilities is answered, or with `early` right after the greeting, never answering anything.
   */
  | { flood: () => string; early?: boolean }
  /** Answers every command with this error text. */
  | { errorDesc: string };

/**
 * A QMP server on a unix socket that greets, answers qmp_capabilities and then misbehaves; every other command
 * gets `{"return": []}` (qom-list an error, as from an old QEMU, so the command line's ports stand). Counts the bytes it pushed so a test can show the flood really happened.
 */
export class HostileQmp {
  sent = 0;
  connections = 0;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  constructor(
    readonly path: string,
    private readonly how: Misbehaviour,
  ) {
    this.#server = net.createServer((sock) => {
      this.connections++;
      this.#sockets.add(sock);
      sock.on("error", () => {});
      sock.on("close", () => this.#sockets.delete(sock));
      sock.write(greeting + "\r\n");
      let buf = "";
      let flooding = false;
      if ("flood" in this.how && this.how.early) {
        flooding = true;
        this.#flood(sock, this.how.flood);
        return;
      }
      sock.on("data", (chunk) => {
        buf += chunk.toString();
        let at: number;
        while ((at = buf.indexOf("\n")) >= 0) {
          let req: { execute?: string; id?: unknown };
          try {
            req = JSON.parse(buf.slice(0, at));
          } catch {
            req = {};
          }
          buf = buf.slice(at + 1);
          if (req.execute === "qmp_capabilities") {
            sock.write(JSON.stringify({ return: {}, id: req.id }) + "\r\n");
            if ("flood" in this.how && !flooding) {
              flooding = true;
              this.#flood(sock, this.how.flood);
            }
          } else if ("errorDesc" in this.how) {
            sock.write(JSON.stringify({ error: { class: "GenericError", desc: this.how.errorDesc }, id: req.id }) + "\r\n");
          } else if (req.execute === "qom-list") {
            // As an old QEMU would: then the command line's ports stand.
            sock.write(JSON.stringify({ error: { class: "CommandNotFound", desc: "no qom-list" }, id: req.id }) + "\r\n");
          } else {
            sock.write(JSON.stringify({ return: [], id: req.id }) + "\r\n");
          }
        }
      });
    });
  }

  #flood(sock: net.Socket, next: () => string): void {
    const pump = () => {
      while (!sock.destroyed) {
        let batch = "";
        while (batch.length < 64 * 1024) batch += next();
        this.sent += batch.length;
        if (!sock.write(batch)) return void sock.once("drain", pump);
      }
    };
    pump();
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.#server.listen(this.path, resolve));
  }

  close(): void {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
  }
}

/** A fixture /proc with one QEMU process (pid 4242) whose command line has `extra` and a QMP socket at `qmp`. */
export function qemuFixture(fx: FixtureRoot, qmp: string, extra: string[] = [], pid = 4242): void {
  const argv = ["qemu-system-x86_64", "-qmp", `unix:${qmp},server=on,wait=off`, ...extra];
  fx.file(`/proc/${pid}/cmdline`, argv.join("\0") + "\0");
  fx.file(`/proc/${pid}/comm`, "qemu-system-x86\n");
}

/** Lines of the common port device for `qemuFixture`: one virtserialport "org.x" with id "p0" on a unix socket. */
export function onePort(sock: string, name = "org.x"): string[] {
  return [
    "-device", "virtio-serial-pci,id=vs0",
    "-chardev", `socket,id=c0,path=${sock},server=on,wait=off`,
    "-device", `virtserialport,bus=vs0.0,chardev=c0,name=${name},id=p0`,
  ];
}
