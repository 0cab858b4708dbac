import { type Address, parseAddress, requireKind } from "./address.ts";
import type { Endpoint } from "./endpoint.ts";
import { PortDevice } from "./guest/port-device.ts";
import { resolveGuestPort } from "./guest/resolve.ts";
import { SocketChannel } from "./host/socket-channel.ts";

/** A port-like endpoint that cat/send/bridge use: it can wait for its peer before data flows. */
export interface Channel extends Endpoint {
  readonly label: string;
  /** Resolves once the other side (the host, or the guest's QEMU) is there. */
  waitForPeer(): Promise<void>;
}

export interface ChannelOptions {
  /** Wait for the peer (default true); false: ExitCode.noPeer at once. */
  wait?: boolean;
  /** Keep reading across peer disconnects (default false). */
  follow?: boolean;
  /** Bound on the wait for the peer, ms. */
  timeoutMs?: number;
  /** Root for /sys, /dev, /proc (tests). Default "/". */
  root?: string;
  /** Host writers: stay connected this long after QEMU has read everything, ms. Default 1000. */
  lingerMs?: number;
}

/**
 * Opens the channel named by a cat/send address: a guest port (NAME, vportNpM, hvcN, /dev/...),
 * or on the host a VM's port (`VM:NAME`) or its socket (`unix:PATH`).
 */
export async function openChannel(text: string, options: ChannelOptions = {}): Promise<Channel> {
  const addr: Address = parseAddress(text);
  const target = requireKind(addr, ["port", "vm-port", "unix"], `port address "${text}"`);
  if (target.kind === "unix") return SocketChannel.connect(target.path, text, { lingerMs: options.lingerMs });
  if (target.kind === "vm-port")
    return SocketChannel.connect(await (await import("./host/resolve-vm.ts")).hostResolver()(target.vm, target.port), text, {
      lingerMs: options.lingerMs,
    });
  const ref = resolveGuestPort(target.spec, options.root ?? "/");
  const dev = PortDevice.open(ref.path, ref.label, options);
  return Object.assign(dev, { waitForPeer: () => dev.waitForHost() }) as PortDevice & Channel;
}
