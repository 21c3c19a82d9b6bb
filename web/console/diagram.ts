// The sequence diagram: one lifeline per party (the KDC, every client seen, Mallory when she is on the
// path), one row per arrow, drawn as SVG with DOM calls only (dom.ts). Arrows in clear are dashed,
// arrows inside AES-256-GCM records are solid; a refused exchange ends in a red arrow with a cross that
// names the code and the defence, in the CLI's words (shared/defences.ts).
import { clear, svg } from './dom.js';
import { KDC, MALLORY, num, str, type Kept } from './model.js';

/** Rows drawn at most (the timeline reaches the older ones). */
const MAX_ROWS = 400;

export interface Layout {
  width: number;
  large: boolean;
}

/** The exchange an event belongs to, across restarts: `<epoch>:<exchange>`; '' for none. */
export function exchangeKey(e: Kept, epochOf: (e: Kept) => number): string {
  const n = 'exchange' in e ? num(e.exchange) : 0;
  return n === 0 ? '' : `${epochOf(e)}:${n}`;
}

export function exchangeLabel(key: string): string {
  const [epoch, n] = key.split(':');
  return epoch === '0' ? `#${n ?? ''}` : `#${Number(epoch) + 1}.${n ?? ''}`;
}

function drawn(e: Kept): boolean {
  return (
    e.kind === 'message' ||
    e.kind === 'refused' ||
    e.kind === 'established' ||
    e.kind === 'change' ||
    e.kind === 'undrawn' ||
    e.kind === 'missed' ||
    e.kind === 'attack'
  );
}

/**
 * Lifelines, left to right: the first client seen, Mallory when she is (or may be) on the path, the
 * KDC, the other clients, then the admin, newcomers and unknown peers. In Mallory's own view she is
 * always there, and every other party is one of her victims.
 */
function lanesOf(rows: Kept[], view: string): string[] {
  const clients: string[] = [];
  const others: string[] = [];
  const roles = new Map<string, string>();
  for (const e of rows) if (e.kind === 'established') roles.set(str(e.party, 64), str(e.role, 16));
  const malloryView = view === MALLORY;
  let mallory = malloryView;
  for (const e of rows) {
    const names =
      e.kind === 'message'
        ? [str(e.from, 64), str(e.to, 64)]
        : e.kind === 'refused'
          ? [str(e.by, 64), str(e.peer, 64)]
          : e.kind === 'established'
            ? [str(e.party, 64)]
            : e.kind === 'attack'
              ? [MALLORY]
              : [];
    for (const name of names) {
      if (name === MALLORY) mallory = true;
      if (name === '' || name === KDC || name === MALLORY || clients.includes(name) || others.includes(name))
        continue;
      const role = roles.get(name);
      (malloryView || role === 'client' || role === 'insecure' ? clients : others).push(name);
    }
    if (e.kind === 'refused' && e.possibleMitm === true) mallory = true;
  }
  // Her victims stand on her side of the picture: she sits between each of them and the KDC.
  if (malloryView) return [...clients, MALLORY, KDC, ...others];
  const [first, ...rest] = clients;
  return [...(first === undefined ? [] : [first]), ...(mallory ? [MALLORY] : []), KDC, ...rest, ...others];
}

/** A lifeline's name on the page: on the KDC's console Mallory is a suspicion, on her own a fact. */
export function laneTitle(lane: string, view = KDC): string {
  if (lane === KDC) return 'KDC';
  if (lane === MALLORY) return view === MALLORY ? 'Mallory' : 'Mallory?';
  if (lane === '?') return view === MALLORY ? 'victim' : 'unknown peer';
  return lane;
}

export interface DiagramInput {
  events: Kept[];
  cursor: number;
  /** '' for every exchange. */
  exchange: string;
  epochOf: (e: Kept) => number;
  onPick: (exchange: string) => void;
  /** Whose view: `kdc` or `mallory`. */
  view: string;
}

