// The signed form of one Alipay OpenAPI call (public-key mode, RSA2), built the way alipay-sdk's
// sdkExecute() builds it: the common parameters (method, app_id, charset utf-8, version 1.0, sign_type
// RSA2, timestamp, the call's own common parameters, notify_url) and biz_content (JSON), sorted by name,
// joined as k=v&k=v with the raw values, signed SHA256withRSA with the app's private key, base64.
// Built here instead of through sdkExecute: the SDK re-maps every key (camelCase to snake_case through
// map-obj) and builds the parameter object twice per call, about 100 µs of CPU and garbage per call on
// top of the signature itself (loadtest/RESULTS.md, "Seventh session"). test/channel-wire.test.ts holds
// this to sdkExecute's output byte for byte, the signature included.
// The RSA signature (about 0.7 ms of CPU on the bench machine) runs on libuv's thread pool (crypto.sign
// with a callback), not on the switch's event loop, where it took 7 % of the main thread's time with
// 100 Alipay payments/s beside the taps (loadtest/RESULTS.md, "Eighth session").
import { sign, type KeyObject } from 'node:crypto';

export interface SignedCall {
  /** The common parameters and the signature, URI-encoded, for the gateway URL's query. */
  readonly query: string;
  /** `biz_content=<JSON>` URI-encoded (the form body), or '' for a call without biz_content. */
  readonly body: string;
}

const NAME_PATTERN = /^[a-z][a-z0-9_]*$/;

/** SHA256withRSA over `text` (UTF-8), base64, computed off the event loop. */
export function signOffLoop(text: string, privateKey: KeyObject): Promise<string> {
  return new Promise((resolve, reject) => {
    sign('sha256', Buffer.from(text, 'utf8'), privateKey, (error, signature) =>
      error === null ? resolve(signature.toString('base64')) : reject(error),
    );
  });
}

/** Rejects with a RangeError, before any signing, for a common parameter that is not one. */
export async function signOpenApiCall(
  appId: string,
  privateKey: KeyObject,
  method: string,
  common: Readonly<Record<string, string>>,
  bizContent: Readonly<Record<string, string>> | undefined,
): Promise<SignedCall> {
  const params: Record<string, string> = { method, app_id: appId, charset: 'utf-8', version: '1.0', sign_type: 'RSA2' };
  for (const [name, value] of Object.entries(common)) {
    if (!NAME_PATTERN.test(name) || name === 'sign' || name === 'biz_content') throw new RangeError(`not a common parameter: ${name}`);
    params[name] = value;
  }
  const json = bizContent === undefined ? undefined : JSON.stringify(bizContent);
  if (json !== undefined) params['biz_content'] = json;
  const names = Object.keys(params).sort();
  let text = '';
  for (const name of names) text += `${text === '' ? '' : '&'}${name}=${params[name]}`;
  const signature = await signOffLoop(text, privateKey);
  let query = '';
  for (const [name, value] of Object.entries(params)) {
    if (name !== 'biz_content') query += `${name}=${encodeURIComponent(value)}&`;
  }
  query += `sign=${encodeURIComponent(signature)}`;
  return { query, body: json === undefined ? '' : `biz_content=${encodeURIComponent(json)}` };
}
