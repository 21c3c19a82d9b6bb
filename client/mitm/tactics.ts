// Moves several attacks share.
//
// enterChannel: what Mallory must do before she can touch anything INSIDE a session (the end-to-end
// key exchange relayed by the KDC, messages, deliveries): become the middle of the channel.
// - Against an insecure client she can (client/mitm/interceptor.ts): both sessions are hers.
// - Against a secure client her only move from the network is to substitute the DH shares in the
//   hellos; the KDC signs the transcript it saw, the client checks that signature against its own
//   transcript, and refuses (bad_signature). She never gets a key, so she never sees a record's content.
import { generateDhKeyPair, isDhGroup, type DhGroup } from '../../shared/crypto/dh.js';
import type { ConnectionHooks } from './attack.js';
import { rewriteClientHello, rewriteServerHello, viewFrame } from './frames.js';
import { Interceptor, type InterceptHooks } from './interceptor.js';
import type { Link } from './link.js';

export interface EnterChannelOptions {
  /** What to do once inside an insecure session. */
  intercept: InterceptHooks;
  /** For the finding when a secure client stops her (e.g. "rewrite Bob's delivery"). */
  goal: string;
}

export function enterChannel(
  link: Link,
  opts: EnterChannelOptions,
): ConnectionHooks & { readonly interceptor: Interceptor | undefined } {
  let interceptor: Interceptor | undefined;
  let group: DhGroup | undefined;
  return {
    get interceptor() {
      return interceptor;
    },
    async fromClient(frame: Buffer) {
      if (interceptor !== undefined) return interceptor.fromClient(frame);
      const v = viewFrame(frame);
      if (v.frame?.t === 'client_hello' && group === undefined) {
        // Insecure victims: nothing to forge. Authenticated ones: she tries with signatures she cannot
        // make, which only an end that skips the signature check takes (client/mitm/interceptor.ts).
        if (v.frame.mode === 'insecure' || v.frame.mode === 'auth') {
          interceptor = new Interceptor(link, opts.intercept);
          return interceptor.fromClient(frame);
        }
        if (isDhGroup(v.frame.group)) {
          group = v.frame.group;
          const mine = generateDhKeyPair(group);
          link.toServer(
            rewriteClientHello(frame, (h) => (h.share = mine.publicKey)),
            'modify',
            "client DH share replaced by Mallory's",
          );
          return;
        }
      }
      link.toServer(frame);
    },
    async fromServer(frame: Buffer) {
      if (interceptor !== undefined) return interceptor.fromServer(frame);
      const v = viewFrame(frame);
      if (v.frame?.t === 'server_hello' && group !== undefined && v.frame.sig !== undefined) {
        const mine = generateDhKeyPair(group);
        link.toClient(
          rewriteServerHello(frame, (h) => (h.share = mine.publicKey)),
          'modify',
          "server DH share replaced by Mallory's; she cannot redo the KDC's signature",
        );
        link.expect({
          defence: 'transcript signature',
          toward: 'client',
          codes: ['bad_signature'],
          what: `to ${opts.goal}, Mallory substituted the DH shares of a secure session`,
        });
        return;
      }
      link.toClient(frame);
    },
  };
}

/** Hooks that act once on the first record after the handshake in one direction (tamper, reflect, ...). */
export function onFirstRecord(
  link: Link,
  from: 'client' | 'server',
  act: (frame: Buffer) => void | Promise<void>,
): ConnectionHooks {
  let done = false;
  const pass = (frame: Buffer, side: 'client' | 'server'): void =>
    side === 'client' ? link.toServer(frame) : link.toClient(frame);
  const handler = (side: 'client' | 'server') => async (frame: Buffer) => {
    if (side === from && !done && viewFrame(frame).kind === 'record') {
      done = true;
      await act(frame);
      return;
    }
    pass(frame, side);
  };
  return { fromClient: handler('client'), fromServer: handler('server') };
}
