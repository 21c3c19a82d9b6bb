// The registry of application message types carried inside records (docs/protocol.md, "Application
// messages"). Each type declares the schema of its request body and response body (a request type), or
// of its push body (a server push), or both. Feature files (messages-core.ts, messages-keys.ts, ...)
// register their types at import; catalog.ts imports them all.
import { InternalError } from '../errors.js';
import type { MapSchema } from './schema.js';

/** Dotted lowercase names: `cert.status`, `admin.token`, `key.request`. */
export const APP_TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
export const MAX_APP_TYPE_LENGTH = 64;
/** Envelope markers and frame types can never be application types. */
const RESERVED = new Set(['ok', 'error', 'r', 'alert', 'client_hello', 'server_hello', 'client_finish']);

export interface AppTypeSchemas {
  readonly request?: MapSchema;
  readonly response?: MapSchema;
  readonly push?: MapSchema;
}

/** `name` keeps its literal type, so the catalog can key request types by it (catalog.ts RequestType). */
export type AppType<S extends AppTypeSchemas = AppTypeSchemas, N extends string = string> = S & {
  readonly name: N;
};

const registry = new Map<string, AppType>();

/** Registers a type; a programming error (bad name, duplicate, request without response) throws. */
export function defineAppType<const N extends string, const S extends AppTypeSchemas>(
  name: N,
  schemas: S,
): AppType<S, N> {
  if (!APP_TYPE_PATTERN.test(name) || name.length > MAX_APP_TYPE_LENGTH || RESERVED.has(name)) {
    throw new InternalError('internal', `invalid application type name ${JSON.stringify(name)}`);
  }
  if (registry.has(name)) throw new InternalError('internal', `application type ${name} is defined twice`);
  if ((schemas.request === undefined) !== (schemas.response === undefined)) {
    throw new InternalError(
      'internal',
      `application type ${name} needs both a request and a response schema`,
    );
  }
  if (schemas.request === undefined && schemas.push === undefined) {
    throw new InternalError('internal', `application type ${name} has no schema`);
  }
  const type = Object.freeze({ ...schemas, name }) as AppType<S, N>;
  registry.set(name, type);
  return type;
}

export function getAppType(name: string): AppType | undefined {
  return registry.get(name);
}

export function appTypeNames(): string[] {
  return [...registry.keys()].sort();
}
