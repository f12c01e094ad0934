import type { Config } from '@inferq/config';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export type ServiceName = 'api' | 'worker' | 'cli';

/**
 * JSON logs on stdout (or `destination`), one line per event, every line tagged with the service.
 * Credentials never reach a log line even when a request object is logged whole.
 */
export function createLogger(
  config: Pick<Config, 'logLevel'>,
  service: ServiceName,
  destination?: DestinationStream,
): Logger {
  const options = {
    level: config.logLevel,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'apiKey'],
      censor: '[redacted]',
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
