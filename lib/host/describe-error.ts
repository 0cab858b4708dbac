/** An OS error in the words notes use ("permission denied", "connection refused"), else its message. */
export function describeError(err: unknown): string {
  const code = err && typeof err === "object" && "code" in err ? String(err.code) : "";
  const words: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "permission denied",
    ENOENT: "no such file or directory",
    ECONNREFUSED: "connection refused",
    ETIMEDOUT: "timed out",
    ENOTSOCK: "not a socket",
    ECONNRESET: "connection reset",
  };
  if (code in words) return words[code]!;
  return err instanceof Error ? err.message : String(err);
}
