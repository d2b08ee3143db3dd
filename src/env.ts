// One guarded read of an environment variable for the library's switches (WASMWS_CODEC,
// WASMWS_INTERNALS, WASMWS_NO_BUFFERUTIL, …): undefined where there is no `process` or its
// environment is unreadable (Deno without --allow-env throws NotCapable). No imports: every layer may use it.

/** The variable's value, or undefined where it is unset or cannot be read. */
export function readEnv(name: string): string | undefined {
  try {
    return typeof process !== 'undefined' ? process.env?.[name] : undefined;
  } catch {
    return undefined;
  }
}

/** A flag variable is set: to anything but '' or '0' (as Node's NODE_PENDING_DEPRECATION, ws's WS_NO_BUFFER_UTIL). */
export function envFlag(name: string): boolean {
  const v = readEnv(name);
  return v !== undefined && v !== '' && v !== '0';
}

/** A switch variable says off: off, 0, false or no (any case). */
export function envOff(name: string): boolean {
  return /^(off|0|false|no)$/i.test(readEnv(name) ?? '');
}
