// "Secrets compared only with timingSafeEqual" (DEVELOPERS.md), enforced on the source: every
// .ts file under shared/, server/ and client/ is parsed with the TypeScript compiler and every
//   a === b, a !== b, a == b, a != b, a.equals(b), Buffer.compare(a, b)
// whose operands look like secrets (the last word of the last name in the expression is mac, digest,
// token, secret, hash, key, signature, passphrase, password, kek, or the shared secret z) is reported, unless
//   - it is in shared/crypto/ct.ts (equalBytes, the one place timingSafeEqual is wrapped), or
//   - one side is a literal, `undefined`/`null`, typeof, or a length/size/count (shape checks, not
//     content), or
//   - it is listed in ALLOWED below with the reason its operands are public.
// A new finding fails the test: compare with equalBytes, or add it to ALLOWED with a reason a reviewer
// can check. A stale ALLOWED entry fails too, so the list stays true.
import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from '../helpers/kds-process.js';

const ROOTS = ['shared', 'server', 'client'];
const EXEMPT_FILES = new Set(['shared/crypto/ct.ts']);
/**
 * Names that hold secret (or secret-derived, or authenticator) values: the LAST word of the camelCase
 * or snake_case name (`expectedMac`, `rec.digest`, `tokenHash`), unless a word says it is public
 * (`publicKey`, `peerPublic`). Not `tag`: in this code base that is an ASN.1 tag; GCM tags are checked
 * inside OpenSSL (decipher.final), never compared here.
 */
const SECRET_WORDS = new Set([
  'mac',
  'hmac',
  'digest',
  'token',
  'secret',
  'hash',
  'key',
  'signature',
  'sig',
  'passphrase',
  'password',
  'kek',
  'z',
]);

function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s_#]+/)
    .filter((w) => w !== '')
    .map((w) => w.toLowerCase());
  return words.length > 0 && SECRET_WORDS.has(words[words.length - 1]!) && !words.includes('public');
}
/** Properties that describe a value's shape or kind, never its content. */
const SHAPE_PROPERTY =
  /^(length|size|byteLength|count|type|kind|code|mode|state|status|role|name|t|version|algorithm|keyType|keyBits|format)$/;

/**
 * Comparisons of PUBLIC values whose names happen to look secret: `file: expression text` -> reason.
 * The expression text is the whole comparison as written (whitespace collapsed).
 */
const ALLOWED: Record<string, string> = {
  'shared/audit/chain.ts: computed !== entry.hash':
    'hex SHA-256 hashes of the audit chain: public by design (anyone holding the store recomputes them; the chain head is signed), no secret in either operand',
  'shared/audit/chain.ts: entry.prevHash !== prevHash':
    'hex SHA-256 hashes of the audit chain: public by design (anyone holding the store recomputes them; the chain head is signed), no secret in either operand',
  'shared/audit/chain.ts: entry.hash !== head.hash':
    'hex SHA-256 hashes of the audit chain: public by design (anyone holding the store recomputes them; the chain head is signed), no secret in either operand',
  'shared/audit/chain.ts: auditEntryHash(entry.prevHash, { ...entry, id: other.id }) === entry.hash':
    'hex SHA-256 hashes of the audit chain: public by design (anyone holding the store recomputes them; the chain head is signed), no secret in either operand',
  'server/ca/credentials.ts: fromKey.equals(fromCert)':
    'SPKI DER of two PUBLIC keys (does the private key belong to the certificate?)',
  "server/ca/enroll-replay.ts: issuedKey.equals(opts.publicKey.export({ type: 'spki', format: 'der' }))":
    'SPKI DER of two PUBLIC keys (is the replayed CSR for the key of the certificate the token produced?)',
  'client/enroll.ts: ourKey.equals(certKey)':
    'SPKI DER of two PUBLIC keys (is the issued certificate for the key we generated?)',
  'shared/protocol/transcript.ts: e.key === key': 'a msgpack map key NAME ("sig", "mac"), not key material',
  'client/keys/key-client.ts: d.digest.equals(sent.digest)':
    'SHA-256 of the ciphertext the client itself just sent, which the KDC echoes: public, and no secret depends on its timing',
  'client/demo/scenario.ts: e.text === secret':
    'the demo\'s sample message text ("the vault code is ..."), a plaintext the demo prints on purpose',
};

