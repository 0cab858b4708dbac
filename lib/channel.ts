import { parseAddress, requireKind } from "./address.ts";
import { type ConnectorOptions, connectorFor } from "./connectors.ts";
import type { Endpoint } from "./endpoint.ts";

/**
 * Opens the one session cat and send work on: a guest port (NAME, vportNpM, hvcN, /dev/...), or
 * on the host a VM's port (`VM:NAME`) or its socket (`unix:PATH`). It is the bridge's connector
 * for that address, opened once: for a port that means the host is there (or --no-wait/--timeout
 * said no). Closing the result releases the device or socket.
 */
export async function openChannel(text: string, options: ConnectorOptions = {}): Promise<Endpoint> {
  const addr = requireKind(parseAddress(text), ["port", "vm-port", "unix"], `port address "${text}"`);
  const connector = connectorFor(addr, text, options);
  try {
    await connector.prepare?.();
    const session = await connector.open();
    return {
      read: () => session.read(),
      write: (chunk) => session.write(chunk),
      finish: session.finish && (() => session.finish!()),
      close: async () => {
        try {
          await session.close();
        } finally {
          await connector.close();
        }
      },
    };
  } catch (err) {
    await connector.close();
    throw err;
  }
}
