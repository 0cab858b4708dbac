import { readFileBounded } from "./bounded-read.ts";

/** A passwd file is read up to this many bytes: enough for any real one, bounded for a hostile one. */
export const PASSWD_MAX_BYTES = 4 * 1024 * 1024;

/** One passwd line's name and uid. */
export interface PasswdEntry {
  name: string;
  uid: number;
}

/** The entries of passwd text in file order; lines without a name or a numeric uid are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || f[0] === "" || !/^\d+$/.test(f[2]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]) });
  }
  return out;
}

/** The entries of the passwd file at `path`, read up to PASSWD_MAX_BYTES; throws when unreadable or larger. */
export function readPasswdFile(path: string, limit = PASSWD_MAX_BYTES): PasswdEntry[] {
  return parsePasswd(readFileBounded(path, limit));
}
