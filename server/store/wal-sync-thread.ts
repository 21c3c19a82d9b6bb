// A dedicated thread for the group commit's WAL fsyncs (server/store/sqlite-wal-sync.ts, behind SqliteStore.syncCommitted).
//
// Why not fs.fsync on the libuv thread pool: that pool is FIFO and shared with the CA's signatures
// (crypto.sign's callback form): under 32 concurrent enrollments an fsync queued behind ~30 RSA-3072
// signing jobs waited ~24 ms for a thread instead of taking its 5-10 ms (measured in-process), and every
// request of the batch waited with it. One worker thread (started on the first sync, one per process,
// shared by every store) runs fsync(2) on the descriptor it is given: descriptors are process-wide, and
// sqlite-wal-sync.ts keeps the descriptor open until the answer arrives. The worker is referenced only
// while a sync is in flight, so an idle one never keeps a process alive, and a pending sync always does.
import { Worker } from 'node:worker_threads';

type Callback = (err: NodeJS.ErrnoException | null) => void;

// CommonJS source evaluated in the worker (no file to locate next to the compiled module).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { fsyncSync } = require('node:fs');
parentPort.on('message', ({ id, fd }) => {
  try {
    fsyncSync(fd);
    parentPort.postMessage({ id });
  } catch (err) {
    parentPort.postMessage({ id, code: err && err.code, message: String(err && err.message) });
  }
});
`;

interface Reply {
  id: number;
  code?: string;
  message?: string;
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Callback>();

function failAll(err: Error): void {
  const callbacks = [...pending.values()];
  pending.clear();
  worker = undefined;
  for (const cb of callbacks) cb(err);
}

function start(): Worker {
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.unref();
  w.on('message', (reply: Reply) => {
    const cb = pending.get(reply.id);
    if (cb === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) w.unref();
    if (reply.message === undefined) cb(null);
    else cb(Object.assign(new Error(reply.message), { code: reply.code }) as NodeJS.ErrnoException);
  });
  // A worker that dies cannot have synced what was asked: every waiting sync fails (fail closed).
  w.on('error', (err) => {
    if (worker === w) failAll(err);
  });
  w.on('exit', (code) => {
    if (worker === w) failAll(new Error(`the WAL sync thread exited (${code})`));
  });
  return w;
}

/** fsync(fd) on the dedicated thread; cb(null) once it returned, cb(err) with its error. */
export function fsyncOnSyncThread(fd: number, cb: Callback): void {
  worker ??= start();
  const id = nextId++;
  pending.set(id, cb);
  if (pending.size === 1) worker.ref();
  worker.postMessage({ id, fd });
}
