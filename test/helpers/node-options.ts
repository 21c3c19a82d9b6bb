// NODE_OPTIONS of test child processes (test/helpers/preload.ts), apart so a test can check it
// without installing the preload's hook.

/** NODE_OPTIONS without the process-info loader (`--import=file:///.../@tapjs/processinfo/...`). */
export function withoutProcessInfo(nodeOptions: string | undefined): string | undefined {
  if (nodeOptions === undefined) return undefined;
  const rest = nodeOptions
    .replace(/"[^"]*@tapjs[\\/]processinfo[^"]*"|\S*@tapjs[\\/]processinfo\S*/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return rest === '' ? undefined : rest;
}
