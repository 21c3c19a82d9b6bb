// impersonate-server: Mallory answers the client as "the KDC" with a certificate of her own CA (a
// root also called "kds root CA" and a valid server certificate named `kdc`), signs the transcript
// correctly with that certificate's key, and never talks to the real KDC.
// - Secure: the client checks the KDC certificate against the root CA it pinned at enrollment: it was
//   not issued by that root (cert_unknown_issuer / cert_bad_signature).
// - Insecure: there is no certificate to forge: Mallory just answers, and relays to the real KDC so
//   that nothing looks wrong (the same machinery as substitute-dh).
import { DH_GROUPS } from '../../../shared/crypto/dh.js';
import { ServerHandshake } from '../../../shared/protocol/handshake.js';
import type { AttackModule } from '../attack.js';
import { forgeKdc, type ForgedKdc } from '../fake-ca.js';
import { viewFrame } from '../frames.js';
import { Interceptor } from '../interceptor.js';

export const impersonateServer: AttackModule = {
  name: 'impersonate-server',
  summary: "answer as the KDC with Mallory's own self-signed CA and a `kdc` certificate it issued",
  position:
    'on the path between a client and the KDC; she plays the KDC and never contacts it (secure clients)',
  action:
    'Generates a root CA named like the real one and a server certificate CN=kdc; answers the client_hello with a correctly signed server_hello under that certificate. Against an insecure client she answers without any certificate and relays to the real KDC.',
  secure: {
    outcome: 'failed',
    defence: 'certificate chain',
    why: 'the client only trusts the root CA it pinned at enrollment',
  },
  insecure: {
    outcome: 'succeeded',
    why: 'an insecure client checks no certificate: whoever answers is "the KDC"',
  },
  async prepare(ctx) {
    ctx.info(0, 'forging a root CA "kds root CA" and a certificate CN=kdc (RSA-2048)');
    ctx.scratch.set('forged', await forgeKdc());
  },
  connection(link) {
    const forged = link.ctx.scratch.get('forged') as ForgedKdc;
    let interceptor: Interceptor | undefined;
    let fake: ServerHandshake | undefined;
    return {
      async fromClient(frame) {
        if (interceptor !== undefined) return interceptor.fromClient(frame);
        const v = viewFrame(frame);
        if (v.frame?.t === 'client_hello' && fake === undefined) {
          if (v.frame.mode === 'insecure') {
            interceptor = new Interceptor(link, {
              established: () =>
                link.succeed('the victim took Mallory for the KDC: an insecure client checks no certificate'),
            });
            return interceptor.fromClient(frame);
          }
          fake = new ServerHandshake({
            groups: DH_GROUPS,
            credentials: forged.credentials,
            checkClientCertificate: () => {},
            allowInsecure: false,
          });
          const serverHello = await fake.receiveClientHello(frame);
          link.note('client', frame, 'terminate', 'kept: Mallory answers as the KDC');
          link.toClient(
            serverHello,
            'inject',
            "server_hello signed under Mallory's certificate CN=kdc (her own root CA)",
          );
          link.expect({
            defence: 'certificate chain',
            toward: 'client',
            what: "presented a `kdc` certificate from Mallory's own CA",
          });
          return;
        }
        if (v.frame?.t === 'client_finish' && fake !== undefined) {
          link.note('client', frame, 'terminate');
          link.succeed("the victim accepted Mallory's certificate as the KDC's");
          return;
        }
        link.note('client', frame, 'drop');
      },
      async fromServer(frame) {
        if (interceptor !== undefined) return interceptor.fromServer(frame);
        link.note('server', frame, 'drop');
      },
    };
  },
};
