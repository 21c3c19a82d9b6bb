// Client load for the TLS 1.3 mutual-authentication baseline (see tls-server.ts), in its own process:
//   handshakes {port, keyPem, certPem, caPem, count, concurrency} -> full handshakes (no resumption:
//   no session is ever offered), `concurrency` in flight, each waiting for the server's one byte.
import { connect, createSecureContext, type SecureContext } from 'node:tls';
import { serve } from './ipc.js';

function handshake(port: number, secureContext: SecureContext): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      secureContext,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
    });
    let got = false;
    socket.on('data', () => {
      got = true;
      socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => (got ? resolve() : reject(new Error('closed before the server byte'))));
  });
}

serve({
  handshakes: async (arg: {
    port: number;
    keyPem: string;
    certPem: string;
    caPem: string;
    count: number;
    concurrency: number;
  }) => {
    // One secure context (parsed key, certificate, trust store) for every connection, as a real client
    // would keep; the kds client likewise imports its key once.
    const context = createSecureContext({ key: arg.keyPem, cert: arg.certPem, ca: [arg.caPem] });
    let next = 0;
    let errors = 0;
    let firstError: string | undefined;
    const t0 = process.hrtime.bigint();
    const runner = async (): Promise<void> => {
      while (next < arg.count) {
        next += 1;
        try {
          await handshake(arg.port, context);
        } catch (err) {
          errors += 1;
          firstError ??= (err as Error).message;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(arg.concurrency, arg.count) }, runner));
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, errors, firstError };
  },
});