interface Finding {
  file: string;
  line: number;
  text: string;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** The name an operand is known by: the last identifier of `a.b.c`, `a[b]`, `f(x).y`, `x as T`, `x!`. */
function operandName(node: ts.Expression): string | undefined {
  let n: ts.Node = node;
  for (;;) {
    if (
      ts.isParenthesizedExpression(n) ||
      ts.isAsExpression(n) ||
      ts.isNonNullExpression(n) ||
      ts.isTypeAssertionExpression(n)
    )
      n = n.expression;
    else if (ts.isAwaitExpression(n)) n = n.expression;
    else break;
  }
  if (ts.isIdentifier(n) || ts.isPrivateIdentifier(n)) return n.text;
  if (ts.isPropertyAccessExpression(n)) return n.name.text;
  if (ts.isElementAccessExpression(n))
    return ts.isStringLiteral(n.argumentExpression) ? n.argumentExpression.text : operandName(n.expression);
  if (ts.isCallExpression(n)) return operandName(n.expression);
  return undefined;
}

/** Literals, undefined/null, typeof and shape properties make a comparison a shape check. */
function isShapeOperand(node: ts.Expression): boolean {
  let n: ts.Node = node;
  while (ts.isParenthesizedExpression(n) || ts.isAsExpression(n) || ts.isNonNullExpression(n))
    n = n.expression;
  if (
    ts.isStringLiteral(n) ||
    ts.isNumericLiteral(n) ||
    ts.isNoSubstitutionTemplateLiteral(n) ||
    ts.isTemplateExpression(n) ||
    ts.isBigIntLiteral(n) ||
    ts.isTypeOfExpression(n) ||
    ts.isPrefixUnaryExpression(n) ||
    n.kind === ts.SyntaxKind.NullKeyword ||
    n.kind === ts.SyntaxKind.TrueKeyword ||
    n.kind === ts.SyntaxKind.FalseKeyword
  ) {
    return true;
  }
  if (ts.isIdentifier(n) && n.text === 'undefined') return true;
  const name = operandName(n as ts.Expression);
  // ALL_CAPS names are constants (TAG.SEQUENCE, OID.x, MAX_*): comparing with one is a kind check.
  return name !== undefined && (SHAPE_PROPERTY.test(name) || /^[A-Z][A-Z0-9_]*$/.test(name));
}

function isSecretOperand(node: ts.Expression): boolean {
  const name = operandName(node);
  return name !== undefined && isSecretName(name);
}

function scan(file: string): Finding[] {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const rel = relative(REPO_ROOT, file).split('\\').join('/');
  const findings: Finding[] = [];
  const report = (node: ts.Node): void => {
    findings.push({
      file: rel,
      line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1,
      text: node.getText(sf).replace(/\s+/g, ' '),
    });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isBinaryExpression(node)) {
      const op = node.operatorToken.kind;
      const equality =
        op === ts.SyntaxKind.EqualsEqualsEqualsToken ||
        op === ts.SyntaxKind.ExclamationEqualsEqualsToken ||
        op === ts.SyntaxKind.EqualsEqualsToken ||
        op === ts.SyntaxKind.ExclamationEqualsToken;
      if (
        equality &&
        !isShapeOperand(node.left) &&
        !isShapeOperand(node.right) &&
        (isSecretOperand(node.left) || isSecretOperand(node.right))
      ) {
        report(node);
      }
    } else if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
      const callee = node.expression;
      const isEquals = callee.name.text === 'equals' && node.arguments.length === 1;
      const isCompare =
        callee.name.text === 'compare' &&
        ts.isIdentifier(callee.expression) &&
        callee.expression.text === 'Buffer';
      const operands = isEquals
        ? [callee.expression, node.arguments[0]!]
        : isCompare
          ? [...node.arguments]
          : [];
      if (operands.length > 0 && operands.some(isSecretOperand)) report(node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return findings;
}

t.test('secrets are compared only through equalBytes (timingSafeEqual)', async (t) => {
  const files = ROOTS.flatMap((r) => sourceFiles(join(REPO_ROOT, r)));
  t.ok(files.length > 50, `scanned ${files.length} source files`);
  const findings = files.flatMap(scan).filter((f) => !EXEMPT_FILES.has(f.file));
  const unexplained = findings.filter((f) => ALLOWED[`${f.file}: ${f.text}`] === undefined);
  t.same(
    unexplained.map((f) => `${f.file}:${f.line}: ${f.text}`),
    [],
    'no secret-looking value compared with ===, !==, .equals or Buffer.compare (use equalBytes, or explain it in ALLOWED)',
  );
  const seen = new Set(findings.map((f) => `${f.file}: ${f.text}`));
  t.same(
    Object.keys(ALLOWED).filter((k) => !seen.has(k)),
    [],
    'every ALLOWED entry still exists in the source',
  );
  for (const [k, why] of Object.entries(ALLOWED)) t.comment(`allowed: ${k} (${why})`);
});

t.test('the scanner itself finds what it must and ignores shape checks', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'kds-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sample.ts');
  writeFileSync(
    file,
    [
      'if (expectedMac === mac) ok();', // flagged
      'if (a.digest !== b.digest) fail();', // flagged
      'if (token.equals(other)) ok();', // flagged
      'if (Buffer.compare(expectedMac, wanted) === 0) ok();', // flagged
      'if (key === undefined) fail();', // shape
      'if (signature.length !== 256) fail();', // shape
      "if (typeof secret === 'string') ok();", // shape
      'if (hash === HASH_NAME) ok();', // constant
      'if (serial === other.serial) ok();', // not secret-named
      'if (Buffer.compare(publicKey, P) <= 0) fail();', // a public key
      'if (rec.prekeyId !== id) fail();', // an identifier, not a key
    ].join('\n'),
  );
  const found = scan(file).map((f) => f.line);
  t.same(found, [1, 2, 3, 4], 'exactly the four secret comparisons');
});
