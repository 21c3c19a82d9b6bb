// A tiny schema validator for wire messages (docs/protocol.md, "Message catalog"). Every field kind has
// explicit bounds, maps reject unknown and missing fields, and errors name the field:
// `client_hello.nonce: expected 32 bytes, got 31` (ProtocolError `schema`). Types are inferred from the
// schema (Infer<typeof S>) so handlers see exactly what was validated.
import { ProtocolError, typeName, InternalError } from '../errors.js';

export interface BytesSchema {
  readonly kind: 'bytes';
  readonly min: number;
  readonly max: number;
}
export interface StringSchema {
  readonly kind: 'string';
  readonly min: number;
  /** In UTF-8 bytes. */
  readonly max: number;
  readonly pattern?: RegExp;
}
export interface UintSchema {
  readonly kind: 'uint';
  readonly max: number;
  /** What the number counts, for the reference (docs/messages.md): 'epoch ms', 'ms'. */
  readonly unit?: string;
}
export interface BoolSchema {
  readonly kind: 'bool';
}
export interface EnumSchema<V extends string = string> {
  readonly kind: 'enum';
  readonly values: readonly V[];
}
export interface LiteralSchema<V extends string = string> {
  readonly kind: 'literal';
  readonly value: V;
}
export interface ArraySchema<S extends Schema = Schema> {
  readonly kind: 'array';
  readonly of: S;
  readonly min: number;
  readonly max: number;
}
export interface OptionalSchema<S extends Schema = Schema> {
  readonly kind: 'optional';
  readonly inner: S;
}
export type Fields = { readonly [name: string]: Schema | OptionalSchema };
export interface MapSchema<F extends Fields = Fields> {
  readonly kind: 'map';
  readonly fields: F;
  /** A cross-field rule; returns an error message (prefixed with the map's path) or undefined. */
  readonly refine?: (value: Record<string, unknown>) => string | undefined;
  /** The refine rule in words (docs/messages.md prints it; a refine without one is refused). */
  readonly rule?: string;
}
export type Schema =
  | BytesSchema
  | StringSchema
  | UintSchema
  | BoolSchema
  | EnumSchema
  | LiteralSchema
  | ArraySchema
  | MapSchema;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type RequiredKeys<F extends Fields> = { [K in keyof F]: F[K] extends OptionalSchema ? never : K }[keyof F];
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K] extends OptionalSchema ? K : never }[keyof F];
type InferField<S> = S extends OptionalSchema<infer I> ? Infer<I> : Infer<S>;
/** An empty map is Record<string, never>, not `{}`: `{}` would accept any object, and the schema accepts none. */
export type InferMap<F extends Fields> = [keyof F] extends [never]
  ? Record<string, never>
  : Simplify<{ [K in RequiredKeys<F>]: InferField<F[K]> } & { [K in OptionalKeys<F>]?: InferField<F[K]> }>;
export type Infer<S> = S extends BytesSchema
  ? Buffer
  : S extends StringSchema
    ? string
    : S extends UintSchema
      ? number
      : S extends BoolSchema
        ? boolean
        : S extends EnumSchema<infer V>
          ? V
          : S extends LiteralSchema<infer V>
            ? V
            : S extends ArraySchema<infer O>
              ? Infer<O>[]
              : S extends MapSchema<infer F>
                ? InferMap<F>
                : never;

