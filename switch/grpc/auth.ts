// Terminal authentication as a server interceptor: every PosService / KioskService call carries
// metadata `terminal-id` and `terminal-secret`. Unknown terminal or wrong secret: UNAUTHENTICATED;
// disabled terminal or a terminal of the wrong kind for the service: PERMISSION_DENIED. The handler
// never runs for a refused call, so nothing changes (gate.ts holds the call until the check has
// passed). PosService/AuthorizeStream carries many terminals, so it needs no call metadata: each of its
// messages is checked by authenticateTerminal.
import {
  Metadata,
  status as Status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Terminal, TerminalKind, TerminalRegistry } from '../domain/terminals.js';
import { TERMINAL_ID_PATTERN, MAX_SECRET_LENGTH } from '../domain/terminals.js';
import { mapError } from './errors.js';
import { gateCall, passedOn } from './gate.js';

/** Which terminal kinds may call which service; services not listed need no terminal. */
const SERVICE_KINDS: Readonly<Record<string, readonly TerminalKind[]>> = {
  'cardswitch.v1.PosService': ['canteen', 'shop', 'settlement', 'water'],
  'cardswitch.v1.KioskService': ['kiosk'],
};

/** Methods whose messages carry their own terminal credentials (checked per message, not per call). */
const PER_MESSAGE_AUTH = new Set(['/cardswitch.v1.PosService/AuthorizeStream']);

/** The authenticated terminal of a call, keyed by the call's metadata object. */
const authenticated = new WeakMap<Metadata, Terminal>();

export function terminalOf(metadata: Metadata): Terminal {
  const terminal = authenticated.get(metadata);
  if (terminal === undefined) throw new Error('handler reached without an authenticated terminal');
  return terminal;
}

function serviceOf(path: string): string {
  return path.split('/')[1] ?? '';
}

function firstString(metadata: Metadata, key: string): string {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : '';
}

export type Refusal = { code: Status; details: string };

function authenticate(registry: TerminalRegistry, service: string, metadata: Metadata): Promise<Terminal | Refusal> {
  const id = firstString(metadata, 'terminal-id');
  const secret = firstString(metadata, 'terminal-secret');
  if (id === '' || secret === '') {
    return Promise.resolve({ code: Status.UNAUTHENTICATED, details: 'send the terminal credentials as metadata "terminal-id" and "terminal-secret"' });
  }
  return authenticateTerminal(registry, service, id, secret);
}

/** The terminal `id` if `secret` is its secret and it may call `service`; otherwise why not. */
export async function authenticateTerminal(registry: TerminalRegistry, service: string, id: string, secret: string): Promise<Terminal | Refusal> {
  if (!TERMINAL_ID_PATTERN.test(id) || secret.length > MAX_SECRET_LENGTH) {
    return { code: Status.UNAUTHENTICATED, details: `terminal "${id.slice(0, 40)}" is not registered` };
  }
  const terminal = await registry.get(id);
  if (terminal === undefined) return { code: Status.UNAUTHENTICATED, details: `terminal "${id}" is not registered; ask the operator to register it` };
  if (!registry.secretMatches(terminal, secret)) return { code: Status.UNAUTHENTICATED, details: `wrong secret for terminal "${id}"` };
  if (!terminal.enabled) return { code: Status.PERMISSION_DENIED, details: `terminal "${id}" is disabled; ask the operator to enable it` };
  const allowed = SERVICE_KINDS[service] ?? [];
  if (!allowed.includes(terminal.kind)) {
    return { code: Status.PERMISSION_DENIED, details: `a ${terminal.kind} terminal may not call ${service}` };
  }
  return terminal;
}

export function terminalAuthInterceptor(registry: TerminalRegistry, log: Logger): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    const service = serviceOf(method.path);
    if (SERVICE_KINDS[service] === undefined || PER_MESSAGE_AUTH.has(method.path)) return passedOn(call);
    return gateCall(
      call,
      (metadata) =>
        authenticate(registry, service, metadata).then((result) => {
          if ('code' in result) {
            log.info({ path: method.path, code: Status[result.code], details: result.details }, 'terminal refused');
            return { ...result, metadata: new Metadata() };
          }
          authenticated.set(metadata, result);
          return undefined;
        }),
      (err) => {
        const mapped = mapError(err);
        log.error({ err, path: method.path }, 'terminal authentication failed');
        return { code: mapped.code, details: mapped.details, metadata: new Metadata() };
      },
    );
  };
}
