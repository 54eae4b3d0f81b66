import winston, { type Logger } from 'winston';

export interface LoggerOptions {
  level?: string;
}

/** JSON lines on stdout, one object per event: what log collectors in a cluster expect. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  return winston.createLogger({
    level: opts.level ?? 'info',
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
