// Client load for the keys benchmark, in its own process: N pairs (alice_i, bob_i), each party on its own
// established authenticated session (client/session.ts), exchanging AES-256 keys through the KDC with
// the protocol steps of client/keys/key-client.ts and the same pure functions (shared/keys: exchange,
// prekeys, digests), but keeping keys in memory: the real client's encrypted on-disk key store (one
// fsynced file per key) is the client's own business, not the KDC's rate.
//
// One key, KDC-generated (docs/keys.md, flow 2): alice key.create -> bob gets key.delivered -> acceptKdcKey
// (receiver signature) -> key.verify {ack: [delivery]} = valid; alice gets key.verified.
// One key, end-to-end (flow 1): alice key.reserve -> runSenderExchange -> key.deposit -> bob gets
// key.delivered -> runReceiverExchange -> key.verify {ack} = valid; alice gets key.verified. Bob
// keeps his prekey stock topped up (key.prekeys) as the real client does.
// Acknowledgements ride on requests (`ack`, shared/protocol/messages-keys.ts): bob's on his key.verify
// (as client/keys/key-client.ts does), alice's key.verified notices on her next key.create/key.reserve
// (a long-lived sender's choice: the CLI client, whose sessions are short, acks each notice with key.ack
// at once), with one key.ack per pair for what is left when a run ends.
// A key counts when bob's key.verify said `valid`; its latency runs from alice's first request.
// Batched KDC-generated keys (docs/keys.md "Batches"), in the other direction of each pair so that the
// single-key flows' per-pair counts stay what they were: bob key.create.batch {peer: alice, count: n,
// ack: his key.verified notices} -> alice gets n key.delivered pushes -> acceptKdcKey for each -> ONE
// key.verify.batch {items, ack: the n deliveries} = n x valid; bob gets n key.verified. The n keys count
// once all n verdicts are `valid`; each key's latency is the batch's.
//   setup {url, bobUrl?, caCertPem, pairs} -> sessions opened (the bobs on bobUrl if given), bob's
//                                     prekeys published
//   run {mode, count, pairs?, batch?} -> `count` keys per pair (the first `pairs` pairs), pairs in
//                                     parallel, one key (mode 'kdc-batch': one batch of `batch` keys) at a
//                                     time per pair; with the latencies of KDC-generated keys' deliveries
//                                     (alice's key.create -> bob's key.delivered push)
//   cpu                            -> microseconds of CPU (user + system) this process used so far
//   close
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { openSession, type ClientSession } from '../../client/session.js';
import { acceptKdcKey, runReceiverExchange, runSenderExchange } from '../../shared/keys/exchange.js';
import { generatePrekey, type GeneratedPrekey } from '../../shared/keys/prekey.js';
import { e2eDeliveryOf, kdcDeliveryOf, reservationOf } from '../../shared/keys/wire.js';
import { parseCertificate, type ParsedCertificate } from '../../shared/pki/x509.js';
import { serve } from './ipc.js';

interface PartySpec {
  name: string;
  serialHex: string;
  certPem: string;
  keyPem: string;
}

interface Party {
  name: string;
  certSerial: string;
  privateKey: KeyObject;
  session: ClientSession;
}

interface Pair {
  alice: Party;
  bob: Party;
  prekeys: Map<string, GeneratedPrekey>;
  /** serial -> resolve(valid?) for the key alice is sending now. */
  waiting: Map<string, (ok: boolean, error?: string) => void>;
  /** Deliveries bob received before alice's reply told us the serial (KDC mode races). */
  early: Map<string, boolean>;
  /** Alice's applied key.verified notices, acknowledged with her next key.create / key.reserve. */
  acks: number[];
  /** serial -> when bob's key.delivered push arrived (hrtime), for the delivery latency. */
  arrived: Map<string, bigint>;
  /** Batched flow (bob -> alice): deliveries alice holds, and the serials she waits for. */
  aliceInbox: Map<string, Record<string, unknown>>;
  aliceWaiting: Map<string, (body: Record<string, unknown>) => void>;
  /** Bob's key.verified notices of batched keys, acknowledged with his next key.create.batch. */
  bobAcks: number[];
}

const PREKEY_LOW = 4;
let pairs: Pair[] = [];
let ca: ParsedCertificate | undefined;

async function openParty(url: string, caCertPem: string, spec: PartySpec): Promise<Party> {
  const privateKey = createPrivateKey(spec.keyPem);
  const session = await openSession({
    server: url,
    mode: 'auth',
    credentials: { privateKey, certPem: spec.certPem },
    caCertPem,
    connectTimeoutMs: 120_000,
    requestTimeoutMs: 120_000,
  });
  return { name: spec.name, certSerial: spec.serialHex, privateKey, session };
}

