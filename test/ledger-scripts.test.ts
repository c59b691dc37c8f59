// The Lua scripts and their TypeScript side agree: the names the switch may call are exactly the
// scripts on disk (a misspelt name does not type-check).
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SCRIPT_NAMES, Scripts } from '../switch/ledger/scripts.js';
import { connect } from './helpers/redis.js';

const LUA_DIR = fileURLToPath(new URL('../switch/ledger/lua/', import.meta.url));

describe('script names', () => {
  const redis = connect();
  afterAll(() => redis.quit());

  it('SCRIPT_NAMES is exactly the *.lua files of switch/ledger/lua, both ways', () => {
    const onDisk = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -'.lua'.length)).sort();
    expect([...SCRIPT_NAMES].sort()).toEqual(onDisk);
  });

  it('a misspelt script name does not type-check, and would not run', async () => {
    const scripts = await Scripts.load(redis);
    // @ts-expect-error 'authorise' is not a ScriptName: if this line ever type-checks, tsc fails on the unused directive.
    await expect(scripts.run('authorise', [], [])).rejects.toThrow(/authorise\.lua was not loaded/);
    // @ts-expect-error the same for shaOf
    expect(() => scripts.shaOf('reverse.lua')).toThrow(/not loaded/);
    expect(scripts.shaOf('authorize')).toMatch(/^[0-9a-f]{40}$/);
  });
});
