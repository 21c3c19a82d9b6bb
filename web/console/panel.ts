// The state panel: sessions open, certificates and keys with their states, the CRL number, and the
// changes (revocations and their cascade) up to the timeline's cursor.
import type { ConsoleState } from '../../shared/console/events.js';
import { byId, clear, el } from './dom.js';
import { keyStateLabel, num, str, type Kept } from './model.js';

function short(serial: string): string {
  return serial.length > 12 ? `${serial.slice(0, 12)}...` : serial;
}

function rows<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

/**
 * In Mallory's view the panel shows her attack, her victims' connections and the keys she stole;
 * the KDC's certificates and CRL are not hers to see.
 */
function renderAttack(state: ConsoleState | undefined, mallory: boolean): void {
  const box = byId('attack-box');
  box.hidden = !mallory;
  for (const node of document.querySelectorAll<HTMLElement>('.kdc-only')) node.hidden = mallory;
  byId('sessions-title').textContent = mallory ? 'Victim connections' : 'Sessions';
  byId('keys-title').textContent = mallory ? 'Keys stolen' : 'Keys';
  const attack = state?.attack;
  const outcome = str(attack?.outcome, 32);
  byId('attack-name').textContent =
    attack === undefined ? '' : `${str(attack.name, 64)}: ${str(attack.summary, 200)}`;
  const line = byId('attack-outcome');
  line.setAttribute('data-outcome', outcome);
  const defences = rows<unknown>(attack?.defences).map((d) => str(d, 64));
  const stolen = num(attack?.stolenKeys);
  // One success makes the attack a success; defences that stopped her on other connections are named
  // after it, so the line never reads as if they had stopped this one.
  const stopped = defences.join(' and ');
  line.textContent =
    attack === undefined
      ? ''
      : outcome === 'succeeded'
        ? `SUCCEEDED${stolen === 0 ? '' : ` - ${stolen} key(s) stolen`}${stopped === '' ? '' : ` (stopped by ${stopped} on another connection)`}`
        : `${outcome.toUpperCase()}${stopped === '' ? '' : ` - stopped by ${stopped}`}`;
}

export function renderPanel(
  state: ConsoleState | undefined,
  events: Kept[],
  cursor: number,
  view: string,
): void {
  const mallory = view === 'mallory';
  renderAttack(state, mallory);
  const sessions = byId('sessions');
  const certs = byId('certs');
  const keys = byId('keys');
  const changes = byId('changes');
  for (const list of [sessions, certs, keys, changes]) clear(list);
  const s = rows<ConsoleState['sessions'][number]>(state?.sessions);
  // A KDC with more sessions open than the list holds says how many.
  const open = (state?.counts as Partial<ConsoleState['counts']> | undefined)?.sessions;
  byId('session-count').textContent = String(open === undefined ? s.length : num(open));
  for (const row of s) {
    sessions.appendChild(
      el(
        'li',
        { 'data-role': str(row.role, 16) },
        `${str(row.name, 64) || '(anonymous)'} `,
        el('span', { class: 'dim' }, `${str(row.role, 16)} #${num(row.exchange)}`),
      ),
    );
  }
  // A MITM lab KDC with defences switched off says so above everything else: what the page shows
  // then is an experiment, not the protocol.
  const off = rows<unknown>(state?.labDisabled).map((name) => str(name, 40));
  const lab = byId('lab-disabled');
  lab.hidden = off.length === 0;
  lab.textContent = off.length === 0 ? '' : `MITM lab: defences OFF: ${off.join(', ')}`;
  const counts = state?.counts;
  byId('cert-counts').textContent =
    counts === undefined ? '' : `${num(counts.certsActive)} active, ${num(counts.certsRevoked)} revoked`;
  for (const row of rows<ConsoleState['certs'][number]>(state?.certs)) {
    const status = str(row.status, 16);
    certs.appendChild(
      el(
        'li',
        { 'data-status': status, 'data-serial': str(row.serial, 80), title: str(row.serial, 80) },
        `${str(row.name, 64)} `,
        el('span', { class: 'dim' }, `${str(row.role, 16)} ${short(str(row.serial, 80))} `),
        el('span', { class: 'state' }, status),
      ),
    );
  }
  byId('key-counts').textContent = mallory
    ? String(num(state?.attack?.stolenKeys))
    : counts === undefined
      ? ''
      : `${num(counts.keysActive)} active, ${num(counts.keysRevoked)} revoked, ${num(counts.keysExpired)} expired`;
  for (const row of rows<ConsoleState['keys'][number]>(state?.keys)) {
    const st = str(row.state, 16);
    const reason = str(row.reason, 40);
    keys.appendChild(
      el(
        'li',
        { 'data-status': st, 'data-serial': str(row.serial, 80), title: str(row.serial, 80) },
        `${str(row.owner, 64)} -> ${str(row.peer, 64)} `,
        el('span', { class: 'dim' }, `${short(str(row.serial, 80))} `),
        el('span', { class: 'state' }, keyStateLabel(st, reason)),
      ),
    );
  }
  byId('crl-number').textContent = String(num(state?.crlNumber));
  const recent = events
    .slice(0, cursor + 1)
    .filter((e) => e.kind === 'change')
    .slice(-30)
    .reverse();
  for (const e of recent) {
    if (e.kind !== 'change') continue;
    const what = str(e.what, 32);
    changes.appendChild(
      el('li', { 'data-what': what }, `${what} `, el('b', {}, str(e.subject, 140)), ` ${str(e.detail, 200)}`),
    );
  }
}
