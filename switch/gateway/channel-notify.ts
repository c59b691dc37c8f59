// Payment notifications from the channels (POST /api/v1/channels/:channel/notify, the notify_url the
// adapters give each order: channels/index.ts notifyPath). Not holder-authenticated: the channel's
// signature over the body is the authentication, so the body is taken exactly as received (a `raw`
// route: never parsed as JSON, any content type, at most 64 KiB) with the headers WeChat Pay signs.
// The adapter verifies it; domain/recharge-orders.ts settles it; the answer is the body the channel's
// API expects (Alipay "success" / "fail", WeChat Pay a JSON code with HTTP 200 / 500).
import type { SwitchContext } from '../context.js';
import { NotFoundError } from '../errors.js';
import { handleChannelNotification } from '../domain/recharge-orders.js';
import type { GatewayRequest, GatewayResponse, Route } from './http.js';

/** Both channels' notifications are a few KiB; 64 KiB is the adapters' own limit. */
export const MAX_NOTIFICATION_BYTES = 64 * 1024;
/** WeChat Pay APIv3 signs with these (Alipay signs inside the form body). */
const SIGNED_HEADERS = ['wechatpay-timestamp', 'wechatpay-nonce', 'wechatpay-signature', 'wechatpay-serial', 'wechatpay-signature-type'];

async function notify(ctx: SwitchContext, req: GatewayRequest): Promise<GatewayResponse> {
  const channel = req.params['channel'] ?? '';
  const reply = await handleChannelNotification(ctx, channel, { headers: req.headers, body: req.rawBody?.toString('utf8') ?? '' });
  if (reply === undefined) throw new NotFoundError(`no payment channel ${JSON.stringify(channel.slice(0, 20))} takes notifications here`);
  return { status: reply.httpStatus, body: reply.body, contentType: reply.contentType };
}

export function channelNotifyRoutes(ctx: SwitchContext): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/channels/:channel/notify',
      handler: (req) => notify(ctx, req),
      raw: { headers: SIGNED_HEADERS, maxBodyBytes: MAX_NOTIFICATION_BYTES },
    },
  ];
}
