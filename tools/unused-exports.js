// Fails on an export that nothing imports: a name exported "in case" is API nobody reviews and code
// nobody deletes. Run by `npm run check` over the whole tree; `node tools/unused-exports.js --list`
// prints every finding without failing (`--time` adds the time taken, `--root DIR` checks another
// tree: the tool's test).
//
// It reads the syntax of every TypeScript file with the compiler's parser only (no type-checking: the
// whole tree parses in about a second), follows relative imports, re-exports and dynamic imports, and
// reports each exported name that no other file imports. Rules:
// - An import from a test (test/**) counts only for test helpers and for the names TEST_ONLY lists
//   below: source code exists for the product, so an export used only by tests is dead code unless a
//   reason says why the product exports it.
// - `import * as ns` and `const m = await import(...)` count the names read as `ns.name` / `m.name`;
//   a namespace used any other way (passed on, spread) counts every export of its module.
// - A name re-exported (`export { a } from`, `export *`) is used when the re-export is.
// - A name used only inside its own file is reported too: drop its `export`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

let ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIRS = ['cli', 'shared', 'io', 'server', 'client', 'test', 'bench', 'tools', 'web/console'];
// Launchers in plain JavaScript import compiled modules from dist/: they count as importers.
const JS_IMPORTERS = ['bin/kds.js'];

/**
 * Exports whose only importers are tests (other than their mirror test), each with the reason the
 * module exports them.
 */
const TEST_ONLY = {
  'server/keys/key-sweep.ts': {
    names: ['KEY_RETENTION_BATCH'],
    why: 'the retention test deletes a backlog of more than two batches and checks one transaction and one audit entry per batch',
  },
  'server/store/sqlite-keys.ts': {
    names: ['NEWEST_KEYS_OF_PARTY_SQL', 'NEWEST_KEYS_SQL'],
    why: "the SQLite store's test reads the query plan of a client's key listing: through the owner and peer indexes, never a scan of every key",
  },
  'server/store/sqlite-certificates.ts': {
    names: ['CERTIFICATE_SERIALS_SQL', 'CERTIFICATE_STATUS_COUNTS_SQL'],
    why: "the SQLite store's test reads the query plans of the console's certificate counts and of the superseded serials read at a CA's open: from the status index, no row read, no sort",
  },
  'server/audit/read-audit.ts': {
    names: ['AUDIT_PAGE'],
    why: 'the audit test writes a trail of more than two pages to check that paging loses and repeats nothing',
  },
  'client/ticket-file.ts': {
    names: ['TICKET_FILE'],
    why: "the resumption test checks the ticket file's mode and sealing where the client keeps it",
  },
  'io/console/http.ts': {
    names: ['CONSOLE_CSP'],
    why: 'the KDC and Mallory console tests compare the header each serves with the one policy',
  },
  'server/events/terminal-lines.ts': {
    names: ['clock'],
    why: "the log reader's test renders the expected lines with the KDC's own clock format",
  },
  'tools/kdc-side.ts': {
    names: ['kdcSideShape', 'extractKdcSide'],
    why: "the demo test compares docs/attacks.md's KDC side with a real run through the docs tool's own reading of it",
  },
  'client/demo/kdc-lines.ts': {
    names: ['parseKdcLine'],
    why: "the narrator test feeds the KDC's terminal lines through the demo's own parser",
  },
  'cli/commands/index.ts': {
    names: ['areas', 'registerArea'],
    why: 'test/cli/lazy-load.test.ts registers each area on a bare parser to prove its module loads only when its command runs',
  },
  'client/admin.ts': {
    names: ['loadAdminCredentials'],
    why: 'tests open admin sessions from a data directory the way the CLI does, without a subprocess',
  },
  'client/keys/file-lock.ts': {
    names: ['STALE_EMPTY_MS', 'STALE_MS'],
    why: 'the counter-lock test ages lock files past these thresholds instead of copying the numbers',
  },
  'client/menu/context.ts': {
    names: ['runAction'],
    why: 'the menu loop and its test share it: one action fails, its error is printed, the menu goes on',
  },
  'client/mitm/loot.ts': {
    names: ['summarize'],
    why: "the report test checks Mallory's one-line rendering of decrypted bodies directly",
  },
  'server/console/http.ts': {
    names: ['CONSOLE_CSP'],
    why: 'the console HTTP test compares the header the server sends with the policy, not a copy of it',
  },
  'server/kdc/kdc.ts': {
    names: ['DEFAULT_ANONYMOUS_SESSION_MS'],
    why: 'the frame harness builds a KDC with the same anonymous-session limit as a real one',
  },
  'shared/crypto/signer.ts': {
    names: ['asCertificateSigner'],
    why: 'tests wrap broken signers (a flipped bit, a signature of other bytes) to prove the certificate self-check',
  },
  'shared/events/kdc-events.ts': {
    names: ['EVENT_TYPES', 'atLeast'],
    why: 'the event-bus and log tests walk every event type and every level threshold',
  },
  'shared/keys/message.ts': {
    names: ['messageAad'],
    why: 'the key-message vectors and crypto tests recompute the AAD independently of sealing',
  },
  'shared/keys/prekey.ts': {
    names: ['prekeySignedData'],
    why: 'the key vectors (test/vectors/generate-keys-v1.ts) sign and check the exact prekey bytes',
  },
  'shared/keys/transcript.ts': {
    names: ['E2E_TRANSCRIPT_LABEL', 'KDC_TRANSCRIPT_LABEL'],
    why: 'the key vectors re-derive transcripts from raw node:crypto with these labels',
  },
  'shared/pki/extensions.ts': {
    names: ['formatIp'],
    why: 'the ASN.1 tests check the RFC 5952 rendering on its own, across the address forms',
  },
  'shared/pki/names.ts': {
    names: ['NAME_RULE', 'RESERVED_NAMES'],
    why: 'the option-value tests assert the exact words users see and every reserved name',
  },
  'shared/protocol/catalog.ts': {
    names: ['defineAppType'],
    why: 'message tests define throwaway types to exercise the registry (duplicates, pattern)',
  },
  'shared/protocol/key-schedule.ts': {
    names: ['LABELS'],
    why: 'the transcript test re-derives every key-schedule output from raw HKDF with these labels',
  },
  'server/ca/renewal.ts': {
    names: ['MAX_RENEWALS_PER_WINDOW'],
    why: 'the renewal test renews up to the per-name limit and expects the next one refused',
  },
  'server/ca/tokens.ts': {
    names: ['hashToken'],
    why: 'the enrollment test stores an expired token the way the CA stores one (its hash only)',
  },
  'server/keys/key-quotas.ts': {
    names: ['DEFAULT_KEY_LIMITS'],
    why: 'the quota test checks the defaults are the documented figures of shared/keys/quotas.ts',
  },
  'server/store/migrations.ts': {
    names: ['MIGRATIONS'],
    why: 'the store tests check each engine ends at the last migration and both list the same migrations',
  },
  'shared/protocol/messages-core.ts': {
    names: ['MAX_TOKEN_TTL_MS'],
    why: 'the option-value test checks the CLI, the CA and the schema allow the same longest token lifetime',
  },
  'shared/protocol/messages-keys.ts': {
    names: ['KEY_PUSHES'],
    why: 'the key message tests validate each push body against its schema and walk every key type',
  },
  'tools/docs.ts': {
    names: ['ATTACKS_MD', 'attacksMarkdown'],
    why: 'the ablation test checks that docs/attacks.md is what `npm run docs` would write',
  },
};

