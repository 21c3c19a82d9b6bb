// Secrets must not be created where `git add .` would commit them. A CA data directory (the CA key,
// the generated passphrase, the KEK) or a client home (the identity key) created inside a git work
// tree that does not ignore it is one `git add . && git push` away from being published, so kds
// refuses to create one there (exit 2, `config`) and says how to proceed: a directory outside the work
// tree, or an entry in .gitignore. A directory git ignores (this checkout's `certs/`) and one outside
// any work tree are used silently. Whether git ignores the path is git's own answer (`git
// check-ignore`), asked only when a `.git` is found above the directory.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { EnvironmentError } from '../shared/errors.js';

/** The work tree holding `path`: the nearest ancestor with a `.git` entry (a directory, or a file for worktrees). */
function workTreeOf(path: string): string | undefined {
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      statSync(join(p, '.git'));
      return p;
    } catch {
      // no .git here
    }
    if (dirname(p) === p) return undefined;
  }
}

/** git's answer for one path: ignored, not ignored, or unknown (git missing or failing). */
function ignoredByGit(tree: string, file: string): boolean | undefined {
  try {
    execFileSync('git', ['-C', tree, 'check-ignore', '-q', '--', relative(tree, file)], {
      stdio: 'ignore',
      timeout: 10_000,
    });
    return true;
  } catch (err) {
    // check-ignore exits 1 for "not ignored"; anything else (128: not a repository, ENOENT: no git)
    // leaves the question open.
    return (err as { status?: number }).status === 1 ? false : undefined;
  }
}

/**
 * Throws `config` when `dir` (about to receive `secret`, a file name inside it) is inside a git work
 * tree that would not ignore that file. `what` names the directory for the message ("the CA data
 * directory"). Returns a warning to print when git could not be asked.
 */
export function assertNotCommittable(dir: string, secret: string, what: string): string | undefined {
  const abs = resolve(dir);
  const tree = workTreeOf(abs);
  if (tree === undefined) return undefined;
  const ignored = ignoredByGit(tree, join(abs, secret));
  if (ignored === true) return undefined;
  if (ignored === undefined) {
    return `${abs} is inside the git work tree ${tree}, and git could not say whether it ignores it: make sure ${what} is never committed`;
  }
  throw new EnvironmentError(
    'config',
    `refusing to create ${what} in ${abs}: ${abs} is inside the git work tree ${tree} and git does not ignore it, so \`git add .\` would commit its private keys. Use a directory outside the work tree (e.g. "$(mktemp -d)"; kds itself still runs from this checkout: \`npx kds\` elsewhere would fetch another package), or add ${relative(tree, abs) || '.'}/ to ${join(tree, '.gitignore')}`,
    { path: abs, workTree: tree },
  );
}
