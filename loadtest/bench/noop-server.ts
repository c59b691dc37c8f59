// Baseline: a grpc-js server with the switch's PosService definition (the same ts-proto messages and
// serializers, the same server options) whose handlers answer a fixed, typical response at once: no
// authentication, no Redis. What the switch reaches of this server's throughput is the share of the
// gRPC stack's limit that the switch's own work leaves.
import { Server, ServerCredentials, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall } from '@grpc/grpc-js';
import { CardStatus, DeclineReason, HolderType, Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import {
  PosServiceService,
  ReverseResult,
  type AuthorizeResponse,
  type InquireResponse,
  type PosServiceServer,
  type RefundResponse,
  type ReverseResponse,
  type SettleResponse,
  type StreamedAuthorizeRequest,
  type StreamedAuthorizeResponse,
  type WaterDebitResponse,
} from '../../proto/gen/cardswitch/v1/pos.js';
import { GRPC_SERVER_OPTIONS } from '../../switch/grpc/server.js';
import type { ChildToParent, ParentToChild } from './processes.js';

const DECIDED_AT_MS = Date.now();

/** The answer the switch gives to a typical approved canteen tap. */
export const NOOP_AUTHORIZE_RESPONSE: AuthorizeResponse = {
  outcome: Outcome.OUTCOME_APPROVED,
  declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
  displayText: '支付成功 12.50元 余额987654.32元',
  balanceAfterFen: 98_765_432,
  transactionId: `${DECIDED_AT_MS}-0`,
  amountFen: 1250,
  cardNumber: '30000004',
  pinAttemptsLeft: 0,
  decidedAtMs: DECIDED_AT_MS,
};

const INQUIRE: InquireResponse = {
  found: true,
  cardNumber: '30000004',
  maskedName: '张*',
  status: CardStatus.CARD_STATUS_ACTIVE,
  balanceFen: 98_765_432,
  smallWalletFen: 0,
  synced: true,
  holderType: HolderType.HOLDER_TYPE_STUDENT,
  displayText: '余额987654.32元',
};
const REVERSE: ReverseResponse = {
  result: ReverseResult.REVERSE_RESULT_REVERSED,
  balanceAfterFen: 98_765_432,
  displayText: '冲正成功 余额987654.32元',
  decidedAtMs: DECIDED_AT_MS,
};
const WATER: WaterDebitResponse = {
  outcome: Outcome.OUTCOME_APPROVED,
  declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
  displayText: '扣款成功 余额9.50元',
  smallWalletAfterFen: 950,
  transactionId: `${DECIDED_AT_MS}-1`,
  decidedAtMs: DECIDED_AT_MS,
};
const SETTLE: SettleResponse = {
  outcome: Outcome.OUTCOME_APPROVED,
  declineReason: DeclineReason.DECLINE_REASON_UNSPECIFIED,
  displayText: '结算成功',
  balanceAfterFen: 98_765_432,
  spentFen: 50,
  movedToWalletFen: 50,
  smallWalletAfterFen: 1000,
  opened: false,
  decidedAtMs: DECIDED_AT_MS,
};
const REFUND: RefundResponse = {
  balanceAfterFen: 98_765_432,
  refundableLeftFen: 0,
  transactionId: `${DECIDED_AT_MS}-2`,
  displayText: '退款成功',
  decidedAtMs: DECIDED_AT_MS,
};

function fixed<Req, Res>(answer: Res) {
  return (_call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => callback(null, answer);
}

/** AuthorizeStream: each message answered with the fixed approval under its tag, on the next turn (as the switch answers after Redis). */
function fixedStream(call: ServerDuplexStream<StreamedAuthorizeRequest, StreamedAuthorizeResponse>): void {
  call.on('data', (message: StreamedAuthorizeRequest) =>
    setImmediate(() => call.write({ tag: message.tag, response: NOOP_AUTHORIZE_RESPONSE })),
  );
  call.on('end', () => setImmediate(() => call.end()));
}

const implementation: PosServiceServer = {
  authorize: fixed(NOOP_AUTHORIZE_RESPONSE),
  authorizeStream: fixedStream,
  reverse: fixed(REVERSE),
  inquire: fixed(INQUIRE),
  refund: fixed(REFUND),
  waterDebit: fixed(WATER),
  settle: fixed(SETTLE),
  queryTransaction: fixed(NOOP_AUTHORIZE_RESPONSE),
};

async function main(): Promise<void> {
  // The same options as switch/grpc/server.ts, so only the handlers differ.
  const server = new Server({ ...GRPC_SERVER_OPTIONS });
  server.addService(PosServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  const stop = (): void => server.tryShutdown(() => process.exit(0));
  process.on('message', (message: ParentToChild) => {
    if (message.type === 'stop') stop();
  });
  process.on('disconnect', stop);
  const ready: ChildToParent = { type: 'listening', port };
  process.send?.(ready);
}

if (process.send !== undefined) await main();