/** Draw into `header` (lifeline names) and `body` (the rows); returns the current row's element. */
export function renderDiagram(
  header: HTMLElement,
  body: HTMLElement,
  input: DiagramInput,
  layout: Layout,
): SVGElement | undefined {
  const upTo = input.events.slice(0, input.cursor + 1).filter(drawn);
  const rows = (
    input.exchange === '' ? upTo : upTo.filter((e) => exchangeKey(e, input.epochOf) === input.exchange)
  ).slice(-MAX_ROWS);
  const lanes = lanesOf(rows, input.view);
  const scale = layout.large ? 1.5 : 1;
  const rowH = 46 * scale;
  const margin = 70 * scale;
  const width = Math.max(layout.width, margin * 2 + (lanes.length - 1) * 200 * scale);
  const spacing = lanes.length > 1 ? (width - margin * 2) / (lanes.length - 1) : 0;
  const x = (lane: string): number => {
    const i = lanes.indexOf(lane);
    return margin + (i < 0 ? lanes.indexOf(KDC) : i) * spacing;
  };

  clear(header);
  const head = svg('svg', { width, height: 34 * scale, class: 'lanes' });
  for (const lane of lanes) {
    head.appendChild(
      svg(
        'text',
        {
          x: x(lane),
          y: 22 * scale,
          class: lane === MALLORY ? 'lane-name mallory' : 'lane-name',
          'text-anchor': 'middle',
          'data-lane': lane,
        },
        laneTitle(lane, input.view),
      ),
    );
  }
  header.appendChild(head);

  clear(body);
  const height = Math.max(rows.length * rowH + 20, 60);
  const root = svg('svg', { width, height, class: 'diagram', role: 'img', 'aria-label': 'sequence diagram' });
  root.appendChild(
    svg(
      'defs',
      {},
      svg(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto-start-reverse',
        },
        svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'head' }),
      ),
      svg(
        'marker',
        {
          id: 'cross',
          viewBox: '0 0 10 10',
          refX: 5,
          refY: 5,
          markerWidth: 12,
          markerHeight: 12,
          orient: 'auto',
        },
        svg('path', { d: 'M1,1 L9,9 M9,1 L1,9', class: 'cross' }),
      ),
    ),
  );
  for (const lane of lanes) {
    root.appendChild(
      svg('line', {
        x1: x(lane),
        y1: 0,
        x2: x(lane),
        y2: height,
        class: lane === MALLORY ? 'lifeline mallory' : 'lifeline',
      }),
    );
  }
  let current: SVGElement | undefined;
  rows.forEach((e, i) => {
    const y = i * rowH + 28 * scale;
    const g = svg('g', { class: 'row', 'data-kind': e.kind, 'data-index': e.index });
    // The cursor may stand on an event that draws nothing (a state update): its last row is current.
    if (i === rows.length - 1) {
      g.setAttribute('class', 'row current');
      current = g;
    }
    const key = exchangeKey(e, input.epochOf);
    if (key !== '') {
      const tag = svg('text', { x: 6, y, class: 'exchange-tag', 'data-exchange': key }, exchangeLabel(key));
      tag.addEventListener('click', () => input.onPick(key));
      g.appendChild(tag);
    }
    drawRow(g, e, x, y, scale, input.view);
    root.appendChild(g);
  });
  body.appendChild(root);
  return current;
}