/**
 * Modules loaded by something other than an import this tool can follow: their listed exports are
 * used by that loader.
 */
const ENTRY_EXPORTS = {
  // Node's module.register() calls a loader's hooks by these names.
  'test/cli/module-trace-hooks.ts': ['initialize', 'load'],
};

/** bench/run.ts imports each benchmark by its name in BENCHMARKS and calls its run(). */
function benchmarkNames() {
  const file = join(ROOT, 'bench/run.ts');
  if (!existsSync(file)) return [];
  const list = /BENCHMARKS = \[([^\]]*)\]/.exec(readFileSync(file, 'utf8'));
  if (list === null) throw new Error('unused-exports: no BENCHMARKS list in bench/run.ts');
  return [...list[1].matchAll(/'([a-z-]+)'/g)].map((m) => m[1]);
}

const posix = (p) => p.split(sep).join('/');
const isTest = (file) => file.startsWith('test/');

/**
 * A test counts as an importer of the source file it mirrors: test/<path>.test.ts, or
 * test/<path>-<aspect>.test.ts, tests <path>.ts, and reaching a module's parts from its own test is
 * what a mirror test is for. A test elsewhere importing a name the product does not use does not count.
 */
function mirrors(testFile, sourceFile) {
  if (!testFile.endsWith('.test.ts')) return false;
  const tested = testFile.slice('test/'.length, -'.test.ts'.length);
  const source = sourceFile.slice(0, -'.ts'.length);
  return tested === source || tested.startsWith(`${source}-`);
}

