// Replay of relayed messages (docs/keys.md "Messages"): a KDC (or anyone injecting at it) that
// delivers the same sealed message to Bob twice gets it refused with `replayed`, also after Bob
// restarts; a relay that renumbers it breaks the AAD (`bad_mac`); fresh messages still pass; retiring
// the key deletes the counters. In-process KDC; the relay wraps Bob's session and re-injects a captured
// `msg` push exactly as the KDC would deliver it.
import t from 'tap';
import type { ClientSession } from '../../../client/session.js';
import type { KeyEvent, KeySession } from '../../../client/keys/key-client.js';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { inProcessKdc } from './inproc.js';

t.setTimeout(120_000);

type Body = Record<string, unknown>;
type PushFn = (body: Body, type: string) => void;

/** A relay that records every `msg` push and can deliver any body again to the client's handler. */
function replayer(): { wrap: (s: ClientSession) => KeySession; seen: Body[]; inject(body: Body): void } {
  const seen: Body[] = [];
  let handler: PushFn | undefined;
  return {
    seen,
    wrap: (s) => ({
      request: (type, body) => s.request(type, body),
      onPush: (type, fn) => {
        if (type !== 'msg') return s.onPush(type, fn);
        handler = fn;
        return s.onPush(type, (body, pt) => {
          seen.push(body);
          fn(body, pt);
        });
      },
    }),
    inject: (body) => handler!(body, 'msg'),
  };
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!cond()) throw new Error('condition not reached');
}

type MessageEvent = Extract<KeyEvent, { event: 'message' | 'message.rejected' }>;

function messages(events: KeyEvent[]): MessageEvent[] {
  return events.filter((e): e is MessageEvent => e.event === 'message' || e.event === 'message.rejected');
}

t.test('a replayed message is refused with `replayed`, also after the receiver restarts', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const relay = replayer();
  let bob = await env.open('bob', { wrap: relay.wrap });
  const alice = await env.open('alice');
  const { serial } = await alice.client.sendKey({ to: 'bob' });
  await bob.client.idle();
  await alice.client.sync();
  t.equal(alice.client.store.getKey(serial)?.state, 'active', 'the key is usable');

  await alice.client.sendMessage({ to: 'bob', text: 'pay carol 10' });
  await until(() => messages(bob.events).length === 1);
  await bob.client.idle();
  t.match(messages(bob.events), [{ event: 'message', text: 'pay carol 10', from: 'alice', serial }]);
  const captured = relay.seen[0]!;
  t.equal(captured.seq, 1, 'the first message under a key is number 1');
  t.equal(alice.client.store.sentSeq(serial), 1, 'the sender stored its counter');

  relay.inject({ ...captured });
  await bob.client.idle();
  t.match(messages(bob.events)[1], { event: 'message.rejected', code: 'replayed', from: 'alice', serial });
  t.equal(bob.events.filter((e) => e.event === 'message').length, 1, 'shown once as genuine');

  // Renumbering it past the window breaks the AAD: the relay cannot launder a replay.
  relay.inject({ ...captured, seq: 2 });
  await bob.client.idle();
  t.match(messages(bob.events)[2], { event: 'message.rejected', code: 'bad_mac' });

  // Bob restarts: his memory of what he accepted is in his key store.
  await bob.close();
  const relay2 = replayer();
  bob = await env.open('bob', { wrap: relay2.wrap });
  t.same(bob.client.store.replayState(serial)?.highest, 1, 'the window is durable');
  relay2.inject({ ...captured });
  await bob.client.idle();
  t.match(messages(bob.events), [{ event: 'message.rejected', code: 'replayed' }]);

  // A fresh message still works, and a late one inside the window too.
  await alice.client.sendMessage({ to: 'bob', text: 'second' });
  await until(() => messages(bob.events).length === 2);
  await bob.client.idle();
  t.match(messages(bob.events)[1], { event: 'message', text: 'second' });
  t.equal(relay2.seen[0]?.seq, 2);

  // Retiring the key deletes its counters with the key material.
  await alice.client.revokeKey(serial, 'keyCompromise');
  await until(() => bob.events.some((e) => e.event === 'key.revoked'));
  await bob.client.idle();
  const tombstone = bob.client.store.getKey(serial)!;
  t.equal(tombstone.state, 'revoked');
  t.equal(bob.client.store.replayState(serial), undefined, "the receiver's replay memory is gone");
  t.equal(alice.client.store.sentSeq(serial), 0, "the sender's counter is gone");
  t.notOk(existsSync(join(env.home('bob'), 'keys', `${serial}.recv`)), 'its file is deleted');
  relay2.inject({ ...captured });
  await bob.client.idle();
  t.match(messages(bob.events)[2], { event: 'message.rejected', code: 'key_revoked' });
  await bob.close();
  await alice.close();
});

t.test('both parties number their own messages under one shared key', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const bob = await env.open('bob');
  const alice = await env.open('alice');
  const { serial } = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  await bob.client.idle();
  await alice.client.sync();
  for (const text of ['a1', 'a2']) await alice.client.sendMessage({ to: 'bob', text });
  await bob.client.sendMessage({ to: 'alice', text: 'b1' });
  await until(() => messages(bob.events).length === 2 && messages(alice.events).length === 1);
  await bob.client.idle();
  await alice.client.idle();
  t.same(
    messages(bob.events).map((e) => (e.event === 'message' ? e.text : e.code)),
    ['a1', 'a2'],
  );
  t.same(
    messages(alice.events).map((e) => (e.event === 'message' ? e.text : e.code)),
    ['b1'],
    "bob's number 1 is not alice's number 1",
  );
  t.equal(bob.client.store.sentSeq(serial), 1);
  t.equal(bob.client.store.replayState(serial)?.highest, 2);
  await bob.close();
  await alice.close();
});

t.test(
  'a message the key store cannot record is kept at the KDC and shown at the next session',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    let bob = await env.open('bob');
    const alice = await env.open('alice');
    const { serial } = await alice.client.sendKey({ to: 'bob' });
    await bob.client.idle();
    await alice.client.sync();
    // Bob's replay window cannot be read (a directory where the file should be: EISDIR, io_error).
    const windowFile = join(env.home('bob'), 'keys', `${serial}.recv`);
    mkdirSync(windowFile);
    await alice.client.sendMessage({ to: 'bob', text: 'do not lose me' });
    await until(() => messages(bob.events).length === 1);
    await bob.client.idle();
    t.match(messages(bob.events), [{ event: 'message.rejected', code: 'io_error', kept: true, serial }]);
    t.notOk(
      bob.events.some((e) => e.event === 'message'),
      'not shown: its acceptance could not be made durable',
    );
    await bob.close();

    rmdirSync(windowFile);
    bob = await env.open('bob');
    await until(() => messages(bob.events).length === 1);
    await bob.client.idle();
    t.match(messages(bob.events), [{ event: 'message', text: 'do not lose me', from: 'alice' }]);
    t.equal(bob.client.store.replayState(serial)?.highest, 1);
    await bob.close();

    // Shown and acknowledged now: a third session gets nothing again.
    bob = await env.open('bob');
    await bob.client.idle();
    await new Promise((r) => setTimeout(r, 100));
    t.same(messages(bob.events), [], 'delivered once');
    await bob.close();
    await alice.close();
  },
);
