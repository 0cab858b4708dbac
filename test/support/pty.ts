import type { Subprocess } from "bun";

/**
 * An interactive program on a pseudo-terminal, through util-linux `script` (Bun has no pty API): keys are
 * written to it as a user types them, everything the terminal shows is kept for failure messages.
 */
export class PtySession {
  private readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  private screen = "";
  private readonly done: Promise<void>;

  /** Starts `command` (a shell command line for `script -c`, built by the caller from safe parts). */
  constructor(command: string, env: Record<string, string>) {
    const proc = Bun.spawn(["script", "-qfec", command, "/dev/null"], {
      env: { SHELL: "/bin/sh", TERM: "xterm", COLUMNS: "200", LINES: "50", ...env },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.proc = proc;
    const decoder = new TextDecoder();
    this.done = (async () => {
      for await (const chunk of proc.stdout) this.screen += decoder.decode(chunk, { stream: true });
    })();
  }

  /** Everything the terminal has shown so far. */
  get text(): string {
    return this.screen;
  }

  /** What the terminal has shown lately, control characters made visible (for failure messages). */
  get output(): string {
    return JSON.stringify(this.screen.slice(-4000));
  }

  /** Types `keys`. */
  type(keys: string): void {
    this.proc.stdin.write(keys);
    this.proc.stdin.flush();
  }

  /** Waits until `ready()` holds, polling; fails after `timeoutMs` with what the terminal showed. */
  async until(ready: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.proc.exitCode !== null) throw new Error(`${what}: the terminal program exited (${this.proc.exitCode}); it showed ${this.output}`);
      if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; the terminal showed ${this.output}`);
      await Bun.sleep(20);
    }
  }

  /** Ends the session (the program and `script`). */
  async close(): Promise<void> {
    try {
      this.proc.stdin.end();
    } catch {
      // already closed
    }
    this.proc.kill("SIGKILL");
    await this.proc.exited;
    await this.done.catch(() => {});
  }
}
