// Client-side failover between KDC nodes. Several nodes sharing one PostgreSQL store are one KDC; the
// client tries the URLs of `--server` (shared/server-urls.ts) in order and uses the first that answers.
//
// Only "cannot reach it" moves on to the next node: a refused connection, a timeout, a node going away
// or a node whose store is unavailable (`unavailable`). Every other refusal (a bad certificate, a
// revoked identity, a rate limit, a wrong token) is the deployment's answer, the same on every node, so
// it is reported at once: retrying it elsewhere would only hide it, and would turn one refused attempt
// into as many as there are nodes.
import { EnvironmentError, KdsError } from '../shared/errors.js';
import { parseServerList } from '../shared/server-urls.js';

/**
 * Whether an attempt's failure means "try the next node" (see the header). `timeout` is a node that
 * accepted the connection and then did not complete the handshake in time (a hung process, a node whose
 * certificate check waits on a store gone quiet): no answer at all, like a refused connection. Every
 * attempt given here is a session opening or a GET, so trying it on another node applies nothing twice.
 */
function isUnreachable(err: unknown): boolean {
  return err instanceof KdsError && (err.code === 'unavailable' || err.code === 'timeout');
}

/**
 * Run `attempt` against each node of `servers` in order until one succeeds. A failure that is not
 * "unreachable" ends the search at once with that failure; when every node is unreachable the error
 * is `unavailable` and names each node's reason (one node: its own error unchanged).
 */
export async function withFailover<T>(servers: string, attempt: (server: string) => Promise<T>): Promise<T> {
  const list = parseServerList(servers);
  const reasons: string[] = [];
  let last: unknown;
  for (const server of list) {
    try {
      return await attempt(server);
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      last = err;
      // Each reason names its node: a node's own answer ("the database is unavailable") does not.
      const reason = (err as KdsError).message;
      reasons.push(reason.includes(server) ? reason : `${server}: ${reason}`);
    }
  }
  if (list.length === 1) throw last;
  throw new EnvironmentError('unavailable', `no KDC node answered: ${reasons.join('; ')}`);
}
