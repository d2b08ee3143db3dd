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