function walk(dir, out) {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return out;
  for (const entry of readdirSync(abs, { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') walk(rel, out);
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(rel);
    }
  }
  return out;
}

/** The source file a specifier names, or undefined for packages and built-ins. */
function resolveSpecifier(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  let target = posix(relative(ROOT, resolve(ROOT, dirname(fromFile), spec)));
  if (target.startsWith('dist/')) target = target.slice('dist/'.length);
  for (const candidate of [target.replace(/\.js$/, '.ts'), target, `${target}.ts`, `${target}/index.ts`]) {
    if (existsSync(join(ROOT, candidate))) return candidate;
  }
  return undefined;
}

function hasExportModifier(node) {
  return (
    ts.canHaveModifiers(node) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
  );
}

function hasDefaultModifier(node) {
  return (
    ts.canHaveModifiers(node) &&
    (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.DefaultKeyword)
  );
}

function bindingNames(name, out) {
  if (ts.isIdentifier(name)) out.push(name.text);
  else for (const el of name.elements) if (!ts.isOmittedExpression(el)) bindingNames(el.name, out);
  return out;
}

/**
 * One file's exports and uses.
 * exports: Map name -> { line, forward?: { file, name } | 'star' }
 * stars: files whose every export this file re-exports
 * uses: Array<{ file, name }> where name '*' means every export
 */
function scan(file) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const exports = new Map();
  const refs = new Map(); // export name -> names of this file's types its declaration mentions
  const stars = [];
  const uses = [];
  const namespaces = new Map(); // local name -> target file
  const lineOf = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const use = (target, name) => {
    if (target !== undefined) uses.push({ file: target, name });
  };

  for (const stmt of sf.statements) {
    if (ts.isImportDeclaration(stmt) && ts.isStringLiteral(stmt.moduleSpecifier)) {
      const target = resolveSpecifier(file, stmt.moduleSpecifier.text);
      const clause = stmt.importClause;
      if (target === undefined || clause === undefined) continue;
      if (clause.name) use(target, 'default');
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) namespaces.set(bindings.name.text, target);
      else if (bindings) for (const el of bindings.elements) use(target, (el.propertyName ?? el.name).text);
    } else if (ts.isExportDeclaration(stmt)) {
      const target =
        stmt.moduleSpecifier && ts.isStringLiteral(stmt.moduleSpecifier)
          ? resolveSpecifier(file, stmt.moduleSpecifier.text)
          : undefined;
      const clause = stmt.exportClause;
      if (clause === undefined) {
        if (target !== undefined) stars.push(target);
      } else if (ts.isNamespaceExport(clause)) {
        exports.set(clause.name.text, { line: lineOf(stmt), forward: target && { file: target, name: '*' } });
      } else {
        for (const el of clause.elements) {
          const local = (el.propertyName ?? el.name).text;
          exports.set(el.name.text, {
            line: lineOf(el),
            type: stmt.isTypeOnly || el.isTypeOnly,
            forward: target === undefined ? undefined : { file: target, name: local },
          });
        }
      }
    } else if (ts.isExportAssignment(stmt)) {
      exports.set('default', { line: lineOf(stmt) });
    } else if (hasExportModifier(stmt)) {
      const type = ts.isInterfaceDeclaration(stmt) || ts.isTypeAliasDeclaration(stmt);
      const mentioned = typeNamesIn(stmt);
      const names = hasDefaultModifier(stmt)
        ? ['default']
        : ts.isVariableStatement(stmt)
          ? stmt.declarationList.declarations.flatMap((decl) => bindingNames(decl.name, []))
          : stmt.name && ts.isIdentifier(stmt.name)
            ? [stmt.name.text]
            : [];
      for (const name of names) {
        exports.set(name, { line: lineOf(stmt), type });
        refs.set(name, mentioned);
      }
    }
  }

  // Dynamic imports and import types anywhere in the file.
  const visit = (node) => {
    if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg) && ts.isStringLiteral(arg.literal)) {
        const target = resolveSpecifier(file, arg.literal.text);
        if (node.qualifier)
          use(
            target,
            ts.isIdentifier(node.qualifier) ? node.qualifier.text : node.qualifier.left.getText(sf),
          );
        else use(target, '*');
      }
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length > 0 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      const target = resolveSpecifier(file, node.arguments[0].text);
      let parent = node.parent;
      if (ts.isAwaitExpression(parent)) parent = parent.parent;
      if (ts.isVariableDeclaration(parent) && ts.isObjectBindingPattern(parent.name)) {
        for (const el of parent.name.elements) {
          if (el.dotDotDotToken) use(target, '*');
          else use(target, (el.propertyName ?? el.name).getText(sf));
        }
      } else if (ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name) && target !== undefined) {
        namespaces.set(parent.name.text, target);
      } else {
        use(target, '*');
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);

  // Reads of namespace objects: ns.name counts name; any other use of ns counts every export.
  if (namespaces.size > 0) {
    const reads = (node) => {
      if (ts.isIdentifier(node) && namespaces.has(node.text)) {
        const parent = node.parent;
        const declaring =
          (ts.isNamespaceImport(parent) || ts.isVariableDeclaration(parent)) && parent.name === node;
        if (!declaring) {
          const target = namespaces.get(node.text);
          if (ts.isPropertyAccessExpression(parent) && parent.expression === node)
            use(target, parent.name.text);
          else if (ts.isQualifiedName(parent) && parent.left === node) use(target, parent.right.text);
          else use(target, '*');
        }
      }
      ts.forEachChild(node, reads);
    };
    reads(sf);
  }
  return { exports, stars, uses, refs };
}

