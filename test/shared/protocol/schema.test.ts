// shared/protocol/schema.ts: every field kind, its bounds, and error messages that name the field.
import t from 'tap';
import { canonicalize, describeSchema, s, validate, type Infer } from '../../../shared/protocol/schema.js';

const S = s.map(
  {
    t: s.literal('x'),
    n: s.uint({ max: 10 }),
    b: s.bytes({ len: 4 }),
    r: s.bytes({ min: 1, max: 3 }),
    name: s.string({ min: 1, max: 5, pattern: /^[a-z]+$/ }),
    e: s.enumOf(['a', 'b']),
    f: s.bool(),
    list: s.array(s.uint(), { min: 1, max: 2 }),
    inner: s.map({ k: s.string({ max: 3 }) }),
    opt: s.optional(s.string({ max: 3 })),
  },
  (m) => (m.opt === 'bad' ? 'opt must not be bad' : undefined),
  '`opt` is not "bad"',
);
type V = Infer<typeof S>;
const good = (): V => ({
  t: 'x',
  n: 3,
  b: Buffer.alloc(4),
  r: Buffer.alloc(2),
  name: 'abc',
  e: 'a',
  f: true,
  list: [1],
  inner: { k: 'v' },
});

t.test('a valid value passes and keeps its type', async (t) => {
  const v = validate(S, good(), 'msg');
  t.equal(v.name, 'abc');
  t.same(validate(S, { ...good(), opt: 'yo' }, 'msg').opt, 'yo');
});

t.test('each kind names the field in its error', async (t) => {
  const cases: [string, (v: Record<string, unknown>) => void, string][] = [
    ['literal', (v) => (v.t = 'y'), 'msg.t: expected "x", got "y"'],
    ['uint type', (v) => (v.n = '3'), 'msg.n: expected unsigned integer, got string'],
    ['uint negative', (v) => (v.n = -1), 'msg.n: expected unsigned integer, got -1'],
    ['uint fraction', (v) => (v.n = 1.5), 'msg.n: expected unsigned integer, got 1.5'],
    ['uint NaN', (v) => (v.n = NaN), 'msg.n: expected unsigned integer, got NaN'],
    ['uint unsafe', (v) => (v.n = 2 ** 53), 'msg.n: expected unsigned integer, got 9007199254740992'],
    ['uint max', (v) => (v.n = 11), 'msg.n: expected at most 10, got 11'],
    ['bytes type', (v) => (v.b = 'abcd'), 'msg.b: expected bytes, got string'],
    ['bytes len', (v) => (v.b = Buffer.alloc(3)), 'msg.b: expected 4 bytes, got 3'],
    ['bytes range', (v) => (v.r = Buffer.alloc(0)), 'msg.r: expected 1..3 bytes, got 0'],
    ['bytes array', (v) => (v.b = [1, 2, 3, 4]), 'msg.b: expected bytes, got array'],
    ['string type', (v) => (v.name = 5), 'msg.name: expected string, got number'],
    ['string long', (v) => (v.name = 'abcdef'), 'msg.name: expected string of 1..5 bytes, got 6'],
    ['string utf8 bytes', (v) => (v.name = 'ééé'), 'msg.name: expected string of 1..5 bytes, got 6'],
    ['string pattern', (v) => (v.name = 'AB'), 'msg.name: expected string matching ^[a-z]+$'],
    ['enum', (v) => (v.e = 'c'), 'msg.e: expected one of a|b, got "c"'],
    ['bool', (v) => (v.f = 1), 'msg.f: expected boolean, got number'],
    ['array type', (v) => (v.list = 1), 'msg.list: expected array, got number'],
    ['array size', (v) => (v.list = []), 'msg.list: expected 1..2 elements, got 0'],
    ['array element', (v) => (v.list = [1, 'x']), 'msg.list[1]: expected unsigned integer, got string'],
    ['nested map', (v) => (v.inner = { k: 'long' }), 'msg.inner.k: expected string of 0..3 bytes, got 4'],
    ['nested unknown', (v) => (v.inner = { k: 'v', z: 1 }), 'msg.inner.z: unknown field'],
    ['map type', (v) => (v.inner = [1]), 'msg.inner: expected map, got array'],
    ['null', (v) => (v.inner = null), 'msg.inner: expected map, got null'],
    ['unknown field', (v) => (v.extra = 1), 'msg.extra: unknown field'],
    ['missing field', (v) => delete v.n, 'msg.n: missing'],
    ['null is not absent', (v) => (v.opt = null), 'msg.opt: expected string, got null'],
    ['refine', (v) => (v.opt = 'bad'), 'msg: opt must not be bad'],
  ];
  for (const [label, mutate, message] of cases) {
    const v = good() as unknown as Record<string, unknown>;
    mutate(v);
    t.throws(() => validate(S, v, 'msg'), { code: 'schema', message }, label);
  }
  t.throws(() => validate(S, 'nope', 'msg'), { code: 'schema', message: 'msg: expected map, got string' });
  t.throws(() => validate(S, Buffer.alloc(1), 'msg'), {
    code: 'schema',
    message: 'msg: expected map, got bytes(1)',
  });
});

