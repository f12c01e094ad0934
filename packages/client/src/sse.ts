/**
 * A Server-Sent Events parser (the `text/event-stream` rules of the WHATWG HTML standard, section
 * "Event stream interpretation"), fed with decoded text in chunks of any size.
 */

export interface ServerSentEvent {
  /** The `event:` field; `message` when the server sent none. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The last `id:` seen on the stream so far (it carries over to later events), if any. */
  id: string | undefined;
}

export class SseParser {
  private buffer = '';
  private sawCarriageReturn = false;
  private atStreamStart = true;
  private eventType = '';
  private dataLines: string[] = [];
  private lastEventId: string | undefined;

  /** Parses `chunk` and returns the events it completed (an event ends at a blank line). */
  push(chunk: string): ServerSentEvent[] {
    let text = chunk;
    if (this.atStreamStart && text.length > 0) {
      this.atStreamStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // A CRLF may be split across chunks: the LF that completes a CR already handled is dropped.
    if (this.sawCarriageReturn && text.startsWith('\n')) text = text.slice(1);
    this.sawCarriageReturn = false;

    const events: ServerSentEvent[] = [];
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const char = this.buffer[i];
      if (char !== '\n' && char !== '\r') continue;
      const line = this.buffer.slice(start, i);
      if (char === '\r') {
        if (i + 1 < this.buffer.length) {
          if (this.buffer[i + 1] === '\n') i++;
        } else {
          this.sawCarriageReturn = true;
        }
      }
      start = i + 1;
      const event = this.processLine(line);
      if (event !== undefined) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /**
   * The stream ended. Per the standard, an event not yet terminated by a blank line is discarded,
   * so nothing is returned for it; the parser is ready for a new stream.
   */
  end(): void {
    this.buffer = '';
    this.sawCarriageReturn = false;
    this.atStreamStart = true;
    this.eventType = '';
    this.dataLines = [];
  }

  private processLine(line: string): ServerSentEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined; // comment, e.g. a keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.dataLines.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      default:
      // `retry` (reconnection delay) and unknown fields are ignored: this client does not reconnect.
    }
    return undefined;
  }

  private dispatch(): ServerSentEvent | undefined {
    const dataLines = this.dataLines;
    const eventType = this.eventType;
    this.dataLines = [];
    this.eventType = '';
    if (dataLines.length === 0) return undefined;
    return {
      event: eventType === '' ? 'message' : eventType,
      data: dataLines.join('\n'),
      id: this.lastEventId,
    };
  }
}

/** Reads a `text/event-stream` body to its end, yielding each event as it completes. */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder('utf-8');
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
    parser.end();
  } finally {
    // Stops the download when the consumer leaves the loop early.
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
