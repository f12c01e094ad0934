/**
 * Remembers the last lines a child process wrote, so that a failure can be reported with the
 * child's own words instead of a bare exit code.
 */
export class OutputTail {
  private readonly lines: string[] = [];

  constructor(private readonly capacity = 40) {}

  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.capacity) this.lines.shift();
  }

  text(): string {
    return this.lines.join('\n');
  }
}

/**
 * Splits a byte stream into lines; a chunk may end in the middle of a line, and that fragment is
 * held back until its end arrives (or the stream ends).
 */
export class LineSplitter {
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  write(chunk: string): void {
    const parts = (this.pending + chunk).split('\n');
    this.pending = parts.pop() ?? '';
    for (const part of parts) this.onLine(part.endsWith('\r') ? part.slice(0, -1) : part);
  }

  end(): void {
    if (this.pending !== '') this.onLine(this.pending);
    this.pending = '';
  }
}
