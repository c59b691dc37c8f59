// Piscina worker: runs the synchronous scrypt work of switch/domain/password.ts off the event loop.
// The pepper arrives once, as workerData, rather than with every task.
import { workerData } from 'node:worker_threads';
import { hashPassword, verifyPassword } from '../domain/password.js';

/** Most PINs one hashMany task may carry: bounds the message size and how long one task holds a thread. */
export const MAX_PINS_PER_TASK = 256;

export type PasswordTask =
  | { readonly op: 'hash'; readonly pin: string; readonly N: number }
  | { readonly op: 'verify'; readonly pin: string; readonly encoded: string }
  | { readonly op: 'hashMany'; readonly pins: readonly string[]; readonly N: number };

export interface PasswordWorkerData {
  readonly pepper: string;
}

function pepper(): string {
  const data = workerData as Partial<PasswordWorkerData> | null;
  if (typeof data?.pepper !== 'string' || data.pepper === '') {
    throw new Error('password worker started without a pepper in workerData');
  }
  return data.pepper;
}

export default function run(task: PasswordTask): string | boolean | string[] {
  switch (task.op) {
    case 'hash':
      return hashPassword(task.pin, pepper(), { N: task.N });
    case 'verify':
      return verifyPassword(task.pin, task.encoded, pepper());
    case 'hashMany': {
      if (task.pins.length > MAX_PINS_PER_TASK) {
        throw new RangeError(`a hashMany task may carry at most ${MAX_PINS_PER_TASK} PINs, got ${task.pins.length}`);
      }
      const peppered = pepper();
      return task.pins.map((pin) => hashPassword(pin, peppered, { N: task.N }));
    }
    default: {
      const unknown: never = task;
      throw new Error(`unknown password task ${JSON.stringify(unknown)}`);
    }
  }
}