/** Names used as types inside a declaration: `T` in `x: T`, `extends T`, `typeof T`. */
function typeNamesIn(node) {
  const names = new Set();
  const visit = (n) => {
    if (ts.isTypeReferenceNode(n) && ts.isIdentifier(n.typeName)) names.add(n.typeName.text);
    else if (ts.isExpressionWithTypeArguments(n) && ts.isIdentifier(n.expression))
      names.add(n.expression.text);
    else if (ts.isTypeQueryNode(n) && ts.isIdentifier(n.exprName)) names.add(n.exprName.text);
    ts.forEachChild(n, visit);
  };
  ts.forEachChild(node, visit);
  return names;
}

/** Findings for the tree at `root` (default: this checkout); `root` is for the tool's own test. */
function findUnusedExports(root = ROOT) {
  ROOT = root;
  const files = DIRS.flatMap((d) => walk(d, [])).sort();
  const scans = new Map(files.map((f) => [f, scan(f)]));
  for (const js of JS_IMPORTERS.filter((f) => existsSync(join(ROOT, f)))) {
    const text = readFileSync(join(ROOT, js), 'utf8');
    const uses = [...text.matchAll(/['"](\.\.?\/[^'"]+\.js)['"]/g)]
      .map((m) => resolveSpecifier(js, m[1]))
      .filter((target) => target !== undefined)
      .map((target) => ({ file: target, name: '*' }));
    scans.set(js, { exports: new Map(), stars: [], uses, refs: new Map() });
  }

  // used: file -> Set of names (or '*'); propagated through re-exports until nothing changes.
  const used = new Map();
  const mark = (file, name) => {
    let set = used.get(file);
    if (set === undefined) used.set(file, (set = new Set()));
    if (set.has(name)) return false;
    set.add(name);
    return true;
  };
  const queue = [];
  const counts = (importer, target, name) =>
    importer !== target &&
    (!isTest(importer) ||
      isTest(target) ||
      mirrors(importer, target) ||
      (TEST_ONLY[target]?.names.includes(name) ?? false));
  for (const [importer, s] of scans) {
    for (const u of s.uses) {
      if (counts(importer, u.file, u.name) && mark(u.file, u.name)) queue.push(u);
    }
  }
  const entries = {
    ...ENTRY_EXPORTS,
    ...Object.fromEntries(benchmarkNames().map((b) => [`bench/${b}.ts`, ['run']])),
  };
  for (const [file, names] of Object.entries(entries))
    for (const name of names) if (mark(file, name)) queue.push({ file, name });
  while (queue.length > 0) {
    const { file, name } = queue.pop();
    const s = scans.get(file);
    if (s === undefined) continue;
    const next = [];
    if (name === '*') {
      for (const e of s.exports.values()) if (e.forward) next.push(e.forward);
      for (const star of s.stars) next.push({ file: star, name: '*' });
    } else if (s.exports.has(name)) {
      const fwd = s.exports.get(name).forward;
      if (fwd) next.push(fwd);
      // The types a used export's declaration names are part of its interface: a caller may spell them.
      for (const t of s.refs.get(name) ?? [])
        if (t !== name && s.exports.has(t)) next.push({ file, name: t });
    } else {
      // A name not declared here may come through `export *`.
      for (const star of s.stars) next.push({ file: star, name });
    }
    for (const n of next) if (mark(n.file, n.name)) queue.push(n);
  }

  const findings = [];
  for (const [file, s] of scans) {
    const set = used.get(file) ?? new Set();
    if (set.has('*')) continue;
    for (const [name, info] of s.exports) {
      if (!set.has(name)) findings.push({ file, line: info.line, name, type: info.type === true });
    }
  }
  return findings;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = process.hrtime.bigint();
  const at = process.argv.indexOf('--root');
  const findings = findUnusedExports(at > 0 ? resolve(process.argv[at + 1]) : ROOT);
  for (const f of findings)
    process.stdout.write(
      `${f.file}:${f.line}: '${f.name}' is exported but never imported${f.type ? ' (type)' : ''}\n`,
    );
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (findings.length > 0 && !process.argv.includes('--list')) {
    process.stderr.write(
      `unused-exports: ${findings.length} unused export(s): drop the export (or the code), or list it in tools/unused-exports.js with the reason\n`,
    );
    process.exitCode = 1;
  } else if (process.argv.includes('--time')) {
    process.stderr.write(`unused-exports: ${findings.length} finding(s) in ${ms.toFixed(0)} ms\n`);
  }
}
