// The console page: reads the feed (Server-Sent Events from the process it watches), keeps every
// event, and draws the diagram and the state at the timeline's cursor. Live mode follows the newest
// event; stepping back (buttons, slider, arrow keys) freezes the picture at an earlier event while
// new ones keep arriving. No framework: a few DOM calls (dom.ts) redrawn at most once per frame.
import { byId, el } from './dom.js';
import { exchangeKey, exchangeLabel, laneTitle, renderDiagram } from './diagram.js';
import { Liveness } from './liveness.js';
import { Model, num, str, type Kept } from './model.js';
import { renderPanel } from './panel.js';

const model = new Model();
const epochs = new WeakMap<Kept, number>();
const epochOf = (e: Kept): number => epochs.get(e) ?? 0;

let cursor = -1;
let live = true;
let exchange = '';
let large =
  new URLSearchParams(location.search).get('large') === '1' ||
  localStorage.getItem('kds-console-large') === '1';
let scheduled = false;

const status = byId('status');
const timeline = byId<HTMLInputElement>('timeline');
const select = byId<HTMLSelectElement>('exchange');
const knownExchanges = new Set<string>();

const liveness = new Liveness(() => Date.now());

function showStatus(): void {
  const { state, text } = liveness.status(model.view === 'mallory' ? "Mallory's proxy" : 'the KDC');
  if (status.textContent === text) return;
  status.textContent = text;
  status.setAttribute('data-status', state);
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    draw();
  });
}

function describe(e: Kept | undefined): string {
  if (e === undefined) return 'no event yet';
  const time = new Date(num(e.at)).toLocaleTimeString();
  const key = exchangeKey(e, epochOf);
  const where = key === '' ? '' : ` ${exchangeLabel(key)}`;
  switch (e.kind) {
    case 'message':
      return `${time}${where} ${laneTitle(str(e.from, 64), model.view)} -> ${laneTitle(str(e.to, 64), model.view)}: ${str(e.name, 64)}${e.action === undefined ? '' : ` (${str(e.action, 16)})`}`;
    case 'refused':
      return `${time}${where} refused: ${str(e.code, 64)}`;
    case 'established':
      return `${time}${where} session open: ${str(e.party, 64)}`;
    case 'change':
      return `${time} ${str(e.what, 32)}: ${str(e.subject, 140)}`;
    case 'undrawn':
      return `${time} ${num(e.count)} more exchanges not drawn`;
    case 'missed':
      return `${time} ${num(e.count)} events missed`;
    case 'attack':
      return `${time}${where} attack ${str(e.name, 64)}: ${str(e.outcome, 32)}`;
    default:
      return `${time}${where} ${e.kind}`;
  }
}

function draw(): void {
  const events = model.events;
  if (live) cursor = events.length - 1;
  timeline.max = String(Math.max(events.length - 1, 0));
  timeline.value = String(Math.max(cursor, 0));
  byId('live').setAttribute('aria-pressed', String(live));
  byId('cursor-label').textContent = `${cursor + 1}/${events.length}  ${describe(events[cursor])}`;
  byId('view').textContent = model.view === 'mallory' ? "Mallory's view" : 'KDC';
  document.documentElement.classList.toggle('large', large);
  byId('large').setAttribute('aria-pressed', String(large));
  const pane = byId('diagram-pane');
  const current = renderDiagram(
    byId('lanes'),
    byId('diagram'),
    { events, cursor, exchange, epochOf, onPick: pick, view: model.view },
    { width: pane.clientWidth - 8, large },
  );
  if (live) pane.scrollTop = pane.scrollHeight;
  else current?.scrollIntoView({ block: 'nearest' });
  renderPanel(model.stateAt(cursor), events, cursor, model.view);
}

function pick(key: string): void {
  exchange = key;
  select.value = key === '' ? '0' : key;
  schedule();
}

function addExchangeOption(e: Kept): void {
  const key = exchangeKey(e, epochOf);
  if (key === '' || knownExchanges.has(key)) return;
  knownExchanges.add(key);
  select.appendChild(el('option', { value: key }, exchangeLabel(key)));
}

function renameExchangeOption(e: Kept): void {
  const key = exchangeKey(e, epochOf);
  for (const option of select.options) {
    if (option.value !== key) continue;
    const what =
      e.kind === 'established'
        ? `${str(e.party, 64)} ${str(e.role, 16)}`
        : e.kind === 'refused'
          ? `refused ${str(e.code, 64)}`
          : e.kind === 'attack'
            ? `${str(e.outcome, 32)}`
            : '';
    option.textContent = `${exchangeLabel(key)} ${what}`;
  }
}

function step(delta: number): void {
  live = false;
  cursor = Math.min(Math.max(cursor + delta, 0), model.events.length - 1);
  schedule();
}

function connect(): void {
  const key = new URLSearchParams(location.search).get('key');
  const source = new EventSource(
    key === null ? '/console/events' : `/console/events?key=${encodeURIComponent(key)}`,
  );
  source.addEventListener('open', () => {
    liveness.opened();
    showStatus();
  });
  source.addEventListener('error', () => {
    liveness.lost();
    showStatus();
  });
  // The keepalive: nothing to keep, only the proof that the process and the network still answer.
  source.addEventListener('ping', () => {
    liveness.heard();
    showStatus();
  });
  source.addEventListener('hello', (m) => {
    let data: unknown;
    try {
      data = JSON.parse((m as MessageEvent<string>).data);
    } catch {
      return;
    }
    const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
    model.hello(str(d.instance, 64), str(d.view, 16));
    liveness.heard(d.keepaliveMs === undefined ? undefined : num(d.keepaliveMs));
    showStatus();
  });
  const onEvent = (m: MessageEvent<string>, keep: (data: unknown) => boolean): void => {
    let data: unknown;
    try {
      data = JSON.parse(m.data);
    } catch {
      return;
    }
    liveness.heard();
    showStatus();
    const before = model.events.length;
    if (!keep(data)) return;
    // With the event, perhaps a `missed` row before it.
    for (const e of model.events.slice(before)) epochs.set(e, model.restarts);
    const kept = model.events[model.events.length - 1]!;
    addExchangeOption(kept);
    if (kept.kind === 'established' || kept.kind === 'refused' || kept.kind === 'attack')
      renameExchangeOption(kept);
    schedule();
  };
  source.addEventListener('message', (m) => onEvent(m, (d) => model.add(d)));
  // The last state, when the history the feed sends next no longer holds it.
  source.addEventListener('state', (m) => onEvent(m as MessageEvent<string>, (d) => model.baseline(d)));
}

byId('back').addEventListener('click', () => step(-1));
byId('forward').addEventListener('click', () => step(1));
byId('live').addEventListener('click', () => {
  live = true;
  schedule();
});
byId('large').addEventListener('click', () => {
  large = !large;
  localStorage.setItem('kds-console-large', large ? '1' : '0');
  schedule();
});
timeline.addEventListener('input', () => {
  live = false;
  cursor = Number(timeline.value);
  schedule();
});
select.addEventListener('change', () => {
  exchange = select.value === '0' ? '' : select.value;
  schedule();
});
document.addEventListener('keydown', (ev) => {
  if (ev.target instanceof HTMLSelectElement || ev.target instanceof HTMLInputElement) return;
  if (ev.key === 'ArrowLeft') step(-1);
  else if (ev.key === 'ArrowRight') step(1);
  else if (ev.key === 'End') {
    live = true;
    schedule();
  }
});
window.addEventListener('resize', schedule);

connect();
schedule();
// Silence is only noticed by looking: once a second.
setInterval(showStatus, 1000);
