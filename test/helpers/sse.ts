// Splits a Server-Sent Events text into its events (name, id, data), as a browser's EventSource would.
import type { Model } from '../../web/console/model.js';
export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

export function parseSse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split('\n\n')) {
    let event = 'message';
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) out.push({ event, id, data: data.join('\n') });
  }
  return out;
}

/** What the console page (web/console/app.ts) does with each event of its stream. */
export function readInto(model: Model, text: string): void {
  for (const e of parseSse(text)) {
    const data = JSON.parse(e.data) as Record<string, unknown>;
    if (e.event === 'hello') model.hello(String(data.instance), String(data.view));
    else if (e.event === 'state') model.baseline(data);
    else if (e.event === 'message') model.add(data);
  }
}
