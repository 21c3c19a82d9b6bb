// The menu's link to the KDC: one authenticated session with a key client on it (client/keys/open.ts),
// opened on first use and opened again after it ends (server restart, certificate revoked), so the
// menu keeps working across those events and reports them. While it is open the session receives the
// KDC's pushes, which the menu prints as notices: keys delivered, verified or revoked, messages.
import type { DhGroup } from '../../shared/crypto/dh.js';
import { StateError, toKdsError } from '../../shared/errors.js';
import { hasCredentials } from '../home.js';
import type { KeyEvent } from '../keys/key-client.js';
import { openKeyClient, type OpenedKeyClient } from '../keys/open.js';

export interface MenuConnectionOptions {
  name: string;
  /** The resolved home directory. */
  home: string;
  server: string;
  dh?: DhGroup;
  onEvent: (event: KeyEvent) => void;
  /** The session ended without the menu asking (with the KdsError code when there was one). */
  onClosed: (code: string | undefined) => void;
}

export class MenuConnection {
  readonly #opts: MenuConnectionOptions;
  #opened: OpenedKeyClient | undefined;
  #opening: Promise<OpenedKeyClient> | undefined;
  /** Sessions the menu closed itself: their end is not news. */
  readonly #closedByUs = new WeakSet<OpenedKeyClient>();

  constructor(opts: MenuConnectionOptions) {
    this.#opts = opts;
  }

  get enrolled(): boolean {
    return hasCredentials(this.#opts.home);
  }

  get isOpen(): boolean {
    return this.#opened?.session.isOpen === true;
  }

  /** The open key client, connecting first when needed. */
  async get(): Promise<OpenedKeyClient> {
    if (this.#opened?.session.isOpen === true) return this.#opened;
    if (!this.enrolled) {
      throw new StateError(
        'not_found',
        `${this.#opts.name} is not enrolled yet: choose Certificates > Enroll first`,
      );
    }
    this.#opening ??= this.#open().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  async #open(): Promise<OpenedKeyClient> {
    const opened = await openKeyClient({
      name: this.#opts.name,
      home: this.#opts.home,
      server: this.#opts.server,
      ...(this.#opts.dh === undefined ? {} : { dh: this.#opts.dh }),
      acceptMessages: true,
      onEvent: this.#opts.onEvent,
    });
    this.#opened = opened;
    void opened.session.closed.then((info) => {
      if (this.#opened === opened) this.#opened = undefined;
      if (!this.#closedByUs.has(opened))
        this.#opts.onClosed(info.error === undefined ? undefined : toKdsError(info.error).code);
    });
    return opened;
  }

  /** Close the session (before exiting, or before enrolling again). */
  async close(): Promise<void> {
    const opened = this.#opened ?? (await this.#opening?.catch(() => undefined));
    this.#opened = undefined;
    if (opened === undefined) return;
    this.#closedByUs.add(opened);
    await opened.close().catch(() => undefined);
  }
}
