// After tsc: the Lua scripts are read at run time next to the compiled ledger module.
import { cpSync } from 'node:fs';
cpSync('switch/ledger/lua', 'dist/switch/ledger/lua', { recursive: true });
// The gRPC server serves these through reflection.
cpSync('proto/cardswitch', 'dist/proto/cardswitch', { recursive: true });
console.log('copied switch/ledger/lua and proto/cardswitch into dist/');
