import { VmchanError } from "../errors.ts";
import { ExitCode } from "../exit-codes.ts";

/** Resolves `VM:NAME` to the port's socket path through host discovery (loaded only when used). */
export function hostResolver(): (vm: string, port: string) => Promise<string> {
  return async (vm, port) => {
    throw new VmchanError(`cannot resolve "${vm}:${port}": host discovery is not available yet`, { code: ExitCode.notFound });
  };
}