t.test('fields are read as own properties only', async (t) => {
  const proto = good();
  const derived = Object.create(proto) as Record<string, unknown>;
  t.throws(() => validate(S, derived, 'msg'), { code: 'schema', message: 'msg: expected map, got object' });
  const nullProto = Object.assign(Object.create(null) as Record<string, unknown>, good());
  t.equal(validate(S, nullProto, 'msg').name, 'abc');
});

t.test('canonicalize orders fields as the schema does and drops absent optionals', async (t) => {
  const shuffled = {
    inner: { k: 'v' },
    list: [1],
    f: true,
    e: 'a',
    name: 'abc',
    r: Buffer.alloc(2),
    b: Buffer.alloc(4),
    n: 3,
    t: 'x',
    opt: undefined,
  };
  const out = canonicalize(S, shuffled, 'msg');
  t.same(Object.keys(out), ['t', 'n', 'b', 'r', 'name', 'e', 'f', 'list', 'inner']);
  t.notOk(Object.hasOwn(out, 'opt'));
  t.throws(() => canonicalize(S, { ...shuffled, n: 99 }, 'msg'), { code: 'schema' });
});

t.test('describeSchema names each kind with its bounds (the notation of docs/messages.md)', async (t) => {
  const f = S.fields;
  t.equal(describeSchema(f.t), '"x"');
  t.equal(describeSchema(f.n), 'uint(≤10)');
  t.equal(describeSchema(s.uint()), 'uint', 'no bound below 2^53 is printed');
  t.equal(describeSchema(s.uint({ unit: 'epoch ms' })), 'uint (epoch ms)');
  t.equal(describeSchema(s.uint({ max: 60, unit: 'ms' })), 'uint(≤60) (ms)');
  t.equal(describeSchema(f.b), 'bytes[4]');
  t.equal(describeSchema(f.r), 'bytes[1..3]');
  t.equal(describeSchema(f.name), 'str[1..5] ~ ^[a-z]+$');
  t.equal(describeSchema(s.string({ min: 16, max: 16 })), 'str[16]');
  t.equal(describeSchema(f.e), 'enum{a, b}');
  t.equal(describeSchema(f.f), 'bool');
  t.equal(describeSchema(f.list), 'uint[] (1..2)');
  t.equal(
    describeSchema(s.array(s.string({ max: 3, pattern: /^a$/ }), { max: 4 })),
    '(str[0..3] ~ ^a$)[] (0..4)',
  );
  t.equal(describeSchema(s.array(s.map({ a: s.bool() }), { max: 4 })), 'map[] (0..4)');
  t.equal(describeSchema(f.inner), 'map');
  t.equal(describeSchema(s.map({})), 'map (empty)');
  t.equal(describeSchema(f.opt), 'str[0..3]?');
  t.equal(describeSchema(s.optional(s.uint({ unit: 'ms' }))), '(uint (ms))?', 'wrapped when it has spaces');
  t.equal(S.rule, '`opt` is not "bad"');
});

t.test('a map with a cross-field rule must say the rule in words', async (t) => {
  t.throws(() => s.map({ a: s.bool() }, () => undefined), {
    code: 'internal',
    message: 'a map schema with a refine needs its rule',
  });
  t.throws(() => s.map({ a: s.bool() }, () => undefined, ''), { code: 'internal' });
  t.equal(s.map({ a: s.bool() }).rule, undefined);
});
