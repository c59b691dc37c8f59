// POS load for the cluster tests: terminals paying in parallel, each payment sent again with the same
// sequence number while it is answered UNAVAILABLE (what a real POS does), then the ledger is checked:
// every approved payment has exactly one pay entry (lost / duplicated counted), nothing else was taken,
// and each card's balance is its opening minus its approved payments.
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { Outcome } from '../../proto/gen/cardswitch/v1/common.js';
import type { SwitchApp } from '../../switch/app.js';
import type { NewTerminal } from '../../switch/domain/terminals.js';
import { journalPages, parseJournalEntry } from '../../switch/ledger/journal.js';
import { ReplicaWaitError } from '../../switch/redis/replica-wait.js';
import { call, openCard, posClient, terminalMetadata } from './switch.js';

/**
 * The durable mode answers NOREPLICAS while a replica is still catching up with its master (a loaded
 * machine, right after the cluster started): the setup sends the same request again, as any client
 * would (opening a card again is a no-op once it exists). Seen once in CI with a 500 ms WAIT.
 */
async function againOnNoReplicas<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof ReplicaWaitError) || attempt >= 40) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

const RETRY_PAUSE_MS = 50;

export interface LoadOptions {
  readonly label: string;
  readonly cards: number;
  readonly terminals: number;
  readonly openingFen: number;
  /** A POS still without an answer to one payment after this fails the load. */
  readonly answerBudgetMs: number;
}

interface Approved {
  readonly terminalId: string;
  readonly sequence: number;
  readonly cardNo: string;
  readonly amountFen: number;
}

export interface LoadReport {
  readonly acknowledged: number;
  readonly lost: number;
  readonly duplicated: number;
  /** Pay entries in the journal with no approved answer (taken but never acknowledged). */
  readonly unacknowledgedTaken: number;
  readonly unavailableAnswers: number;
  /** Cards whose balance is not opening - approved payments. */
  readonly wrongBalances: readonly string[];
}

export class PosLoad {
  readonly approved: Approved[] = [];
  unavailable = 0;
  /** The first failure other than UNAVAILABLE (the load stops on it). */
  failure: unknown;
  private stopping = false;
  private running: Promise<void> | undefined;
  private readonly terminals: NewTerminal[];
  private readonly pos: ReturnType<typeof posClient>;

  constructor(
    private readonly app: SwitchApp,
    private readonly options: LoadOptions,
  ) {
    this.terminals = Array.from({ length: options.terminals }, (_, i) => ({
      id: `${options.label}-POS-${i}`,
      kind: 'canteen',
      merchantId: `${options.label}-CANTEEN`,
      location: `${options.label} ${i}`,
      secret: `${options.label}-pos-${i}-secret-0123456789`,
    }));
    this.pos = posClient(app);
  }

  cardNo(c: number): string {
    return String(81_000_000 + c);
  }

  serial(c: number): string {
    return `F0${String(c).padStart(6, '0')}`;
  }

  async setUp(): Promise<void> {
    for (const t of this.terminals) await againOnNoReplicas(() => this.app.terminals.register(t));
    for (let c = 0; c < this.options.cards; c++)
      await againOnNoReplicas(() => openCard(this.app, this.cardNo(c), this.serial(c), this.options.openingFen));
  }

  start(): void {
    const loops = this.terminals.map(async (t, i) => {
      let sequence = 0;
      while (!this.stopping) {
        sequence++;
        await this.pay(t, sequence, (sequence * 7 + i * 13) % this.options.cards, 1 + ((sequence * 31 + i) % 900));
      }
    });
    this.running = Promise.all(loops).then(
      () => undefined,
      (err: unknown) => {
        this.failure = err;
        this.stopping = true;
      },
    );
  }

  /** Resolves once `count` payments are approved in all (or the load failed, or the budget passed). */
  async waitForApprovals(count: number): Promise<void> {
    await waitUntil(`${count} approvals`, this.options.answerBudgetMs, () => this.approved.length >= count || this.failure !== undefined);
  }

  /** Stops sending new payments; each terminal finishes the one under way. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    this.pos.close();
  }

  private async pay(t: NewTerminal, sequence: number, card: number, amountFen: number): Promise<void> {
    const started = Date.now();
    for (;;) {
      try {
        const answer = await call<unknown, { outcome: Outcome }>(
          this.pos,
          'authorize',
          { terminalId: t.id, sequenceNumber: sequence, amountFen, credential: { card: { cardSerial: this.serial(card) } }, pin: '' },
          terminalMetadata(t),
        );
        if (answer.outcome === Outcome.OUTCOME_APPROVED)
          this.approved.push({ terminalId: t.id, sequence, cardNo: this.cardNo(card), amountFen });
        return;
      } catch (err) {
        if ((err as ServiceError).code !== Status.UNAVAILABLE) throw err;
        this.unavailable++;
        if (Date.now() - started > this.options.answerBudgetMs)
          throw new Error(`${t.id} #${sequence}: no answer within ${this.options.answerBudgetMs} ms`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      }
    }
  }

  /** Reads every shard's journal and the balances; call after stop(). */
  async check(): Promise<LoadReport> {
    const { app } = this;
    const seen = new Map<string, number>();
    const ours = new Set(this.terminals.map((t) => t.id));
    for (let shard = 0; shard < app.keys.shardCount; shard++) {
      for await (const page of journalPages(app.redis, app.keys.journal(shard))) {
        for (const row of page) {
          const entry = parseJournalEntry(row);
          if (entry.kind !== 'pay' || !ours.has(entry.terminalId)) continue;
          const key = `${entry.terminalId}#${entry.sequence}`;
          seen.set(key, (seen.get(key) ?? 0) + 1);
        }
      }
    }
    const approvedKeys = new Set(this.approved.map((p) => `${p.terminalId}#${p.sequence}`));
    const spent = new Map<string, number>();
    for (const p of this.approved) spent.set(p.cardNo, (spent.get(p.cardNo) ?? 0) + p.amountFen);
    const wrongBalances: string[] = [];
    for (let c = 0; c < this.options.cards; c++) {
      const cardNo = this.cardNo(c);
      const bal = Number(await app.redis.hget(app.keys.account(cardNo), 'bal'));
      const expected = this.options.openingFen - (spent.get(cardNo) ?? 0);
      if (bal !== expected) wrongBalances.push(`${cardNo}: ${bal} != ${expected}`);
    }
    return {
      acknowledged: this.approved.length,
      lost: [...approvedKeys].filter((k) => !seen.has(k)).length,
      duplicated: [...seen.values()].filter((n) => n > 1).length,
      unacknowledgedTaken: [...seen.keys()].filter((k) => !approvedKeys.has(k)).length,
      unavailableAnswers: this.unavailable,
      wrongBalances,
    };
  }
}

export async function waitUntil(what: string, budgetMs: number, ready: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + budgetMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${budgetMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
