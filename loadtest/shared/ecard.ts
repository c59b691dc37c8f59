// The cardholder's side of the gateway as the load tests call it (k6/campus-qr.ts, k6/gateway-summary.ts):
// the routes, the bearer header, and readers of the answers a test checks. The routes are documented in
// switch/gateway/openapi.ts and docs/gateway-api.md.
//
// Pure TypeScript: no k6 and no Node imports, and no imports of other files (k6 and tsc spell local
// paths differently), so both read it.

export const SESSION_REFRESH_PATH = '/api/v1/session/refresh';
export const ECARD_SUMMARY_PATH = '/api/v1/ecard';
export const ECARD_QR_PATH = '/api/v1/ecard/qr';
export const EVENTS_PATH = '/api/v1/events';
export const EVENTS_PROTOCOL = 'cardswitch.events.v1';

/** A campus QR code's text (switch/qr/format.ts CAMPUS_QR_PATTERN: "CQ" and 77 base32 characters). */
export const CAMPUS_QR_TEXT = /^CQ[A-Z2-7]{77}$/;

export function bearer(accessToken: string): Record<string, string> {
  return { authorization: `Bearer ${accessToken}` };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The code of a GET /api/v1/ecard/qr answer ({code, issuedAtMs, expiresAtMs, refreshAtMs}), or undefined. */
export function campusQrCodeOf(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const code = body['code'];
  return typeof code === 'string' && CAMPUS_QR_TEXT.test(code) ? code : undefined;
}

/** The access token of a POST /api/v1/session/refresh answer ({accessToken, refreshToken, ...}), or undefined. */
export function accessTokenOf(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const token = body['accessToken'];
  return typeof token === 'string' && token !== '' ? token : undefined;
}

/** Whether a GET /api/v1/ecard answer is the summary of `cardNo` with a balance. */
export function isSummaryOf(body: unknown, cardNo: string): boolean {
  return isRecord(body) && body['cardNumber'] === cardNo && typeof body['balanceFen'] === 'number';
}

/** The machine reason of the gateway's error format ({error: {code, message, ...}}: TOKEN_EXPIRED ...), or ''. */
export function refusalCodeOf(body: unknown): string {
  if (!isRecord(body)) return '';
  const error = body['error'];
  return isRecord(error) && typeof error['code'] === 'string' ? error['code'] : '';
}
