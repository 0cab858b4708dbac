import * as fs from "node:fs";

/**
 * Whether a client is already connected to the unix socket a server listens on at `path`, from
 * /proc/net/unix: a connected socket (state 03) that carries the path is the server's end of an
 * accepted (or queued) connection. QEMU serves one client at a time; a second one would hang.
 * null when /proc/net/unix cannot be read or shows no listener at `path` (other namespace).
 */
export function unixSocketHeld(path: string, procNetUnix = "/proc/net/unix"): boolean | null {
  let text: string;
  try {
    text = fs.readFileSync(procNetUnix, "utf8");
  } catch {
    return null;
  }
  let listening = false;
  let connected = 0;
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8 || cols.slice(7).join(" ") !== path) continue;
    if (cols[5] === "01" && (parseInt(cols[3]!, 16) & 0x10000) !== 0) listening = true;
    else if (cols[5] === "03") connected++;
  }
  return listening ? connected > 0 : null;
}
