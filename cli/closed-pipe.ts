// When the reader of kds's output goes away (`kds demo --json | head -1`, `kds client listen --json |
// head -1`, a closed terminal), the next write fails with EPIPE. That is not an error of kds: the
// reader has what it wanted. kds then ends quietly with exit 0 (docs/cli.md, "Output"): no message, no
// stack trace. A long-running command (listen, the demo, the menu, mitm, server start) registers how
// to stop cleanly, exactly as on Ctrl-C, so the demo still stops its KDC and removes its directory;
// any other command simply exits 0, since its work is done by the time it prints.
type Stop = () => void;

const stops = new Set<Stop>();
let closed = false;

/** Whether stdout or stderr was found closed by its reader. */
export function outputClosed(): boolean {
  return closed;
}

/** Run `stop` (once) when the output is found closed; returns the unregistering function. */
export function onOutputClosed(stop: Stop): () => void {
  stops.add(stop);
  return () => stops.delete(stop);
}

function isClosedPipe(err: NodeJS.ErrnoException): boolean {
  return err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED' || err.code === 'ECONNRESET';
}

/** Install the handlers on stdout and stderr (cli/kds.ts, before any output). */
export function watchForClosedOutput(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (!isClosedPipe(err)) {
        // Output that cannot be written (EIO, ENOSPC): say so where possible, never with a stack.
        if (stream !== process.stderr)
          process.stderr.write(`error [io_error]: cannot write output: ${err.code}\n`);
        process.exit(1);
      }
      if (closed) return;
      closed = true;
      process.exitCode = 0;
      if (stops.size === 0) process.exit(0);
      for (const stop of [...stops]) stop();
    });
  }
}
