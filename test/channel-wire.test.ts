// What the channel adapters do by hand for speed, held to the libraries they replace. WeChat Pay's v2 XML
// read by hand (switch/channels/wechat/wire.ts, fromXml's fast path) gives exactly what fast-xml-parser
// gives (fromXmlWithParser) on every body: what toXml writes, what WeChat Pay's answers look like (a field
// per line), and bodies that are not flat v2 XML (nested, repeated, entities, comments, attributes, CR LF,
// trailing text). Alipay requests signed by switch/channels/alipay/sign.ts carry the same parameters and
// the same signature as alipay-sdk's sdkExecute(). Pure functions: no Redis, no server.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { AlipaySdk } from 'alipay-sdk';
import { describe, expect, it } from 'vitest';
import { signOpenApiCall } from '../switch/channels/alipay/sign.js';
import { fromXml, fromXmlWithParser, signV2, toXml, verifyV2 } from '../switch/channels/wechat/wire.js';

/** A small deterministic generator (the same bodies every run; a failure names its seed). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const PIECES = [
  'a',
  'Z',
  '0',
  ' ',
  '\n',
  '\t',
  '<',
  '>',
  '&',
  ']]>',
  ']]',
  '<![CDATA[',
  '校园',
  '"',
  "'",
  '=',
  '/',
  '&amp;',
  '</x>',
  '<b>',
];

function value(next: () => number): string {
  const length = Math.floor(next() * 8);
  let text = '';
  for (let i = 0; i < length; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

describe('WeChat Pay v2 XML: the fast reader and the parser agree', () => {
  it('on 2,000 bodies written by toXml, with and without a newline between fields', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const next = random(seed);
      const fields: Record<string, string> = {};
      const count = 1 + Math.floor(next() * 12);
      for (let i = 0; i < count; i++) fields[`f_${Math.floor(next() * 20)}`] = value(next);
      let body = toXml(fields);
      if (seed % 2 === 0) body = body.replace(/(<\/\w+>)/g, '$1\n');
      const fast = fromXml(body);
      expect(fast, `seed ${seed}: ${JSON.stringify(body)}`).toEqual(fromXmlWithParser(body));
      // toXml leaves empty fields out; everything else comes back as it was written.
      const written = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== ''));
      if (seed % 2 === 1) expect(fast, `seed ${seed}`).toEqual(written);
    }
  });

  it('on hand-written bodies that are and are not flat v2 XML', () => {
    const bodies = [
      '<xml><return_code><![CDATA[SUCCESS]]></return_code>\n<return_msg><![CDATA[OK]]></return_msg>\n</xml>',
      '<?xml version="1.0" encoding="UTF-8"?>\n<xml><a>1</a></xml>\n',
      '  <xml>\n  <a><![CDATA[x]]></a>\n</xml>  ',
      '<xml><a> 1 </a><b>  </b><c> <![CDATA[x]]> </c></xml>',
      '<xml><a><![CDATA[x]]>y<![CDATA[z]]></a></xml>',
      '<xml><a></a><b/></xml>',
      '<xml><a>&amp;&lt;&gt;</a></xml>',
      '<xml><a>it&#39;s</a></xml>',
      '<xml><a>a\r\nb</a></xml>',
      '<xml><!-- c --><a>1</a></xml>',
      '<xml><a x="1">1</a></xml>',
      '<xml><a>1</a>text</xml>',
      '<xml><a>1</a><a>2</a></xml>',
      '<xml><a><b>1</b></a></xml>',
      '<xml><a>1</b></xml>',
      '<xml><a>1</a>',
      '<xml><a><![CDATA[1</a></xml>',
      '<xml><a>1</a></xml>trailing',
      '<xml><a>1</a></xml><xml><b>2</b></xml>',
      '<xml></xml>',
      '<xml/>',
      '<xml><__proto__>1</__proto__></xml>',
      `<xml>${'<f>1</f>'.repeat(2)}</xml>`,
      `<xml>${Array.from({ length: 129 }, (_, i) => `<f${i}>1</f${i}>`).join('')}</xml>`,
      'not xml',
      '',
    ];
    for (const body of bodies) expect(fromXml(body), JSON.stringify(body)).toEqual(fromXmlWithParser(body));
    expect(fromXml('<xml><a>1</a>\n<b>2</b>\n</xml>')).toEqual({ a: '1', b: '2' });
    expect(fromXml('<xml><a>1</a>text</xml>')).toBeUndefined();
  });

  it('an answer with a field per line verifies (the layout is not a field)', () => {
    const fields = { return_code: 'SUCCESS', mch_id: '1900000109', nonce_str: 'n0nce', result_code: 'SUCCESS' };
    const signed = { ...fields, sign: signV2(fields, 'k'.repeat(32), 'HMAC-SHA256') };
    const body = toXml(signed).replace(/(<\/\w+>)/g, '$1\n');
    const read = fromXml(body);
    expect(read).toEqual(signed);
    expect(verifyV2(read!, 'k'.repeat(32), 'HMAC-SHA256')).toBe(true);
  });
});

describe('Alipay OpenAPI requests: sign.ts signs as alipay-sdk does', () => {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const appId = '2021000000000001';
  const sdk = new AlipaySdk({
    appId,
    privateKey,
    keyType: 'PKCS8',
    signType: 'RSA2',
    gateway: 'http://127.0.0.1/gateway.do',
    camelcase: false,
  });
  const cases: { method: string; common: Record<string, string>; biz: Record<string, string> | undefined }[] = [
    {
      method: 'alipay.trade.pay',
      common: { timestamp: '2026-11-30 12:00:00' },
      biz: {
        out_trade_no: 'CPabc-1',
        scene: 'bar_code',
        auth_code: '281234567890123456',
        subject: '校园消费 一食堂 & =?',
        total_amount: '12.34',
      },
    },
    { method: 'alipay.trade.refund', common: { timestamp: '2026-11-30 12:00:01' }, biz: { out_trade_no: 'CPabc-1', refund_reason: '' } },
    {
      method: 'alipay.trade.precreate',
      common: { timestamp: '2026-11-30 12:00:02', notify_url: 'https://pay.example.edu/api/v1/channels/alipay/notify?x=1&y=%2F' },
      biz: { out_trade_no: 'RC-1', total_amount: '999.00', subject: '"校园卡充值"\n' },
    },
    {
      method: 'alipay.system.oauth.token',
      common: { grant_type: 'authorization_code', code: 'abc_DEF-123', timestamp: '2026-11-30 12:00:03' },
      biz: undefined,
    },
  ];

  it.each(cases)('$method: the same parameters and signature as sdkExecute', async ({ method, common, biz }) => {
    const fromSdk = new URLSearchParams(
      sdk.sdkExecute(method, { ...common, ...(biz === undefined ? {} : { bizContent: biz }) }, { bizContentAutoSnakeCase: false }),
    );
    const ours = await signOpenApiCall(appId, createPrivateKey(privateKey), method, common, biz);
    const mine = new URLSearchParams(`${ours.query}${ours.body === '' ? '' : `&${ours.body}`}`);
    expect([...mine.entries()].sort()).toEqual([...fromSdk.entries()].sort());
    expect(ours.body.startsWith('biz_content=') || ours.body === '').toBe(true);
  });

  it('refuses a parameter name that could change what is signed', async () => {
    await expect(signOpenApiCall(appId, createPrivateKey(privateKey), 'm', { sign: 'x' }, undefined)).rejects.toThrow(RangeError);
    await expect(signOpenApiCall(appId, createPrivateKey(privateKey), 'm', { 'a&b': 'x' }, undefined)).rejects.toThrow(RangeError);
  });
});
