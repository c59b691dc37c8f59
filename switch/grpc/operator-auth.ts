// Operator authentication for AdminService: metadata `operator-token` must be one of OPERATOR_TOKENS.
// The operator's name is recorded with every change they make.
import { timingSafeEqual, createHash } from 'node:crypto';
import {
  Metadata,
  status as Status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { gateCall, passedOn } from './gate.js';

const ADMIN_SERVICE = 'cardswitch.v1.AdminService';
const operators = new WeakMap<Metadata, string>();

export function operatorOf(metadata: Metadata): string {
  const name = operators.get(metadata);
  if (name === undefined) throw new Error('admin handler reached without an authenticated operator');
  return name;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time: compares digests so neither length nor content leaks through timing. */
export function findOperator(tokens: ReadonlyMap<string, string>, presented: string): string | undefined {
  const presentedDigest = digest(presented);
  let found: string | undefined;
  for (const [name, token] of tokens) {
    if (timingSafeEqual(digest(token), presentedDigest)) found = name;
  }
  return found;
}

export function operatorAuthInterceptor(tokens: ReadonlyMap<string, string>, log: Logger): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    if (method.path.split('/')[1] !== ADMIN_SERVICE) return passedOn(call);
    return gateCall(
      call,
      (metadata) => {
        const presented = metadata.get('operator-token')[0];
        const name = typeof presented === 'string' && presented !== '' ? findOperator(tokens, presented) : undefined;
        if (name === undefined) {
          const details =
            tokens.size === 0
              ? 'AdminService is closed: no operators are configured (set OPERATOR_TOKENS)'
              : 'send a valid operator token as metadata "operator-token"';
          log.info({ path: method.path }, 'operator refused');
          return { code: Status.UNAUTHENTICATED, details, metadata: new Metadata() };
        }
        operators.set(metadata, name);
        log.info({ path: method.path, operator: name }, 'operator call');
        return undefined;
      },
      (err) => {
        log.error({ err, path: method.path }, 'operator authentication failed');
        return { code: Status.INTERNAL, details: 'operator authentication failed; see the switch log', metadata: new Metadata() };
      },
    );
  };
}