/** Builders. Bounds are mandatory where a missing bound would be a hole. */
export const s = {
  bytes(opts: { len: number } | { min?: number; max: number }): BytesSchema {
    return 'len' in opts
      ? { kind: 'bytes', min: opts.len, max: opts.len }
      : { kind: 'bytes', min: opts.min ?? 0, max: opts.max };
  },
  string(opts: { min?: number; max: number; pattern?: RegExp }): StringSchema {
    return opts.pattern === undefined
      ? { kind: 'string', min: opts.min ?? 0, max: opts.max }
      : { kind: 'string', min: opts.min ?? 0, max: opts.max, pattern: opts.pattern };
  },
  uint(opts: { max?: number; unit?: string } = {}): UintSchema {
    const max = opts.max ?? Number.MAX_SAFE_INTEGER;
    return opts.unit === undefined ? { kind: 'uint', max } : { kind: 'uint', max, unit: opts.unit };
  },
  bool(): BoolSchema {
    return { kind: 'bool' };
  },
  enumOf<const V extends string>(values: readonly V[]): EnumSchema<V> {
    return { kind: 'enum', values };
  },
  literal<const V extends string>(value: V): LiteralSchema<V> {
    return { kind: 'literal', value };
  },
  array<S extends Schema>(of: S, opts: { min?: number; max: number }): ArraySchema<S> {
    return { kind: 'array', of, min: opts.min ?? 0, max: opts.max };
  },
  optional<S extends Schema>(inner: S): OptionalSchema<S> {
    return { kind: 'optional', inner };
  },
  /** `rule` says in words what `refine` checks: required with a refine (the reference prints it). */
  map<const F extends Fields>(
    fields: F,
    refine?: (value: InferMap<F>) => string | undefined,
    rule?: string,
  ): MapSchema<F> {
    if (refine === undefined) return { kind: 'map', fields };
    if (rule === undefined || rule === '')
      throw new InternalError('internal', 'a map schema with a refine needs its rule');
    return {
      kind: 'map',
      fields,
      refine: refine as (value: Record<string, unknown>) => string | undefined,
      rule,
    };
  },
};

/**
 * One line naming what a schema accepts, in the notation of docs/protocol.md "Frames": `bytes[32]`,
 * `bytes[1..16384]`, `str[1..64] ~ ^[a-z]+$`, `uint(≤255)`, `uint (epoch ms)`, `bool`, `enum{a, b}`,
 * `"literal"`, `T[] (0..100)`, `map`, and `T?` for an optional field. Pure: the message reference
 * (docs/messages.md) is rendered from it, so the document says exactly what validate() enforces.
 */
export function describeSchema(schema: Schema | OptionalSchema): string {
  switch (schema.kind) {
    case 'optional': {
      const inner = describeSchema(schema.inner);
      return /\s/.test(inner) ? `(${inner})?` : `${inner}?`;
    }
    case 'bytes':
      return schema.min === schema.max ? `bytes[${schema.min}]` : `bytes[${schema.min}..${schema.max}]`;
    case 'string': {
      const size = schema.min === schema.max ? `str[${schema.min}]` : `str[${schema.min}..${schema.max}]`;
      return schema.pattern === undefined ? size : `${size} ~ ${schema.pattern.source}`;
    }
    case 'uint': {
      const bound = schema.max === Number.MAX_SAFE_INTEGER ? 'uint' : `uint(≤${schema.max})`;
      return schema.unit === undefined ? bound : `${bound} (${schema.unit})`;
    }
    case 'bool':
      return 'bool';
    case 'enum':
      return `enum{${schema.values.join(', ')}}`;
    case 'literal':
      return JSON.stringify(schema.value);
    case 'array': {
      const item = schema.of.kind === 'map' ? 'map' : describeSchema(schema.of);
      const wrapped = /\s/.test(item) ? `(${item})` : item;
      return `${wrapped}[] (${schema.min}..${schema.max})`;
    }
    case 'map':
      return Object.keys(schema.fields).length === 0 ? 'map (empty)' : 'map';
  }
}

/**
 * Checks `value` against `schema`; throws ProtocolError `schema` naming the field (`path`). Returns the
 * value typed. Map fields are read as own properties only (never through the prototype).
 */
export function validate<S extends Schema>(schema: S, value: unknown, path: string): Infer<S> {
  check(schema, value, path);
  return value as Infer<S>;
}

/**
 * The value rebuilt in schema field order with absent optionals dropped (undefined never reaches the
 * encoder, which would leave the entry out). Validates as it goes.
 */
export function canonicalize<S extends Schema>(schema: S, value: unknown, path: string): Infer<S> {
  check(schema, value, path);
  return rebuild(schema, value) as Infer<S>;
}