function drawRow(
  g: SVGElement,
  e: Kept,
  x: (lane: string) => number,
  y: number,
  scale: number,
  view: string,
): void {
  const small = 13 * scale;
  switch (e.kind) {
    case 'message': {
      const x1 = x(str(e.from, 64));
      const x2 = x(str(e.to, 64));
      const mid = (x1 + x2) / 2;
      const sealed = e.sealed === true;
      const code = str(e.code, 64);
      const action = str(e.action, 16);
      g.appendChild(
        svg('line', {
          x1,
          y1: y,
          x2,
          y2: y,
          class: `arrow ${sealed ? 'sealed' : 'clear'}${code === '' ? '' : ' error'}`,
          'marker-end': 'url(#arrow)',
          ...(action === '' ? {} : { 'data-action': action }),
        }),
      );
      g.appendChild(
        svg(
          'text',
          { x: mid, y: y - 6 * scale, 'text-anchor': 'middle', class: 'label' },
          svg('tspan', { class: 'name' }, str(e.name, 64)),
          svg('tspan', { class: 'size' }, `  ${num(e.bytes)} B  `),
          svg('tspan', { class: sealed ? 'badge-sealed' : 'badge-clear' }, sealed ? 'AES-GCM' : 'clear'),
          code === '' ? undefined : svg('tspan', { class: 'code' }, `  ${code}`),
          action === '' ? undefined : svg('tspan', { class: 'action' }, `  ${action}`),
        ),
      );
      const step = str(e.step, 120);
      if (step !== '')
        g.appendChild(svg('text', { x: mid, y: y + small, 'text-anchor': 'middle', class: 'step' }, step));
      return;
    }
    case 'refused': {
      const x1 = x(str(e.by, 64));
      const x2 = x(str(e.peer, 64));
      const mid = (x1 + x2) / 2;
      const code = str(e.code, 64);
      const defence = str(e.defence, 64);
      g.appendChild(
        svg('line', { x1, y1: y, x2, y2: y, class: 'arrow refused', 'marker-end': 'url(#cross)' }),
      );
      g.appendChild(
        svg(
          'text',
          { x: mid, y: y - 6 * scale, 'text-anchor': 'middle', class: 'label refused-label' },
          `refused: ${code}${defence === '' ? '' : ` - ${defence}`}`,
        ),
      );
      const explanation = str(e.explanation, 200);
      const line = `${explanation}${e.possibleMitm === true ? ' (possible MITM)' : ''}`;
      if (line !== '')
        g.appendChild(
          svg('text', { x: mid, y: y + small, 'text-anchor': 'middle', class: 'step refused-why' }, line),
        );
      return;
    }
    case 'established': {
      const party = str(e.party, 64);
      const role = str(e.role, 32);
      const x1 = x(party);
      const x2 = x(KDC);
      const insecure = role === 'insecure';
      const text =
        role === 'anonymous'
          ? 'session open: anonymous (enrollment), nobody authenticated'
          : insecure
            ? `session open: "${party}" NOT authenticated (insecure mode): Mallory can sit in the path unseen`
            : `session open: ${party} authenticated (${role}, ${str(e.group, 32)})`;
      g.appendChild(
        svg('rect', {
          x: Math.min(x1, x2),
          y: y - 14 * scale,
          width: Math.max(Math.abs(x2 - x1), 10),
          height: 20 * scale,
          rx: 4,
          class: insecure ? 'note insecure' : 'note',
        }),
      );
      g.appendChild(
        svg(
          'text',
          { x: (x1 + x2) / 2, y: y + 1 * scale, 'text-anchor': 'middle', class: 'note-text' },
          text,
        ),
      );
      return;
    }
    case 'change': {
      const what = str(e.what, 32);
      const revocation = what.endsWith('.revoked') || what === 'key.cascade';
      // On Mallory's view the KDC is the last lifeline: her rows (stolen keys) start from the left.
      const where =
        view === MALLORY ? { x: 44 * scale, 'text-anchor': 'start' } : { x: x(KDC), 'text-anchor': 'middle' };
      g.appendChild(
        svg(
          'text',
          { ...where, y, class: revocation ? 'change revocation' : 'change' },
          `${what}: ${str(e.subject, 140)}  ${str(e.detail, 200)}`,
        ),
      );
      return;
    }
    case 'undrawn': {
      const count = num(e.count);
      g.appendChild(
        svg(
          'text',
          { x: x(KDC), y, 'text-anchor': 'middle', class: 'undrawn', 'data-count': count },
          `... ${count} more exchange${count === 1 ? '' : 's'} not drawn (the console draws ${num(e.perSecond)} a second; refusals always) ...`,
        ),
      );
      return;
    }
    case 'missed': {
      const count = num(e.count);
      g.appendChild(
        svg(
          'text',
          { x: x(KDC), y, 'text-anchor': 'middle', class: 'missed', 'data-count': count },
          `... ${count} event${count === 1 ? '' : 's'} missed (this page fell behind or lost the feed, and the feed no longer held them) ...`,
        ),
      );
      return;
    }
    case 'attack': {
      const outcome = str(e.outcome, 32);
      const defence = str(e.defence, 64);
      const code = str(e.code, 64);
      const stopped = defence === '' ? '' : ` - stopped by ${defence}${code === '' ? '' : ` (${code})`}`;
      g.appendChild(
        svg(
          'text',
          {
            // From the left edge (after the exchange tag): the longest rows, kept whole.
            x: 44 * scale,
            y,
            'text-anchor': 'start',
            class: `attack${e.final === true ? ' final' : ''}`,
            'data-outcome': outcome,
          },
          `${e.final === true ? 'verdict: ' : ''}attack ${str(e.name, 64)}: ${outcome.toUpperCase()}  ${str(e.detail, 200)}${stopped}`,
        ),
      );
      return;
    }
    default:
      return;
  }
}
