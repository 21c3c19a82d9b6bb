// Client load for the TLS 1.3 mutual-authentication baseline (see tls-server.ts), in its own process:
//   handshakes {port, keyPem, certPem, caPem, count, concurrency} -> full handshakes (no resumption:
//   no session is ever offered), `concurrency` in flight, each waiting for the server's one byte.
//   primeSessions {port, keyPem, certPem, caPem, slots} -> one full handshake per slot, keeping the
//   session (TLS 1.3 NewSessionTicket) it was given
//   resumed {port, count, concurrency} -> handshakes resumed with the slots' sessions (RFC 8446 psk_dhe_ke:
//   no certificate, no signature), each keeping a new session if it is given one for its slot's next
//   (Node 20's server, OpenSSL 3.0, sends none after a resumption: the slot's ticket is offered again);
//   a handshake the server did not resume is an error.
import { connect, createSecureContext, type SecureContext } from 'node:tls';
import { serve } from './ipc.js';

/** A handshake; with `session`, offered for resumption. Resolves with the session the server gave. */
function handshake(
  port: number,
  secureContext: SecureContext,
  session?: Buffer,
): Promise<{ reused: boolean; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      secureContext,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ...(session === undefined ? {} : { session }),
    });
    let got = false;
    let reused = false;
    let next: Buffer | undefined;
    // Read while the handshake's state is there (after the close it reads null).
    socket.on('secureConnect', () => (reused = socket.isSessionReused()));
    // TLS 1.3 tickets come after the handshake (with or after the server's byte, before the close).
    socket.on('session', (s: Buffer) => (next = s));
    socket.on('data', () => {
      got = true;
      socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () =>
      got ? resolve({ reused, session: next }) : reject(new Error('closed before the server byte')),
    );
  });
}

interface Credentials {
  keyPem: string;
  certPem: string;
  caPem: string;
}

/** Run `count` handshakes with `concurrency` in flight (runner index given to each). */
async function pool(
  count: number,
  concurrency: number,
  task: (runner: number) => Promise<void>,
): Promise<{ ms: number; errors: number; firstError: string | undefined }> {
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = process.hrtime.bigint();
  const runner = async (r: number): Promise<void> => {
    while (next < count) {
      next += 1;
      try {
        await task(r);
      } catch (err) {
        errors += 1;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, r) => runner(r)));
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, errors, firstError };
}

// One secure context (parsed key, certificate, trust store) for every connection, as a real client
// would keep; the kds client likewise imports its key once.
const contexts = new Map<string, SecureContext>();
function contextOf(c: Credentials): SecureContext {
  let ctx = contexts.get(c.certPem);
  if (ctx === undefined) {
    ctx = createSecureContext({ key: c.keyPem, cert: c.certPem, ca: [c.caPem] });
    contexts.set(c.certPem, ctx);
  }
  return ctx;
}

/** The session each slot resumes next, and the context it was made with. */
const slots: { context: SecureContext; session: Buffer }[] = [];

serve({
  handshakes: async (arg: Credentials & { port: number; count: number; concurrency: number }) => {
    const context = contextOf(arg);
    return pool(arg.count, arg.concurrency, async () => {
      await handshake(arg.port, context);
    });
  },
  primeSessions: async (arg: Credentials & { port: number; slots: number }) => {
    const context = contextOf(arg);
    slots.length = 0;
    for (let i = 0; i < arg.slots; i++) {
      const { session } = await handshake(arg.port, context);
      if (session === undefined) throw new Error('the server sent no session ticket');
      slots.push({ context, session });
    }
    return slots.length;
  },
  resumed: async (arg: { port: number; count: number; concurrency: number }) => {
    if (slots.length < arg.concurrency)
      throw new Error('primeSessions first, one slot per connection in flight');
    return pool(arg.count, arg.concurrency, async (r) => {
      const slot = slots[r]!;
      const { reused, session } = await handshake(arg.port, slot.context, slot.session);
      if (!reused) throw new Error('the server did not resume the session');
      if (session !== undefined) slot.session = session;
    });
  },
});
