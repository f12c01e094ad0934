/**
 * The soak's memory reading: a process's RSS right after a full, memory-reducing collection, asked
 * of the process through its inspector (`--inspect=127.0.0.1:0`, which prints the session's URL).
 * Node 20 has a WebSocket client behind `--experimental-websocket` (scripts/soak.mjs passes it).
 */
import { type AppProcess, residentBytes, sleep } from '../test/faults/harness.ts';

/** Two collections: the first can leave pages that only the second's memory reducer gives back. */
const COLLECTIONS = 2;
/** After the collections, the smallest of a few readings this far apart (the OS unmaps lazily). */
const SETTLE_READINGS = 5;
const SETTLE_INTERVAL_MS = 200;

interface MinimalWebSocket {
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(): void;
}
type WebSocketConstructor = new (url: string) => MinimalWebSocket;

/** The inspector's WebSocket URL, from the "Debugger listening on ws://…" line the process printed. */
export function inspectorUrlOf(app: AppProcess): string {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(app.output())?.[1];
  if (url === undefined) throw new Error(`${app.name} printed no inspector URL:\n${app.output()}`);
  return url;
}

async function collectGarbage(url: string): Promise<void> {
  const WebSocketClass = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (WebSocketClass === undefined) throw new Error('no WebSocket client: run with --experimental-websocket');
  const socket = new WebSocketClass(url);
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 1;
      const ask = (): void =>
        socket.send(JSON.stringify({ id: next, method: 'HeapProfiler.collectGarbage' }));
      socket.onerror = (event) => reject(new Error(`inspector ${url}: ${String(event)}`));
      socket.onopen = ask;
      socket.onmessage = (event) => {
        const reply = JSON.parse(String(event.data)) as { id?: number; error?: { message: string } };
        if (reply.id !== next) return;
        if (reply.error !== undefined) reject(new Error(`inspector ${url}: ${reply.error.message}`));
        else if (next === COLLECTIONS) resolve();
        else {
          next++;
          ask();
        }
      };
    });
  } finally {
    socket.close();
  }
}

/** RSS of `pid` right after full collections (see the top); `metricsUrl` where /proc is absent. */
export async function residentBytesAfterCollection(
  pid: number,
  metricsUrl: string,
  inspectorUrl: string,
): Promise<number> {
  await collectGarbage(inspectorUrl);
  let lowest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < SETTLE_READINGS; i++) {
    await sleep(SETTLE_INTERVAL_MS);
    lowest = Math.min(lowest, await residentBytes(pid, metricsUrl));
  }
  return lowest;
}