async function topUp(pair: Pair): Promise<void> {
  const { bob } = pair;
  const status = await bob.session.request('key.prekeys', { prekeys: [] });
  const { wanted } = status;
  if (!(wanted > 0)) return;
  const made = await Promise.all(
    Array.from({ length: wanted }, () =>
      generatePrekey({ name: bob.name, certSerial: bob.certSerial }, bob.privateKey),
    ),
  );
  for (const p of made) pair.prekeys.set(p.id, p);
  await bob.session.request('key.prekeys', {
    prekeys: made.map((p) => ({ id: p.id, publicKey: p.publicKey, signature: p.signature })),
  });
}

/** Bob's side of one delivery: accept, sign, verify, acknowledge. */
async function onDelivered(pair: Pair, b: Record<string, unknown>): Promise<void> {
  const { bob } = pair;
  const serial = String(b.serial);
  const me = { name: bob.name, certSerial: bob.certSerial, privateKey: bob.privateKey };
  let digest: Buffer;
  let signature: Buffer;
  if (b.mode === 'kdc') {
    const r = await acceptKdcKey(me, kdcDeliveryOf(b));
    ({ digest, signature } = r);
  } else {
    const prekey = pair.prekeys.get(String(b.prekeyId));
    if (prekey === undefined) throw new Error('delivery for an unknown prekey');
    pair.prekeys.delete(prekey.id);
    const r = await runReceiverExchange(
      me,
      e2eDeliveryOf(b),
      {
        id: prekey.id,
        certSerial: bob.certSerial,
        publicKey: prekey.publicKey,
        privateKey: prekey.privateKey,
      },
      { ca: ca!, now: Date.now() },
    );
    ({ digest, signature } = r);
  }
  // The delivery is acknowledged inside key.verify (`ack`), as client/keys/key-client.ts does.
  const v = await bob.session.request('key.verify', {
    serial,
    digest,
    signature,
    ...(typeof b.d === 'number' ? { ack: [b.d] } : {}),
  });
  const ok = v.verdict === 'valid';
  const done = pair.waiting.get(serial);
  if (done !== undefined) done(ok, ok ? undefined : `verdict ${v.verdict}`);
  else pair.early.set(serial, ok);
  if (b.mode === 'e2e' && pair.prekeys.size <= PREKEY_LOW) await topUp(pair);
}

/**
 * Alice sends one key to bob and waits for bob's valid verification. Returns the delivery latency
 * (KDC-generated keys): from alice's key.create until bob's key.delivered push arrived, in ms.
 */
async function sendOne(pair: Pair, mode: 'kdc' | 'e2e'): Promise<number | undefined> {
  const { alice, bob } = pair;
  const startedAt = process.hrtime.bigint();
  let serial: string;
  const ack = pair.acks.splice(0);
  const withAck = ack.length > 0 ? { ack } : {};
  if (mode === 'kdc') {
    const c = await alice.session.request('key.create', { peer: bob.name, ...withAck });
    serial = c.serial;
  } else {
    const r = await alice.session.request('key.reserve', { peer: bob.name, ...withAck });
    const sent = await runSenderExchange(
      { name: alice.name, certSerial: alice.certSerial, privateKey: alice.privateKey },
      reservationOf(r),
      { ca: ca!, now: Date.now() },
    );
    serial = sent.deposit.serial;
    const verified = new Promise<void>((resolve, reject) =>
      pair.waiting.set(serial, (ok, error) => (ok ? resolve() : reject(new Error(error)))),
    );
    await alice.session.request('key.deposit', { ...sent.deposit });
    await verified;
    pair.arrived.delete(serial);
    return undefined;
  }
  const early = pair.early.get(serial);
  if (early !== undefined) {
    pair.early.delete(serial);
    if (!early) throw new Error('verification failed');
  } else {
    await new Promise<void>((resolve, reject) =>
      pair.waiting.set(serial, (ok, error) => (ok ? resolve() : reject(new Error(error)))),
    );
  }
  const arrived = pair.arrived.get(serial);
  pair.arrived.delete(serial);
  return arrived === undefined ? undefined : Number(arrived - startedAt) / 1e6;
}

/** Alice's copy of one delivery of the batch flow, as soon as it is (or was) pushed. */
function deliveryFor(pair: Pair, serial: string): Promise<Record<string, unknown>> {
  const held = pair.aliceInbox.get(serial);
  if (held !== undefined) {
    pair.aliceInbox.delete(serial);
    return Promise.resolve(held);
  }
  return new Promise((resolve) => pair.aliceWaiting.set(serial, resolve));
}

/**
 * Bob sends alice `n` KDC-generated keys in one key.create.batch; alice accepts each delivery and verifies
 * all of them in one key.verify.batch, acknowledging the deliveries in it (what client/keys/key-inbox.ts
 * does with deliveries that arrive together).
 */
