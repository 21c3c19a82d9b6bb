// The sizes of the hardening tests (test/hardening/, docs/security.md "Running the full figures"):
// each is an environment variable with a CI default small enough for `npm test` on 2 cores, and the
// figure the issue asks for, run with `KDS_HARDENING_FULL=1 npx tap dist/test/hardening/`.
export interface Param {
  env: string;
  ci: number;
  full: number;
}

export const PARAMS = {
  /** Mutated frames per wire frame type (client_hello, client_finish, record), in-process. */
  fuzzFrames: { env: 'KDS_FUZZ_FRAMES', ci: 3_000, full: 10_000 },
  /** Mutated application messages per request type, in-process, inside authenticated records. */
  fuzzApp: { env: 'KDS_FUZZ_APP', ci: 200, full: 10_000 },
  /** Mutated frames per frame type against the live server process (real sockets and randomness). */
  fuzzLive: { env: 'KDS_FUZZ_LIVE', ci: 200, full: 2_000 },
  /** Connections in the handshake flood. */
  floodConnections: { env: 'KDS_FLOOD_CONNECTIONS', ci: 500, full: 500 },
  /** Client pairs in the load test, and key exchanges per pair and per flow. */
  loadPairs: { env: 'KDS_LOAD_PAIRS', ci: 50, full: 50 },
  loadExchanges: { env: 'KDS_LOAD_EXCHANGES', ci: 5, full: 10 },
  /** SIGKILL rounds in the crash test. */
  crashRounds: { env: 'KDS_CRASH_ROUNDS', ci: 6, full: 100 },
} as const satisfies Record<string, Param>;

/** The value of a parameter: its environment variable, else the full figure with KDS_HARDENING_FULL=1, else the CI default. */
export function param(p: Param): number {
  const raw = process.env[p.env];
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${p.env} must be a positive integer, got ${raw}`);
    return n;
  }
  return process.env.KDS_HARDENING_FULL === '1' ? p.full : p.ci;
}

/** A seed for the random choices of a test: KDS_SEED if set (to replay a failure), else fresh. */
export function seed(): number {
  const raw = process.env.KDS_SEED;
  if (raw !== undefined && raw !== '') return Number(raw) | 0;
  return (Math.random() * 2 ** 31) | 0;
}
