// `kds server ...` commands (filled in by the issue that builds them).
import type { Argv } from 'yargs';

export function register(_y: Argv): void {}
