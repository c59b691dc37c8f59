// The kiosk's main process reads the switch's gRPC failures into the screens' error codes
// (kiosk/main/switch-client.ts mapSwitchError). Here the failures are the switch's own, made by its own
// mapping (switch/grpc/errors.ts), so a change of wording on either side fails this test.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { expect, it } from 'vitest';
import { mapSwitchError } from '../kiosk/main/switch-client.js';
import { mapError } from '../switch/grpc/errors.js';
import { archiveReadError } from '../switch/history/archive-store.js';

/** What the kiosk's gRPC client receives for a failure the switch maps with mapError. */
function received(failure: unknown): ServiceError {
  const mapped = mapError(failure);
  return Object.assign(new Error(mapped.details), { code: mapped.code, details: mapped.details, metadata: new Metadata() });
}

it('the history archive down: "older lines cannot be read now", not "the card system cannot be reached"', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const err = received(archiveReadError(refused));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(err.details).not.toContain('5432');
  expect(mapSwitchError(err)).toEqual({ error: 'history_unavailable' });
});

it('the ledger down stays "the card system cannot be reached"', () => {
  const err = received(new Error('Connection is closed.'));
  expect(err.code).toBe(status.UNAVAILABLE);
  expect(mapSwitchError(err)).toEqual({ error: 'unreachable' });
});
