import { describe, expect, it } from 'vitest';
import { describeExit, ManagedChild } from './managed-child.ts';

function nodeChild(script: string, lines: string[]): ManagedChild {
  return new ManagedChild({
    name: 'test-child',
    command: process.execPath,
    args: ['-e', script],
    cwd: process.cwd(),
    env: process.env,
    forward: (line, stream) => lines.push(`${stream}: ${line}`),
  });
}

describe('ManagedChild', () => {
  it('forwards whole lines from both streams and keeps them for failure reports', async () => {
    const lines: string[] = [];
    const child = nodeChild(
      'process.stdout.write("one\\ntw"); setTimeout(() => { process.stdout.write("o\\n"); console.error("bad"); process.exit(3); }, 20);',
      lines,
    );
    const exit = await child.exited;
    expect(exit).toEqual({ code: 3, signal: null });
    expect(describeExit(exit)).toBe('exited with code 3');
    expect(lines).toEqual(['stdout: one', 'stdout: two', 'stderr: bad']);
    expect(child.running).toBe(false);
    expect(child.lastOutput().split('\n').sort()).toEqual(['bad', 'one', 'two']);
  });

  it('kills a child that ignores the stop signal once the grace period is over', async () => {
    const lines: string[] = [];
    const child = nodeChild(
      'process.on("SIGTERM", () => console.log("ignoring SIGTERM")); console.log("up"); setInterval(() => {}, 1000);',
      lines,
    );
    while (!lines.includes('stdout: up')) await new Promise((resolve) => setTimeout(resolve, 10));
    const exit = await child.stop('SIGTERM', 300);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(describeExit(exit)).toBe('was killed by SIGKILL');
    expect(lines).toEqual(['stdout: up', 'stdout: ignoring SIGTERM']);
  });

  it('reports a command that cannot be started', async () => {
    const child = new ManagedChild({
      name: 'ghost',
      command: 'inferq-no-such-command',
      args: [],
      cwd: process.cwd(),
      env: process.env,
      forward: () => {},
    });
    const exit = await child.exited;
    expect(describeExit(exit)).toBe('could not be started');
    expect(child.lastOutput()).toContain('ghost: spawn inferq-no-such-command ENOENT');
  });
});
