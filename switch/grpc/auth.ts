// Terminal authentication as a server interceptor: every PosService / KioskService call carries
// metadata `terminal-id` and `terminal-secret`. Unknown terminal or wrong secret: UNAUTHENTICATED;
// disabled terminal, or a terminal whose kind may not call this RPC (RPC_KINDS): PERMISSION_DENIED. The
// handler never runs for a refused call, so nothing changes (gate.ts holds the call until the check has
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

/** Services whose every call comes from a terminal; a method of theirs missing from RPC_KINDS is refused to all. */
const TERMINAL_SERVICES = new Set(['cardswitch.v1.PosService', 'cardswitch.v1.KioskService']);

const SALES: readonly TerminalKind[] = ['canteen', 'shop'];
const KIOSK: readonly TerminalKind[] = ['kiosk'];

/**
 * Which terminal kinds may call which RPC: each device only what it does (README "The API in brief").
 * A settlement POS or a water controller moves money only through the small wallet, so neither pays,
 * reverses nor refunds; Inquire (balance and small wallet on the display) is read-only.
 */
export const RPC_KINDS: Readonly<Record<string, readonly TerminalKind[]>> = {
  '/cardswitch.v1.PosService/Authorize': SALES,
  '/cardswitch.v1.PosService/AuthorizeStream': SALES, // checked per message: each names its own terminal
  '/cardswitch.v1.PosService/Reverse': SALES,
  '/cardswitch.v1.PosService/Refund': SALES,
  '/cardswitch.v1.PosService/QueryTransaction': SALES,
  '/cardswitch.v1.PosService/Inquire': ['canteen', 'shop', 'settlement', 'water'],
  '/cardswitch.v1.PosService/WaterDebit': ['water'],
  '/cardswitch.v1.PosService/Settle': ['settlement'],
  '/cardswitch.v1.KioskService/IdentifyCard': KIOSK,
  '/cardswitch.v1.KioskService/Recharge': KIOSK,
  '/cardswitch.v1.KioskService/RechargeOrderState': KIOSK,
  '/cardswitch.v1.KioskService/CancelRechargeOrder': KIOSK,
  '/cardswitch.v1.KioskService/ReportLoss': KIOSK,
  '/cardswitch.v1.KioskService/CancelLoss': KIOSK,
  '/cardswitch.v1.KioskService/ChangePassword': KIOSK,
  '/cardswitch.v1.KioskService/Statement': KIOSK,
  '/cardswitch.v1.KioskService/PayUtilityFee': KIOSK,
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

function authenticate(registry: TerminalRegistry, path: string, metadata: Metadata): Promise<Terminal | Refusal> {
  const id = firstString(metadata, 'terminal-id');
  const secret = firstString(metadata, 'terminal-secret');
  if (id === '' || secret === '') {
    return Promise.resolve({
      code: Status.UNAUTHENTICATED,
      details: 'send the terminal credentials as metadata "terminal-id" and "terminal-secret"',
    });
  }
  return authenticateTerminal(registry, path, id, secret);
}

/** "PosService/Authorize" of "/cardswitch.v1.PosService/Authorize": how messages name an RPC. */
function rpcName(path: string): string {
  return path.replace(/^\/cardswitch\.v1\./, '');
}

/** Why a terminal of `kind` may not call `path`, naming what it may call; undefined when it may. */
function kindRefusal(terminal: Terminal, path: string): string | undefined {
  if ((RPC_KINDS[path] ?? []).includes(terminal.kind)) return undefined;
  const mayCall = Object.keys(RPC_KINDS)
    .filter((p) => RPC_KINDS[p]?.includes(terminal.kind))
    .map(rpcName);
  return `${rpcName(path)} is not for ${terminal.kind} terminals: terminal "${terminal.id}" is a ${terminal.kind} terminal and may call ${mayCall.join(', ')}`;
}

/** The terminal `id` if `secret` is its secret and its kind may call the RPC at `path`; otherwise why not. */
export async function authenticateTerminal(
  registry: TerminalRegistry,
  path: string,
  id: string,
  secret: string,
): Promise<Terminal | Refusal> {
  // Both refused without a look-up: no terminal has such an id, and none has such a secret.
  if (!TERMINAL_ID_PATTERN.test(id)) return { code: Status.UNAUTHENTICATED, details: `terminal "${id.slice(0, 40)}" is not registered` };
  if (secret.length > MAX_SECRET_LENGTH) {
    return {
      code: Status.UNAUTHENTICATED,
      details: `wrong secret for terminal "${id}": longer than any terminal secret (at most ${MAX_SECRET_LENGTH} characters)`,
    };
  }
  const terminal = await registry.get(id);
  if (terminal === undefined)
    return { code: Status.UNAUTHENTICATED, details: `terminal "${id}" is not registered; ask the operator to register it` };
  if (!registry.secretMatches(terminal, secret)) return { code: Status.UNAUTHENTICATED, details: `wrong secret for terminal "${id}"` };
  if (!terminal.enabled) return { code: Status.PERMISSION_DENIED, details: `terminal "${id}" is disabled; ask the operator to enable it` };
  const refusal = kindRefusal(terminal, path);
  if (refusal !== undefined) return { code: Status.PERMISSION_DENIED, details: refusal };
  return terminal;
}

export function terminalAuthInterceptor(registry: TerminalRegistry, log: Logger): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    if (!TERMINAL_SERVICES.has(serviceOf(method.path)) || PER_MESSAGE_AUTH.has(method.path)) return passedOn(call);
    return gateCall(
      call,
      (metadata) =>
        authenticate(registry, method.path, metadata).then((result) => {
          if ('code' in result) {
            log.info({ path: method.path, code: Status[result.code], details: result.details }, 'terminal refused');
            return { ...result, metadata: new Metadata() };
          }
          authenticated.set(metadata, result);
          return undefined;
        }),
      (err) => {
        const mapped = mapError(err);
        // Not serious: the ledger is known down (redis/breaker.ts logged it once), not a line per call.
        if (mapped.serious) log.error({ err, path: method.path }, 'terminal authentication failed');
        return { code: mapped.code, details: mapped.details, metadata: new Metadata() };
      },
    );
  };
}
