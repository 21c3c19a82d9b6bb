// Crash points for the tests of crash-safe multi-file updates (a client's renewal, `kds server renew`,
// `kds server passphrase`)
// and of lost answers (a KDC node dying after an enrollment committed, before its answer left):
// when KDS_TEST_CRASH_AT names the point a process reaches, it kills itself with SIGKILL there, as a
// power cut or `kill -9` would, so a test can check what the next process finds. Unset (always, outside
// those tests) it costs one environment lookup. Documented in docs/cli.md ("Environment").
export type CrashPoint =
  | 'renew-key-staged'
  | 'renew-cert-received'
  | 'renew-cert-staged'
  | 'renew-key-installed'
  | 'server-renew-issued'
  | 'enroll-committed'
  | 'passphrase-staged'
  | 'passphrase-installing';

const CRASH_POINT_ENV = 'KDS_TEST_CRASH_AT';

export function crashPoint(point: CrashPoint, env: NodeJS.ProcessEnv = process.env): void {
  if (env[CRASH_POINT_ENV] === point) process.kill(process.pid, 'SIGKILL');
}
