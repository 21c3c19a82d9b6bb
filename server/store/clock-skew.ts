// A node's clock against the database server's, for the nodes that share a PostgreSQL store
// (docs/deployment.md "Clocks"). Every row a node writes is stamped with its own clock and every node
// compares those stamps with its own: key expiry, CRL thisUpdate, token and reservation lifetimes,
// renewal rates. One node whose clock is wrong therefore changes what every node sees, and for good
// (keys expired early stay expired). The database's clock is the one reference all nodes reach, so each
// node measures itself against it: at start, refusing beyond CLOCK_SKEW_REFUSE_MS, and while it runs.
import { performance } from 'node:perf_hooks';
import { EnvironmentError } from '../../shared/errors.js';
import type { AsyncStore } from './async-store.js';

/**
 * Beyond this a node refuses to start, and a running node stops the writes that only its clock decides
 * (CRL issue, key retention). NTP keeps a clock within milliseconds; 30 s is far outside that, and small
 * beside every lifetime the nodes compare (a reservation's 5 minutes, a key's, a CRL's hours).
 */
export const CLOCK_SKEW_REFUSE_MS = 30_000;
/** Beyond this the node says so in its log: a clock NTP no longer keeps, before it does harm. */
const CLOCK_SKEW_WARN_MS = 2_000;
/** How often a running node measures again. */
export const CLOCK_CHECK_MS = 60_000;
/** Readings per measurement; the one with the shortest round trip is kept (the least uncertain). */
const READINGS = 3;

export interface ClockReading {
  /** This node's clock minus the database's, in ms: positive when the node is ahead. */
  skewMs: number;
  /** The round trip of the reading: the database read its clock somewhere inside it. */
  rttMs: number;
}

/**
 * Measure the skew: the database's reading is taken to have happened halfway through the round trip,
 * which leaves it uncertain by half the round trip either way. Undefined when the store has no clock of
 * its own (SQLite).
 */
export async function readClockSkew(
  store: Pick<AsyncStore, 'databaseTime'>,
  clock: () => number,
): Promise<ClockReading | undefined> {
  return (await measureClock(store, clock))?.reading;
}

/**
 * readClockSkew, plus the database's time at that reading pinned to the monotonic clock
 * (`performance.now()`), which no setting of the wall clock moves: what the database's clock says later
 * can be told without asking it, whatever this node's clock did meanwhile.
 */
async function measureClock(
  store: Pick<AsyncStore, 'databaseTime'>,
  clock: () => number,
): Promise<{ reading: ClockReading; databaseMs: number; monotonicMs: number } | undefined> {
  let best: { reading: ClockReading; databaseMs: number; monotonicMs: number } | undefined;
  for (let i = 0; i < READINGS; i++) {
    const before = clock();
    const monoBefore = performance.now();
    const database = await store.databaseTime();
    const monoAfter = performance.now();
    const after = clock();
    if (database === undefined) return undefined;
    const reading = { skewMs: Math.round((before + after) / 2 - database), rttMs: after - before };
    if (best === undefined || reading.rttMs < best.reading.rttMs) {
      best = { reading, databaseMs: database, monotonicMs: (monoBefore + monoAfter) / 2 };
    }
  }
  return best;
}

/** How far off the clock is for certain: a slow round trip alone never makes a node refuse. */
function certainSkewMs(reading: ClockReading): number {
  return Math.max(0, Math.abs(reading.skewMs) - reading.rttMs / 2);
}

function describe(reading: ClockReading): string {
  const seconds = (Math.abs(reading.skewMs) / 1000).toFixed(1);
  return `this node's clock is ${seconds} s ${reading.skewMs > 0 ? 'ahead of' : 'behind'} the database server's`;
}

/**
 * One node's view of its clock against the database's. `inSync` is false from a measurement beyond the
 * refuse bound until one within it; the writes that only this clock decides wait for it.
 */