// Each map schema's fields as entries, listed once: Object.entries allocated an array of pairs on every
// check of every map, several per frame (schemas are built at load time and never change).
const fieldEntries = new WeakMap<Fields, readonly (readonly [string, Schema | OptionalSchema])[]>();

function entriesOf(fields: Fields): readonly (readonly [string, Schema | OptionalSchema])[] {
  let entries = fieldEntries.get(fields);
  if (entries === undefined) {
    entries = Object.entries(fields);
    fieldEntries.set(fields, entries);
  }
  return entries;
}

function fail(path: string, message: string): never {
  throw new ProtocolError('schema', `${path}: ${message}`, { field: path });
}

function check(schema: Schema, value: unknown, path: string): void {
  switch (schema.kind) {
    case 'bytes': {
      if (!(value instanceof Uint8Array)) fail(path, `expected bytes, got ${typeName(value)}`);
      if (schema.min === schema.max && value.length !== schema.min) {
        fail(path, `expected ${schema.min} bytes, got ${value.length}`);
      }
      if (value.length < schema.min || value.length > schema.max) {
        fail(path, `expected ${schema.min}..${schema.max} bytes, got ${value.length}`);
      }
      return;
    }
    case 'string': {
      if (typeof value !== 'string') fail(path, `expected string, got ${typeName(value)}`);
      const n = Buffer.byteLength(value, 'utf8');
      if (n < schema.min || n > schema.max)
        fail(path, `expected string of ${schema.min}..${schema.max} bytes, got ${n}`);
      if (schema.pattern !== undefined && !schema.pattern.test(value)) {
        fail(path, `expected string matching ${schema.pattern.source}`);
      }
      return;
    }
    case 'uint': {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
        fail(
          path,
          `expected unsigned integer, got ${typeof value === 'number' ? String(value) : typeName(value)}`,
        );
      }
      if (value > schema.max) fail(path, `expected at most ${schema.max}, got ${value}`);
      return;
    }
    case 'bool': {
      if (typeof value !== 'boolean') fail(path, `expected boolean, got ${typeName(value)}`);
      return;
    }
    case 'enum': {
      if (typeof value !== 'string' || !schema.values.includes(value)) {
        fail(path, `expected one of ${schema.values.join('|')}, got ${describe(value)}`);
      }
      return;
    }
    case 'literal': {
      if (value !== schema.value)
        fail(path, `expected ${JSON.stringify(schema.value)}, got ${describe(value)}`);
      return;
    }
    case 'array': {
      if (!Array.isArray(value)) fail(path, `expected array, got ${typeName(value)}`);
      if (value.length < schema.min || value.length > schema.max) {
        fail(path, `expected ${schema.min}..${schema.max} elements, got ${value.length}`);
      }
      value.forEach((item, i) => check(schema.of, item, `${path}[${i}]`));
      return;
    }
    case 'map': {
      if (!isPlainRecord(value)) fail(path, `expected map, got ${typeName(value)}`);
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(schema.fields, key)) fail(`${path}.${key}`, 'unknown field');
      }
      for (const [key, field] of entriesOf(schema.fields)) {
        const present = Object.hasOwn(value, key) && value[key] !== undefined;
        if (field.kind === 'optional') {
          if (present) check(field.inner, value[key], `${path}.${key}`);
        } else if (!present) {
          fail(`${path}.${key}`, 'missing');
        } else {
          check(field, value[key], `${path}.${key}`);
        }
      }
      if (schema.refine !== undefined) {
        const problem = schema.refine(value);
        if (problem !== undefined) fail(path, problem);
      }
      return;
    }
  }
}

function rebuild(schema: Schema, value: unknown): unknown {
  if (schema.kind === 'array') return (value as unknown[]).map((item) => rebuild(schema.of, item));
  if (schema.kind !== 'map') return value;
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, field] of entriesOf(schema.fields)) {
    const v = Object.hasOwn(source, key) ? source[key] : undefined;
    if (v === undefined) continue;
    out[key] = rebuild(field.kind === 'optional' ? field.inner : field, v);
  }
  return out;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value === 'string')
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeName(value);
}
