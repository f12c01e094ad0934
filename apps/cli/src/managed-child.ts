import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { LineSplitter, OutputTail } from './output-tail.ts';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedChildOptions {
  /** Shown in messages about this child ("api", "worker", "redis-server"). */
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Where each output line goes; by default stdout lines to our stdout, stderr lines to our stderr. */
  forward?: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * An IPC channel to the child. The kernel closes it however we end, even by SIGKILL, so the child
   * can notice our death ('disconnect') and stop: the API, the worker and the redis guard do.
   */
  ipc?: boolean;
}

/**
 * A child process of the all-in-one: its output is forwarded line by line (so two children never
 * interleave inside a line) and its last lines are kept for failure reports.
 */
export class ManagedChild {
  readonly name: string;
  readonly exited: Promise<ChildExit>;
  private readonly process: ChildProcess;
  private readonly tail = new OutputTail();
  private exitInfo: ChildExit | undefined;

  constructor(options: ManagedChildOptions) {
    this.name = options.name;
    const spawnOptions: SpawnOptions = {
      cwd: options.cwd,
      env: options.env,
      stdio: options.ipc === true ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
      // Own process group: a Ctrl-C in the terminal reaches only the supervisor, which then stops
      // the children in order (API and worker drain first, Redis last).
      detached: true,
    };
    this.process = spawn(options.command, options.args, spawnOptions);
    const forward =
      options.forward ??
      ((line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(`${line}\n`));
    for (const stream of ['stdout', 'stderr'] as const) {
      const splitter = new LineSplitter((line) => {
        this.tail.push(line);
        forward(line, stream);
      });
      const source = this.process[stream];
      source?.setEncoding('utf8');
      source?.on('data', (chunk: string) => splitter.write(chunk));
      source?.on('end', () => splitter.end());
    }
    this.exited = new Promise<ChildExit>((resolve) => {
      this.process.once('error', (error) => {
        this.tail.push(`${this.name}: ${error.message}`);
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
      // 'close' (not 'exit') so the last output lines have been read when we report them.
      this.process.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  lastOutput(): string {
    return this.tail.text();
  }

  /**
   * Signals the child's process group (its own, see `detached`): the child and whatever it started,
   * so that a SIGKILL of the redis guard takes redis-server with it.
   */
  signal(signal: NodeJS.Signals): void {
    if (!this.running || this.process.pid === undefined) return;
    try {
      process.kill(-this.process.pid, signal);
    } catch {
      this.process.kill(signal);
    }
  }

  /** A message on the IPC channel (`ipc: true`); dropped when the child is gone. */
  send(message: unknown): void {
    if (this.running && this.process.connected) this.process.send(message as object, () => {});
  }

  /** True when the child has exited within `ms`. */
  async waitForExit(ms: number): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    });
    const exited = await Promise.race([this.exited.then(() => true as const), late]);
    clearTimeout(timer);
    return exited;
  }

  /** Sends `signal`, waits up to `graceMs` for the exit, then kills. */
  async stop(signal: NodeJS.Signals, graceMs: number): Promise<ChildExit> {
    this.signal(signal);
    if (!(await this.waitForExit(graceMs))) {
      process.stderr.write(`inferq: ${this.name} did not stop within ${graceMs} ms; killing it\n`);
      this.signal('SIGKILL');
    }
    return this.exited;
  }
}

export function describeExit(exit: ChildExit): string {
  if (exit.signal !== null) return `was killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}
