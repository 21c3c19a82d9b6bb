// `kds client status`: open an authenticated session and print what it established: DH group, record
// cipher, session id, the KDC certificate, this client's certificate and its revocation status.
import type { CommandModule } from 'yargs';
import { run } from '../../output.js';
import { homeOf, withClientOptions, type ClientArgs } from './common.js';

export const statusCommand: CommandModule<object, ClientArgs> = {
  command: 'status',
  describe: 'handshake with the KDC and print the session facts and certificate status',
  builder: (y) =>
    withClientOptions(y)
      .example('$0 client status --name alice', 'open a session as alice')
      .example(
        '$0 client status --name alice --dh ffdhe2048 --json',
        'finite-field DH, JSON output',
      ) as never,
  handler: run(async (argv: ClientArgs) => {
    const { openHomeSession } = await import('../../../client/session.js');
    const { emit, style, terminalSafe: safe } = await import('../../output.js');
    const { EXIT } = await import('../../../shared/errors.js');
    const session = await openHomeSession({
      ...homeOf(argv),
      server: argv.server,
      dh: argv.dh,
      resume: false,
    });
    try {
      const f = session.facts;
      const status = await session.request('cert.status', { serial: f.identity.serialHex });
      const out = {
        server: session.server,
        sessionId: f.sessionId,
        group: f.group,
        cipher: f.cipher,
        serverCertificate: f.serverCertificate,
        identity: f.identity,
        certificate: f.clientCertificate,
        certStatus: status,
      };
      const good = status.status === 'good';
      emit(argv, out, [
        `${style.symbol(true)} session with ${safe(session.server)}`,
        `  session id:   ${f.sessionId}`,
        `  DH group:     ${f.group}`,
        `  cipher:       ${f.cipher}`,
        `  KDC cert:     CN=${safe(f.serverCertificate.subjectCN)} sha256=${f.serverCertificate.fingerprint256}`,
        `  identity:     ${safe(f.identity.name)} (${safe(f.identity.role)})`,
        `  own cert:     serial ${safe(f.clientCertificate?.serialHex ?? '-')}, expires ${
          f.clientCertificate ? new Date(f.clientCertificate.notAfter).toISOString() : '-'
        }`,
        `  cert status:  ${good ? style.ok('good') : style.bad(safe(status.status))}`,
      ]);
      return good ? EXIT.ok : status.status === 'revoked' ? EXIT.revoked : EXIT.notFound;
    } finally {
      await session.close();
    }
  }),
};
