// An open-model POS load on one gRPC channel, run in a worker thread so the callers' clocks and
// deadlines do not share the switch's event loop (in one loop a busy switch delays the client's
// reading of an answer that was sent in time). Plain JavaScript: it loads the .proto files itself.
// workerData: { address, terminalId, terminalSecret, serials, amountFen, callsPerSecond, durationMs,
// deadlineMs, protoRoot }. Posts { type: 'started', atMs }, then { type: 'done', attempts, states,
// loopDelayMaxMs } (how late this thread's own timers and reads ran at worst).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { credentials, loadPackageDefinition, Metadata, connectivityState } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const w = workerData;
const definition = loadSync('cardswitch/v1/pos.proto', { includeDirs: [w.protoRoot], longs: Number, enums: String, defaults: true });
const PosService = loadPackageDefinition(definition).cardswitch.v1.PosService;
const client = new PosService(w.address, credentials.createInsecure());
const metadata = new Metadata();
metadata.set('terminal-id', w.terminalId);
metadata.set('terminal-secret', w.terminalSecret);

await new Promise((resolve, reject) => client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())));
// The connection is up; any change of its state from now on means it was torn down.
const channel = client.getChannel();
const states = [];
let watching = true;
const watch = () => {
  channel.watchConnectivityState(channel.getConnectivityState(false), Infinity, () => {
    if (!watching) return;
    states.push(connectivityState[channel.getConnectivityState(false)]);
    watch();
  });
};
watch();

const attempts = [];
const pending = [];
const total = Math.floor((w.durationMs * w.callsPerSecond) / 1000);
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const startedMs = Date.now();
parentPort.postMessage({ type: 'started', atMs: startedMs });
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((Date.now() - startedMs) * w.callsPerSecond) / 1000));
    while (attempts.length < due) {
      const sequence = attempts.length + 1;
      const card = sequence % w.serials.length;
      const nowMs = Date.now();
      const attempt = {
        sequence,
        card,
        startedMs: nowMs,
        deadlineMs: nowMs + w.deadlineMs,
        endedMs: 0,
        code: -1,
        details: '',
        outcome: '',
      };
      attempts.push(attempt);
      const request = {
        terminalId: w.terminalId,
        sequenceNumber: sequence,
        amountFen: w.amountFen,
        credential: { card: { cardSerial: w.serials[card] } },
        pin: '',
      };
      pending.push(
        new Promise((done) => {
          client.authorize(request, metadata, { deadline: attempt.deadlineMs }, (err, response) => {
            attempt.endedMs = Date.now();
            attempt.code = err ? err.code : 0;
            attempt.details = err ? err.details : '';
            attempt.outcome = err ? '' : response.outcome;
            done();
          });
        }),
      );
    }
    if (attempts.length >= total) {
      clearInterval(tick);
      resolve();
    }
  }, 5);
});
await Promise.all(pending);
watching = false;
states.push(`final ${connectivityState[channel.getConnectivityState(false)]}`);
client.close();
loopDelay.disable();
parentPort.postMessage({ type: 'done', attempts, states, loopDelayMaxMs: Math.round(loopDelay.max / 1e6) });
