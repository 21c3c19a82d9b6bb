// The end of a connection's TCP stream once its WebSocket close handshake is complete.
//
// ws ends the close handshake with socket.end(): a half-close (shutdown(SHUT_WR), our FIN), then it
// keeps the socket open until the peer's FIN arrives, reads that end of stream, and only then closes
// the descriptor. When both close frames have crossed, the wait is for nothing: RFC 6455 7.1.1 "the
// server SHOULD close the underlying TCP connection first" and a peer that has sent its close frame
// sends no more data (5.5.1 "the endpoint MUST NOT send any more data frames after sending a Close
// frame"). Closing the descriptor then sends the same FIN after the same bytes (the kernel still
// delivers what it holds; the close frame is already in it), and saves per connection a shutdown, an
// epoll_ctl, the read of the end of stream and the loop turn it takes (docs/performance.md "The lean
// resumed path": every resumed session ends this way).
//
// Only when the PEER started the close. When the KDC ends a session (revocation, an error, shutdown),
// whoever waits for Connection.whenClosed (a revocation is acknowledged only once every session of
// the certificate has closed) waits as before for the peer's FIN: the peer has then finished its side
// of the close too, not only sent its close frame.
//
// And never before the peer's close frame has arrived (ws also calls end() on a write error, or on the
// peer's FIN without a close frame): closing the descriptor with the peer's bytes unread would make
// the kernel answer with a reset, and a reset can discard our alert and close frame before the peer
// reads them, so the peer would not learn why. Nor while Node holds bytes not yet written to the socket
// (backpressure): destroy() would drop them.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** The socket's WebSocket (own property: one shared `end` function below, no closure per socket). */
const WS = Symbol('kds.ws');
/** Set on a WebSocket whose close the KDC started. */
const OURS = Symbol('kds.closeStartedHere');

interface Closable extends Duplex {
  [WS]?: WebSocket;
}

interface Marked {
  [OURS]?: true;
}

/**
 * ws's own record that the peer's close frame has arrived. Not in ws's typings: if a ws version names
 * it otherwise, it reads undefined and every close falls back to ws's half-close (test/server/kdc/
 * socket-close.test.ts fails then, so the saving is not lost unnoticed).
 */
function closeFrameReceived(ws: WebSocket): boolean {
  return (ws as unknown as { _closeFrameReceived?: boolean })._closeFrameReceived === true;
}

function endAfterCloseHandshake(this: Closable, ...args: unknown[]): Closable {
  const ws = this[WS];
  if (
    args.length === 0 &&
    ws !== undefined &&
    (ws as Marked)[OURS] !== true &&
    closeFrameReceived(ws) &&
    this.writableLength === 0 &&
    !this.destroyed
  ) {
    this.destroy();
    return this;
  }
  // The socket's own end (net.Socket's), which the own property below shadows.
  const end = (Object.getPrototypeOf(this) as Duplex).end as (...a: unknown[]) => Closable;
  return end.apply(this, args);
}

/** Make `socket` (the upgraded connection of `ws`) close outright once the close handshake is done. */
export function closeAfterCloseHandshake(ws: WebSocket, socket: Duplex): void {
  const s = socket as Closable;
  s[WS] = ws;
  s.end = endAfterCloseHandshake as Duplex['end'];
}

/** The KDC starts the close of `ws` (call before ws.close): its socket then half-closes as ws does. */
export function closeStartedHere(ws: WebSocket): void {
  (ws as Marked)[OURS] = true;
}
