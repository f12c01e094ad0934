import { DestinationGuard, type DestinationPolicy, hostOf } from './destination.ts';

export interface CallbackCheckSettings extends DestinationPolicy {
  /** Unset: this deployment cannot sign webhooks, so it refuses to promise one. */
  secret: Uint8Array | undefined;
}

/**
 * The API's check of a `callback.url` at submit time: no DNS and no I/O, so it costs the submit path
 * nothing; what needs resolution is checked again at every delivery attempt.
 */
export class CallbackUrlCheck {
  private readonly guard: DestinationGuard;
  private readonly enabled: boolean;

  constructor(settings: CallbackCheckSettings) {
    this.guard = new DestinationGuard(settings);
    this.enabled = settings.secret !== undefined;
  }

  /** Why the URL is refused (a sentence fragment to follow "callback.url "), or undefined. */
  refusalOf(url: string): string | undefined {
    if (!this.enabled) return 'cannot be used: this server has no WEBHOOK_SECRET to sign webhooks with';
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return 'must be an absolute http:// or https:// URL';
    }
    const refusal = this.guard.refusalOfUrl(parsed);
    if (refusal !== undefined) return refusal;
    // The one name known to be loopback without asking DNS (RFC 6761); delivery checks the rest.
    const host = hostOf(parsed);
    if ((host === 'localhost' || host.endsWith('.localhost')) && !this.guard.isAllowListed(host)) {
      return `${host} is a loopback name`;
    }
    return undefined;
  }
}