export class ClockSkewWatch {
  readonly #store: Pick<AsyncStore, 'databaseTime' | 'location'>;
  readonly #clock: () => number;
  readonly #refuseMs: number;
  #reading: ClockReading | undefined;
  #anchor: { databaseMs: number; monotonicMs: number } | undefined;
  #inSync = true;
  #warned = false;

  constructor(
    store: Pick<AsyncStore, 'databaseTime' | 'location'>,
    clock: () => number,
    refuseMs: number = CLOCK_SKEW_REFUSE_MS,
  ) {
    this.#store = store;
    this.#clock = clock;
    this.#refuseMs = refuseMs;
  }

  /** Whether the last measurement was within the refuse bound (true before the first). */
  get inSync(): boolean {
    return this.#inSync;
  }

  /** The last measurement (undefined before the first, and on a store with no clock of its own). */
  get reading(): ClockReading | undefined {
    return this.#reading;
  }

  /**
   * At start, before anything is written: `clock_skew` beyond the refuse bound. Returns the line to log
   * when the clock is off by more than CLOCK_SKEW_WARN_MS but within the bound.
   */
  async assertInSync(): Promise<string | undefined> {
    const reading = await this.#measure();
    if (reading === undefined) return undefined;
    if (certainSkewMs(reading) > this.#refuseMs) {
      throw new EnvironmentError(
        'clock_skew',
        `${describe(reading)} (${this.#store.location}; at most ${this.#refuseMs / 1000} s allowed): every node stamps shared rows with its own clock, so synchronise the clocks of every node and of the database host (NTP: chrony, systemd-timesyncd), then start again`,
        { skewMs: reading.skewMs, rttMs: reading.rttMs },
      );
    }
    return this.#warning(reading);
  }

  /** While running: measure again; returns the line to log when something changed. */
  async check(): Promise<string | undefined> {
    const reading = await this.#measure();
    if (reading === undefined) return undefined;
    const off = certainSkewMs(reading) > this.#refuseMs;
    if (off && this.#inSync) {
      this.#inSync = false;
      return `${describe(reading)} (at most ${this.#refuseMs / 1000} s allowed): this node stops issuing CRLs and pruning keys until it is back within, and /healthz answers 503; synchronise its clock (NTP)`;
    }
    if (!off && !this.#inSync) {
      this.#inSync = true;
      this.#warned = false;
      return `clock back within ${this.#refuseMs / 1000} s of the database server's (${(reading.skewMs / 1000).toFixed(1)} s): CRL issue and key retention resume`;
    }
    return off ? undefined : this.#warning(reading);
  }

  /**
   * The database's clock now, as the last measurement and the monotonic clock since tell it (undefined
   * before the first). A decision that is for good (deleting keys) takes the earlier of this and this
   * node's clock: a wall clock set forward after the check that allowed it cannot move it.
   */
  databaseNow(): number | undefined {
    const a = this.#anchor;
    return a === undefined ? undefined : a.databaseMs + (performance.now() - a.monotonicMs);
  }

  async #measure(): Promise<ClockReading | undefined> {
    const measured = await measureClock(this.#store, this.#clock);
    if (measured === undefined) return undefined;
    this.#reading = measured.reading;
    this.#anchor = { databaseMs: measured.databaseMs, monotonicMs: measured.monotonicMs };
    return measured.reading;
  }

  /** Once per stretch beyond CLOCK_SKEW_WARN_MS (again after it came back under). */
  #warning(reading: ClockReading): string | undefined {
    if (certainSkewMs(reading) <= CLOCK_SKEW_WARN_MS) {
      this.#warned = false;
      return undefined;
    }
    if (this.#warned) return undefined;
    this.#warned = true;
    return `${describe(reading)}: beyond ${this.#refuseMs / 1000} s this node stops issuing CRLs and pruning keys, and refuses to start; check its NTP synchronisation`;
  }
}
