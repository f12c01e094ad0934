/** The variables that choose a port some inferq process listens on. */
export type PortVariable = 'PORT' | 'METRICS_PORT';

/**
 * One line saying why a process could not listen, naming the variable to change: a raw
 * `EADDRINUSE` stack trace tells an operator neither which of a process's ports it was nor what to
 * set (a second worker on one host needs a METRICS_PORT of its own, say).
 */
export function listenFailure(error: unknown, variable: PortVariable, host: string, port: number): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${variable}=${port} is already in use on ${host} (EADDRINUSE): stop what listens there or set ${variable} to a free port`;
    case 'EACCES':
      return `${variable}=${port} may not be used by this user on ${host} (EACCES): set ${variable} to a port above 1023`;
    case 'EADDRNOTAVAIL':
      return `HOST=${host} is not an address of this machine (EADDRNOTAVAIL): set HOST to one of its addresses, or 0.0.0.0`;
    default:
      return `cannot listen on ${where} (${variable}): ${error instanceof Error ? error.message : String(error)}`;
  }
}

/** Writes listenFailure's line to stderr and exits 1, the way a bad configuration value does. */
export function exitOnListenFailure(
  error: unknown,
  variable: PortVariable,
  host: string,
  port: number,
): never {
  process.stderr.write(`inferq: ${listenFailure(error, variable, host, port)}\n`);
  process.exit(1);
}
