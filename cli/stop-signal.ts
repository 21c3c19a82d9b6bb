// A foreground command (server start, mitm) runs until Ctrl-C or its supervisor's SIGTERM, then closes
// what it holds and exits 0. The listeners are installed before the command prints that it is ready:
// a reader that stops it at once must find them there, or the default action kills the process
// without closing its store or writing its report.

/** Resolves `done` on the first SIGINT or SIGTERM, or when `stop()` is called; its listeners go with it. */
export function untilStopped(): { done: Promise<void>; stop: () => void } {
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    resolveDone();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return { done, stop };
}
