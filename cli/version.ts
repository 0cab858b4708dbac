declare const VMCHAN_VERSION: string | undefined;
declare const VMCHAN_COMMIT: string | undefined;

/** "0.1.0 (commit abc1234)", from the build's --define values, or the source tree when run unbuilt. */
export function versionString(): string {
  const version = typeof VMCHAN_VERSION === "string" ? VMCHAN_VERSION : "0.0.0-dev";
  const commit = typeof VMCHAN_COMMIT === "string" ? VMCHAN_COMMIT : "unbuilt";
  return `vmchan ${version} (commit ${commit})`;
}
