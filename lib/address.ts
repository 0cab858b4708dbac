import { UsageError } from "./errors.ts";

/** An endpoint address, parsed once; every command takes these. */
export type Address =
  | { kind: "stdio" }
  | { kind: "port"; spec: string; /** `file:PATH`: open PATH as it is, without the virtio-serial check. */ anyDevice?: true }
  | { kind: "vm-port"; vm: string; port: string }
  | { kind: "unix"; path: string }
  | { kind: "unix-listen"; path: string }
  | { kind: "tcp"; host: string; port: number }
  | { kind: "tcp-listen"; host: string; port: number }
  | { kind: "exec"; argv: string[] };

export type AddressKind = Address["kind"];

interface Keyword {
  kind: AddressKind;
  /** What follows the keyword, for arity errors and help. */
  form: string;
  help: string;
}

/** Address keywords and aliases (socat-style `KEYWORD:ARGS`). */
export const KEYWORDS: Readonly<Record<string, Keyword>> = {
  unix: { kind: "unix", form: "unix:PATH", help: "connect to a unix socket" },
  "unix-connect": { kind: "unix", form: "unix-connect:PATH", help: "connect to a unix socket" },
  "unix-listen": { kind: "unix-listen", form: "unix-listen:PATH", help: "listen on a unix socket (mode 0600)" },
  tcp: { kind: "tcp", form: "tcp:HOST:PORT", help: "connect over TCP" },
  "tcp-connect": { kind: "tcp", form: "tcp-connect:HOST:PORT", help: "connect over TCP" },
  "tcp-listen": { kind: "tcp-listen", form: "tcp-listen:[HOST:]PORT", help: "listen on TCP (default 127.0.0.1)" },
  exec: { kind: "exec", form: "exec:CMD [ARGS...]", help: "run a command, wired to its stdin/stdout" },
  stdio: { kind: "stdio", form: "stdio", help: "standard input and output" },
  port: { kind: "port", form: "port:NAME", help: "a guest port by name, vportNpM, hvcN or /dev path" },
  file: { kind: "port", form: "file:PATH", help: "an existing file or device used as a port, without the virtio-serial check" },
};

/** Which kinds a command accepts, for the message when another one is given. */
export function requireKind<K extends AddressKind>(
  addr: Address,
  kinds: readonly K[],
  where: string,
): Extract<Address, { kind: K }> {
  if ((kinds as readonly string[]).includes(addr.kind)) return addr as Extract<Address, { kind: K }>;
  throw new UsageError(`${where} cannot be a ${addr.kind} address (accepted: ${kinds.join(", ")})`);
}

/**
 * Parses an address: `-`/`stdio`, `KEYWORD:ARGS` from KEYWORDS, `/dev/...` (guest device),
 * `VM:NAME` (any other `a:b`), or a bare guest port name.
 */
export function parseAddress(text: string): Address {
  if (text === "" ) throw new UsageError("empty address");
  if (text === "-" || text === "stdio") return { kind: "stdio" };
  if (text.startsWith("/")) return { kind: "port", spec: text };
  const colon = text.indexOf(":");
  if (colon < 0) return { kind: "port", spec: text };
  const word = text.slice(0, colon).toLowerCase();
  const rest = text.slice(colon + 1);
  // Own keys only: a VM named "constructor" is a VM, not Object.prototype's constructor.
  const keyword = Object.hasOwn(KEYWORDS, word) ? KEYWORDS[word] : undefined;
  if (!keyword) {
    if (colon === 0) throw new UsageError(`address "${text}" has no VM name before ":"`, "write VM:NAME, or see 'vmchan --help' for address kinds");
    if (rest === "") throw new UsageError(`address "${text}" has no port name after ":"`, "write VM:NAME");
    return { kind: "vm-port", vm: text.slice(0, colon), port: rest };
  }
  const need = (cond: boolean, expected: string) => {
    if (!cond) throw new UsageError(`address "${text}": expected ${expected} (${keyword.form})`);
  };
  switch (keyword.kind) {
    case "unix":
    case "unix-listen":
      need(rest !== "", "a socket path");
      return { kind: keyword.kind, path: rest };
    case "tcp": {
      const at = rest.lastIndexOf(":");
      need(at > 0, "2 parts, HOST:PORT");
      return { kind: "tcp", host: unbracket(rest.slice(0, at)), port: tcpPort(rest.slice(at + 1), text) };
    }
    case "tcp-listen": {
      const at = rest.lastIndexOf(":");
      const host = at < 0 ? "127.0.0.1" : unbracket(rest.slice(0, at));
      need(rest !== "" && host !== "", "1 or 2 parts, [HOST:]PORT");
      return { kind: "tcp-listen", host, port: tcpPort(rest.slice(at + 1), text) };
    }
    case "exec": {
      const argv = splitArgv(rest);
      need(argv.length > 0, "a command");
      return { kind: "exec", argv };
    }
    case "stdio":
      need(rest === "", "nothing after stdio");
      return { kind: "stdio" };
    case "port":
      if (word === "file") {
        need(rest !== "", "a path");
        return { kind: "port", spec: rest, anyDevice: true };
      }
      need(rest !== "", "a port name");
      return { kind: "port", spec: rest };
    default:
      throw new UsageError(`address "${text}": unsupported kind "${word}"`);
  }
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

function tcpPort(s: string, text: string): number {
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new UsageError(`address "${text}": "${s}" is not a TCP port number (0-65535)`);
  return n;
}

/** Splits a command line into argv like a shell would for words and quotes, without running a shell. */
export function splitArgv(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new UsageError(`command "${line}" has an unclosed ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}
