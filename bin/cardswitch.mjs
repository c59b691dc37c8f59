#!/usr/bin/env node
// `npx cardswitch <command>`: runs the TypeScript CLI (switch/cli/main.ts) through tsx's loader, so
// operators need no build step. The password worker threads load tsx themselves (see password-pool.ts).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../switch/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
