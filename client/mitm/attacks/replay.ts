// replay: re-send recorded frames, in the same session and in a new one.
// - Same session: the client's first record is forwarded twice. Record nonces are the implicit
//   sequence number (RFC 8446 5.3), so the copy is opened as record #1 with the nonce of #1 and fails
//   (record_auth): the KDC ends the session.
// - New session: once the victim is gone, Mallory opens her own connection and replays its
//   client_hello, then its client_finish. The KDC's server_hello has a fresh nonce and DH share, so
//   the old signature and MAC cover another transcript: bad_signature (auth) or bad_mac (insecure).
import WebSocket, { type RawData } from 'ws';
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import type { AttackModule } from '../attack.js';
import type { MitmContext } from '../context.js';
import type { Link } from '../link.js';
import { viewFrame } from '../frames.js';
import { MITM_MAX_PAYLOAD } from '../link.js';
import { onFirstRecord } from '../tactics.js';

export const replay: AttackModule = {
  name: 'replay',
  summary: 'replay a record in the same session, and the whole handshake in a new one',
  position: 'on the path between a client and the KDC; then as a client of her own towards the KDC',
  action:
    "Forwards the client's first record twice; after the victim leaves, replays its client_hello and client_finish on a fresh connection to the KDC.",
  secure: {
    outcome: 'failed',
    defence: 'sequence number',
    why: 'implicit sequence numbers reject the copy; a new session has a fresh transcript, so the old signature fails',
  },
  insecure: {
    outcome: 'failed',
    defence: 'sequence number',
    why: 'the same record layer; a replayed handshake fails its Finished MAC',
  },
  connection(link) {
    // KDC records seen when the copy went out: a KDC that refuses it closes with record_auth; one that
    // accepts it answers it like the original and goes on.
    let repliesBefore: number | undefined;
    const hooks = onFirstRecord(link, 'client', (frame) => {
      link.toServer(frame, 'forward');
      link.toServer(frame, 'replay', 'the same record again');
      repliesBefore = link.records.s2c;
    });
    return {
      ...hooks,
      closed() {
        if (repliesBefore !== undefined) judgeSameSession(link, repliesBefore);
        const ch = link.clientHello;
        const cf = link.clientFinish;
        if (ch !== undefined && cf !== undefined) link.ctx.task(() => replayHandshake(link.ctx, ch, cf));
      },
    };
  },
};

/**
 * The copy's fate, from what the KDC did after it: a code of its own (record_auth: the sequence number
 * at work) is a failure; no refusal and more records from the KDC mean it opened the copy and answered
 * it (the victim, which asked once, then gets a second answer: unexpected_message on its side).
 */
function judgeSameSession(link: Link, repliesBefore: number): void {
  // The first code seen: a close is mirrored to the other side, so a later code may be an echo.
  const first = link.observed[0];
  const refusal = first?.from === 'server' ? first : undefined;
  if (refusal !== undefined) {
    // The copy's tag is intact: record_auth here is the sequence number at work (wrong nonce).
    const d =
      refusal.code === 'record_auth'
        ? { defence: 'sequence number' as const }
        : defenceForCode(refusal.code, WIRE);
    if (d !== undefined)
      link.fail(d.defence, 'replayed a record in the same session: the KDC refused it', refusal.code);
    else link.inconclusive(`replayed a record: the KDC ended the session with ${refusal.code}`);
    return;
  }
  const after = link.records.s2c - repliesBefore;
  if (after > 0) {
    const victim = link.observed.find((o) => o.from === 'client');
    link.succeed(
      `replayed a record in the same session: the KDC opened the copy and went on (${after} record${after === 1 ? '' : 's'} after it)${victim?.code === 'unexpected_message' ? '; the victim got a second answer to a request it sent once' : ''}`,
    );
    return;
  }
  link.fail(
    'sequence number',
    'replayed a record in the same session: the KDC closed the session without another word',
  );
}

/**
 * A fresh connection that replays a recorded handshake; its fate is a finding of Mallory's own. A KDC
 * that accepted it pushes `ready`, its first record, even though Mallory cannot read it.
 */
export function replayHandshake(ctx: MitmContext, clientHello: Buffer, clientFinish: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(ctx.settings.target, {
      maxPayload: MITM_MAX_PAYLOAD,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    let step = 0;
    let settled = false;
    const done = (finding: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      finding();
      ws.terminate();
      resolve();
    };
    const timer = setTimeout(
      () => done(() => ctx.inconclusive(0, 'replayed handshake: no answer in time')),
      10_000,
    );
    const log = (dir: 'side', frame: Buffer, action: 'replay' | 'forward', note: string): void =>
      ctx.record({ conn: 0, dir, type: viewFrame(frame).kind, size: frame.length, action, note });
    ws.on('open', () => {
      log('side', clientHello, 'replay', "new session: the victim's recorded client_hello");
      ws.send(clientHello, { binary: true });
    });
    ws.on('message', (data: RawData) => {
      const frame = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      const v = viewFrame(frame);
      log('side', frame, 'forward', `new session: from the KDC`);
      if (v.frame?.t === 'alert') {
        const code = v.frame.code;
        const d = defenceForCode(code, WIRE);
        done(() =>
          d !== undefined
            ? ctx.fail(0, d.defence, 'the KDC refused the handshake replayed in a new session', code)
            : ctx.inconclusive(0, `replayed handshake ended with ${code}`),
        );
        return;
      }
      if (v.frame?.t === 'server_hello' && step === 0) {
        step = 1;
        log('side', clientFinish, 'replay', "new session: the victim's recorded client_finish");
        ws.send(clientFinish, { binary: true });
        return;
      }
      if (v.kind === 'record') done(() => ctx.succeed(0, 'the KDC accepted a replayed handshake'));
    });
    ws.on('error', () => {});
    ws.on('close', (code: number, reason: Buffer) => {
      const r = reason.toString('utf8');
      const d = defenceForCode(r, WIRE);
      done(() =>
        d !== undefined
          ? ctx.fail(0, d.defence, 'the KDC refused the replayed handshake', r)
          : ctx.inconclusive(0, `replayed handshake: connection closed (${code})`),
      );
    });
  });
}
