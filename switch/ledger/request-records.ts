// Reading a terminal request's record (`<prefix>:{L:s}:req:<terminal>:<seq>`) from TypeScript. A card
// payment's record is one string of six newline-joined values, written with its expiry in one command
// by authorize.lua (issue 15: about 23k fewer Redis instructions per payment than a hash and an EXPIRE); every
// other record is a hash, and a payment's becomes one when a reversal or a refund writes to it. The
// scripts read both forms with `requestFields` (lua/includes/answer.lua); this is the same for the
// switch's few plain reads.
import type { RedisClient } from './scripts.js';

/** The compact record's values, in their order (as answer.lua's requestFields reads them). */
export const COMPACT_REQUEST_FIELDS = ['pfp', 'pst', 'amt', 'mp', 'card', 'pans'] as const;

/** The fields of a compact record, or undefined when the text is not one. */
export function parseCompactRequest(text: string): Record<string, string> | undefined {
  const fields: Record<string, string> = {};
  let from = 0;
  for (let i = 0; i < COMPACT_REQUEST_FIELDS.length - 1; i++) {
    const cut = text.indexOf('\n', from);
    if (cut < 0) return undefined;
    fields[COMPACT_REQUEST_FIELDS[i]!] = text.slice(from, cut);
    from = cut + 1;
  }
  fields[COMPACT_REQUEST_FIELDS[COMPACT_REQUEST_FIELDS.length - 1]!] = text.slice(from);
  return fields;
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

/**
 * HMGET of a request record in either form: one value per field, null where the record has none (a
 * compact record has only its six). A record that changes form between the two reads (a reversal
 * turned it into a hash) is read again.
 */
export async function readRequestFields(client: RedisClient, key: string, fields: readonly string[]): Promise<(string | null)[]> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await client.hmget(key, ...fields);
    } catch (error) {
      if (!isWrongType(error)) throw error;
    }
    let text: string | null;
    try {
      text = await client.get(key);
    } catch (error) {
      if (isWrongType(error)) continue;
      throw error;
    }
    if (text === null) return fields.map(() => null);
    const record = parseCompactRequest(text);
    if (record === undefined) throw new Error(`request record ${key} is neither a hash nor a compact record`);
    return fields.map((field) => record[field] ?? null);
  }
  throw new Error(`request record ${key} kept changing form while it was read`);
}
