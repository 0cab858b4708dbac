import * as fs from "node:fs";
import { join } from "node:path";
import { under } from "../context.ts";
import { UsageError, VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";
import { parsePasswd, PASSWD_MAX_BYTES } from "../passwd.ts";
import { readFileBounded } from "../bounded-read.ts";
import { LOGIN_PROGRAM } from "./program.ts";

/** A user name login accepts, and never an option ("-f"). */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/;

/** The uid of `user` in `passwdText` (/etc/passwd), or null when it is not listed. */
export function uidOf(passwdText: string, user: string): number | null {
  return parsePasswd(passwdText).find((e) => e.name === user)?.uid ?? null;
}

/**
 * Checks an --autologin user: a valid name, listed in /etc/passwd under `root`, and not root (uid 0)
 * unless `allowRoot`: an automatic root login is a root shell for anyone who can reach the port.
 */
export function checkAutologin(user: string, options: { allowRoot?: boolean; root?: string } = {}): void {
  if (!USER_NAME.test(user)) throw new UsageError(`--autologin "${user}" is not a valid user name`, "see 'vmchan getty --help'");
  let passwd = "";
  const path = under(options.root ?? "/", "/etc/passwd");
  try {
    passwd = readFileBounded(path, PASSWD_MAX_BYTES);
  } catch (err) {
    throw new VmchanError(`cannot check --autologin "${user}": cannot read /etc/passwd: ${(err as Error).message}`, { cause: err });
  }
  const uid = uidOf(passwd, user);
  if (uid === null)
    throw new VmchanError(`cannot log in "${user}" automatically: no such user in /etc/passwd`, {
      code: ExitCode.notFound,
      hint: `create it first (adduser ${user}), or check the spelling`,
    });
  if (uid === 0 && !options.allowRoot)
    throw new UsageError(
      `refusing --autologin "${user}": ${user === "root" ? "it is" : "it has uid 0, like"} root, and anyone who reaches the port would get a root shell without a password`,
      "add --allow-root if that is really wanted",
    );
}

/**
 * busybox getty has no autologin option, but runs the program given with `-l` instead of asking for
 * a name when given `-n`; this writes that program, a two-line script running `login -f USER`, into a
 * private directory (mode 0700). `remove()` deletes it.
 */
export function writeAutologinProgram(user: string, options: { dir?: string } = {}): { path: string; remove: () => void } {
  if (!USER_NAME.test(user)) throw new UsageError(`--autologin "${user}" is not a valid user name`);
  const parent = options.dir ?? (isWritableDir("/run") ? "/run" : (process.env.TMPDIR ?? "/tmp"));
  const dir = fs.mkdtempSync(join(parent, "vmchan-getty-"));
  fs.chmodSync(dir, 0o700);
  const path = join(dir, "autologin");
  // getty runs it as PROGRAM -- (no name): the arguments are ignored.
  fs.writeFileSync(path, `#!/bin/sh\nexec ${LOGIN_PROGRAM} -f '${user}'\n`, { mode: 0o700 });
  return { path, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function isWritableDir(path: string): boolean {
  try {
    fs.accessSync(path, fs.constants.W_OK);
    return fs.statSync(path).isDirectory();
  } catch {
    return false;
  }
}
