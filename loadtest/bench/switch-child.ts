// The switch under test in its own process (the bench's default), so the load generator's threads and
// the harness never share the switch's event loop or heap. Configured by environment variables exactly
// as `npm start` is (switch/config.ts); reports its port to the parent over IPC.
import { startSwitch } from '../../switch/app.js';
import { loadConfig } from '../../switch/config.js';
import { createLogger } from '../../switch/log.js';
import type { ChildToParent, ParentToChild } from './processes.js';

const config = loadConfig(process.env);
const log = createLogger(config.logLevel, 'bench-switch');
const app = await startSwitch(config, log);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  app.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'switch stop failed');
      process.exit(1);
    },
  );
}

process.on('message', (message: ParentToChild) => {
  if (message.type === 'stop') stop();
});
// The harness died or was killed: do not outlive it.
process.on('disconnect', stop);
const ready: ChildToParent = { type: 'listening', port: app.grpcPort };
process.send?.(ready);
