// A labelled Prometheus counter counted in plain numbers: the KDC adds to a cell found by its label
// values (one Map lookup), and prom-client is given the totals when /metrics is scraped. prom-client's
// own inc() builds a label object, validates it and hashes it into a string on every call; the metrics
// reader makes five to six such calls per KDC-generated key (docs/performance.md "events").
import type { Counter, Registry } from 'prom-client';

interface Cell {
  labels: Record<string, string>;
  value: number;
}

export class CounterTally {
  readonly #labelNames: readonly string[];
  readonly #cells = new Map<string, Cell>();

  /** `counter`: prom-client's Counter class (metrics.ts loads prom-client when the KDC listens). */
  constructor(
    counter: typeof Counter,
    opts: { name: string; help: string; labelNames: readonly string[]; registry: Registry },
  ) {
    this.#labelNames = opts.labelNames;
    const cells = this.#cells;
    new counter({
      name: opts.name,
      help: opts.help,
      labelNames: opts.labelNames,
      registers: [opts.registry],
      // Each scrape sets the series to the totals (never adds them twice).
      collect() {
        this.reset();
        for (const cell of cells.values()) this.inc(cell.labels, cell.value);
      },
    });
  }

  /** Add `by` to the series of these label values (in labelNames order). */
  add(by: number, ...values: [string] | [string, string] | [string, string, string]): void {
    // A newline is in no label value the KDC uses (bounded sets it chose, metrics.ts).
    const key = values.length === 1 ? values[0] : values.join('\n');
    const cell = this.#cells.get(key);
    if (cell !== undefined) cell.value += by;
    else {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((name, i) => (labels[name] = values[i] ?? ''));
      this.#cells.set(key, { labels, value: by });
    }
  }
}
