// The baseline server for the handshake benchmark: Node's own `tls` module doing TLS 1.3 with mutual
// authentication, in its own process so its CPU time is its own. Same credentials as the KDC (the KDC's
// RSA-2048 key and certificate, clients' RSA-2048 certificates, all from our CA), so both sides do the
// same public-key work: one RSA-PSS signature, one RSA-PSS verification, a certificate chain check and an
// X25519 exchange per handshake. The server writes one byte once the client is authenticated (the
// counterpart of kds's `ready` push), then ends the connection.
//   start {keyPem, certPem, caPem} -> {port};  cpu -> microseconds of CPU used so far
import { createServer, type Server } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { serve } from './ipc.js';

let server: Server | undefined;

serve(
  {
    start: async (arg: { keyPem: string; certPem: string; caPem: string }) => {
      server = createServer(
        {
          key: arg.keyPem,
          cert: arg.certPem,
          ca: [arg.caPem],
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
        },
        (socket) => {
          socket.on('error', () => {});
          socket.end('r');
        },
      );
      server.on('tlsClientError', () => {});
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      return { port: (server.address() as AddressInfo).port };
    },
    cpu: () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
  },
  async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  },
);
