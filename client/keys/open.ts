// Open a key client for a client home: read the credentials once, open an authenticated session, open
// the encrypted key store, then publish prekeys and take queued notices (KeyClient.start) so that
// "Bob's client, on every session it opens, tops up its stock" and receives what was queued for him.
import { AuthError } from '../../shared/errors.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import type { DhGroup } from '../../shared/crypto/dh.js';
import { readClientHome, resolveHome, type HomeLocation } from '../home.js';
import { openSession, type ClientSession } from '../session.js';
import { ClientKeyStore } from './key-store.js';
import { KeyClient, type KeyEvent } from './key-client.js';
import type { Defences } from '../../shared/lab-switches.js';

export interface OpenKeyClientOptions extends HomeLocation {
  server: string;
  dh?: DhGroup;
  /**
   * MITM lab control mode (`--insecure-dh`, docs/attacks.md): an unauthenticated DH session that only
   * claims this client's name. The end-to-end exchange keeps its own checks (signed prekeys, transcript
   * signatures); only the channel to the KDC is left unauthenticated.
   */
  insecure?: boolean;
  /** The MITM lab's ablation switches (shared/lab-switches.ts; `--lab-disable`); default all on. */
  defences?: Defences;
  acceptMessages?: boolean;
  onEvent?: (event: KeyEvent) => void;
}

export interface OpenedKeyClient {
  client: KeyClient;
  session: ClientSession;
  /** Wait for queued pushes to be applied, then close the session. */
  close(): Promise<void>;
}

export async function openKeyClient(opts: OpenKeyClientOptions): Promise<OpenedKeyClient> {
  const home = resolveHome(opts);
  const files = readClientHome(home);
  const session = await openSession({
    server: opts.server,
    ...(opts.insecure === true
      ? { mode: 'insecure' as const, insecureName: opts.name }
      : {
          mode: 'auth' as const,
          credentials: { privateKey: files.privateKey, certPem: files.certPem },
          caCertPem: files.caPem,
        }),
    ...(opts.dh === undefined ? {} : { dh: opts.dh }),
    ...(opts.defences === undefined ? {} : { defences: opts.defences }),
  });
  try {
    if (session.facts.identity.name !== opts.name) {
      throw new AuthError('cert_wrong_name', 'certificate is for another name', {
        expected: opts.name,
        actual: session.facts.identity.name,
      });
    }
    const client = new KeyClient({
      session,
      name: opts.name,
      certSerial: session.facts.identity.serialHex,
      identityKey: files.privateKey,
      ca: parseCertificate(files.caPem),
      store: ClientKeyStore.open(home, opts.name, files.privateKey),
      ...(opts.acceptMessages === undefined ? {} : { acceptMessages: opts.acceptMessages }),
      ...(opts.defences === undefined ? {} : { defences: opts.defences }),
      ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    });
    await client.start();
    return {
      client,
      session,
      close: async () => {
        await client.idle().catch(() => undefined);
        client.detach();
        await session.close();
      },
    };
  } catch (err) {
    await session.close().catch(() => undefined);
    throw err;
  }
}