async function sendBatch(pair: Pair, n: number): Promise<void> {
  const { alice, bob } = pair;
  const ack = pair.bobAcks.splice(0);
  const c = await bob.session.request('key.create.batch', {
    peer: alice.name,
    count: n,
    ...(ack.length > 0 ? { ack } : {}),
  });
  const bodies = await Promise.all(c.keys.map((k) => deliveryFor(pair, k.serial)));
  const me = { name: alice.name, certSerial: alice.certSerial, privateKey: alice.privateKey };
  const signed = await Promise.all(bodies.map((b) => acceptKdcKey(me, kdcDeliveryOf(b))));
  const v = await alice.session.request('key.verify.batch', {
    items: signed.map((r, i) => ({ serial: c.keys[i]!.serial, digest: r.digest, signature: r.signature })),
    ack: bodies.map((b) => b.d as number),
  });
  const bad = v.results.find((r) => r.verdict !== 'valid');
  if (bad !== undefined) throw new Error(`verdict ${bad.verdict ?? bad.error}`);
}

serve({
  setup: async (arg: {
    url: string;
    /** Where the bobs connect (bench/cluster.ts: another node of the store); default `url`. */
    bobUrl?: string;
    caCertPem: string;
    pairs: { alice: PartySpec; bob: PartySpec }[];
  }) => {
    ca = parseCertificate(arg.caCertPem);
    pairs = [];
    for (let i = 0; i < arg.pairs.length; i += 16) {
      const opened = await Promise.all(
        arg.pairs.slice(i, i + 16).map(async (p) => {
          const [alice, bob] = await Promise.all([
            openParty(arg.url, arg.caCertPem, p.alice),
            openParty(arg.bobUrl ?? arg.url, arg.caCertPem, p.bob),
          ]);
          return {
            alice,
            bob,
            prekeys: new Map(),
            waiting: new Map(),
            early: new Map(),
            acks: [],
            arrived: new Map(),
            aliceInbox: new Map(),
            aliceWaiting: new Map(),
            bobAcks: [],
          } as Pair;
        }),
      );
      pairs.push(...opened);
    }
    for (const pair of pairs) {
      // Bob's deliveries, one at a time in arrival order (as the real client does).
      let chain: Promise<void> = Promise.resolve();
      pair.bob.session.onPush('key.delivered', (b) => {
        pair.arrived.set(String(b.serial), process.hrtime.bigint());
        chain = chain
          .then(() => onDelivered(pair, b))
          .catch((err: unknown) => {
            const done = pair.waiting.get(String(b.serial));
            done?.(false, (err as Error).message);
          });
      });
      // Alice acknowledges "bob verified your key" notices so they do not pile up at the KDC: with her
      // next key.create / key.reserve (`ack`), or with key.ack when her run ends (see run below).
      pair.alice.session.onPush('key.verified', (b) => {
        if (typeof b.d === 'number') pair.acks.push(b.d);
      });
      // The batched flow runs bob -> alice.
      pair.alice.session.onPush('key.delivered', (b) => {
        const serial = String(b.serial);
        const waiting = pair.aliceWaiting.get(serial);
        if (waiting === undefined) pair.aliceInbox.set(serial, b);
        else {
          pair.aliceWaiting.delete(serial);
          waiting(b);
        }
      });
      pair.bob.session.onPush('key.verified', (b) => {
        if (typeof b.d === 'number') pair.bobAcks.push(b.d);
      });
    }
    await Promise.all(pairs.map((p) => topUp(p)));
    return pairs.length;
  },
  run: async (arg: { mode: 'kdc' | 'e2e' | 'kdc-batch'; count: number; pairs?: number; batch?: number }) => {
    const latencies: number[] = [];
    const deliveries: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    const t0 = process.hrtime.bigint();
    await Promise.all(
      pairs.slice(0, arg.pairs ?? pairs.length).map(async (pair) => {
        if (arg.mode === 'kdc-batch') {
          const n = arg.batch ?? 1;
          for (let i = 0; i < arg.count; i += n) {
            const s = process.hrtime.bigint();
            try {
              await sendBatch(pair, Math.min(n, arg.count - i));
              const ms = Number(process.hrtime.bigint() - s) / 1e6;
              for (let k = 0; k < Math.min(n, arg.count - i); k++) latencies.push(ms);
            } catch (err) {
              errors += 1;
              firstError ??= `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
            }
          }
          const ids = pair.bobAcks.splice(0);
          if (ids.length > 0) await pair.bob.session.request('key.ack', { ids });
          return;
        }
        for (let i = 0; i < arg.count; i++) {
          const s = process.hrtime.bigint();
          try {
            const delivered = await sendOne(pair, arg.mode);
            latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
            if (delivered !== undefined) deliveries.push(delivered);
          } catch (err) {
            errors += 1;
            firstError ??= `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
          }
        }
        const ids = pair.acks.splice(0);
        if (ids.length > 0) await pair.alice.session.request('key.ack', { ids });
      }),
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    return { ms, keys: latencies.length, latencies, deliveries, errors, firstError };
  },
  cpu: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
  close: async () => {
    await Promise.all(pairs.flatMap((p) => [p.alice.session.close(), p.bob.session.close()]));
    pairs = [];
    return true;
  },
});
