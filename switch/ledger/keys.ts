// The ONE module that builds Redis keys. Every key of an account, its request records, its statement
// and the shard's journal carry the hash tag {L:<shard>}, so each Lua script touches one cluster slot.

export const MAX_SHARDS = 16384;

/** FNV-1a, 32-bit: stable across processes and languages, cheap, and spreads card numbers evenly. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export class Keys {
  constructor(
    readonly prefix: string,
    readonly shardCount: number,
  ) {
    if (!/^[A-Za-z0-9_.-]{1,32}$/.test(prefix)) {
      throw new Error(`key prefix "${prefix}" must be 1-32 characters of A-Z a-z 0-9 _ . - (no braces)`);
    }
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > MAX_SHARDS) {
      throw new Error(`shard count ${shardCount} must be an integer 1..${MAX_SHARDS}`);
    }
  }

  shardOf(cardNo: string): number {
    return fnv1a32(cardNo) % this.shardCount;
  }

  private tag(shard: number): string {
    return `${this.prefix}:{L:${shard}}`;
  }

  account(cardNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:acct:${cardNo}`;
  }

  /** The record of one terminal request (payment and its reversal), in the card's shard. */
  request(cardNo: string, terminalId: string, sequence: number): string {
    return `${this.tag(this.shardOf(cardNo))}:req:${terminalId}:${sequence}`;
  }

  /**
   * Which card a terminal's sequence number belongs to. It lives in the terminal's own slot, so that
   * reusing a sequence number with a card of ANOTHER shard is caught (the request record above only
   * sees its own shard).
   */
  sequenceClaim(terminalId: string, sequence: number): string {
    return `${this.prefix}:{T:${terminalId}}:seq:${sequence}`;
  }

  /**
   * One third-party (Alipay / WeChat) code payment of a terminal: hash, in the terminal's own slot with
   * its sequence claim, so channel-pay.lua records the pending payment and claims the sequence number
   * in one step, before the channel is called.
   */
  channelPayment(terminalId: string, sequence: number): string {
    return `${this.prefix}:{T:${terminalId}}:cp:${sequence}`;
  }

  /** Zset of the code payments the switch still has to follow up (member "<terminal>|<sequence>", score = next look ms). */
  channelPaymentsPending(): string {
    return `${this.prefix}:{CP}:pending`;
  }

  /**
   * Zset of the merchant refunds of code payments whose channel answer is not known yet (member
   * "<card>|<terminal>|<sequence>", score = next look ms): the follow-up asks the channel until it knows.
   */
  channelRefundsPending(): string {
    return `${this.prefix}:{CP}:refunds`;
  }

  /**
   * Zset of the merchant refunds the follow-up gave up asking about (the channel gave no final answer
   * MAX_UNKNOWN_REFUND_ANSWERS times): off the loop, for an operator (`npm run cli -- refund-attention`);
   * member as channelRefundsPending, score = when it was given up.
   */
  channelRefundsAttention(): string {
    return `${this.prefix}:{CP}:refunds-attn`;
  }

  /** Hash: member (as channelRefundsPending) -> how many answers without a final word its follow-up got. */
  channelRefundsUnknown(): string {
    return `${this.prefix}:{CP}:refunds-unk`;
  }

  /**
   * Which switch instance is working on one follow-up member now (string: the instance id, with an
   * expiry): two switches on one Redis never query and settle the same payment at once, and a crashed
   * one's work is picked up when its lease expires.
   */
  channelFollowUpLease(member: string): string {
    return `${this.prefix}:{CP}:lease:${member}`;
  }

  /** A paid code payment's journal record in the payer's card's shard (channel-paid.lua: journalled once). */
  channelPaid(cardNo: string, outTradeNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:cpaid:${outTradeNo}`;
  }

  /**
   * One terminal's wrong card passwords of the hour and its checks in flight (terminal-password.lua),
   * in the terminal's own slot like its sequence claims.
   */
  terminalPasswordGuard(terminalId: string): string {
    return `${this.prefix}:{T:${terminalId}}:pwguard`;
  }

  /** One channel order's record (recharge), in the credited card's shard. */
  order(cardNo: string, channel: string, orderId: string): string {
    return `${this.tag(this.shardOf(cardNo))}:order:${channel}:${orderId}`;
  }

  /** The same key as order(), found from the shard alone (a channel's notification names no card). */
  orderInShard(shard: number, channel: string, orderId: string): string {
    return `${this.tag(shard)}:order:${channel}:${orderId}`;
  }

  /** Zset of the shard's recharge orders not yet paid or closed (orderId -> made at), for the settlement loop. */
  rechargePending(shard: number): string {
    return `${this.tag(shard)}:rchpend`;
  }

  /** Zset of the shard's recharge orders that need an operator (channel:orderId -> since ms; recharge-order.lua 'requery'). */
  rechargeAttention(shard: number): string {
    return `${this.tag(shard)}:rchattn`;
  }

  /** Hash of one card's open recharge orders (orderId -> "<amountFen>|<dayKey>"): the daily maximum counts them. */
  rechargeOpen(cardNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:rchopen:${cardNo}`;
  }

  /**
   * The card office's replacement requests of one card (replace-card.lua): hash requestId ->
   * "<newSerial>|<code>|<oldSerial>", kept as long as the account so a retry is answered at any time.
   */
  cardReplacements(cardNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:rpl:${cardNo}`;
  }

  /** One operator adjustment's record, in the card's shard. */
  adjustment(cardNo: string, adjustmentId: string): string {
    return `${this.tag(this.shardOf(cardNo))}:adj:${adjustmentId}`;
  }

  /** Zset of the shard's fee requests whose money is taken and whose provider call is not settled. */
  feePending(shard: number): string {
    return `${this.tag(shard)}:feepend`;
  }

  /** Which card holds a ledger-wide id (a channel order id, an adjustment id); not money, no shard. */
  idClaim(namespace: string, id: string): string {
    return `${this.prefix}:claim:${namespace}:${id}`;
  }

  /**
   * The single-use mark of one campus QR code, in the card's shard so that authorize.lua sets it in
   * the same script as the debit. Expires once the code could no longer be accepted anyway.
   */
  campusQrUsed(cardNo: string, codeId: string): string {
    return `${this.tag(this.shardOf(cardNo))}:qru:${cardNo}:${codeId}`;
  }

  /**
   * The live events of a bound e-card (stream, trimmed and expiring), written by the same scripts that
   * change the card, so a page is told only what happened. Pages resume from their last event id.
   */
  cardEvents(cardNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:ev:${cardNo}`;
  }

  /** Pub/sub channel the scripts announce each card event on (a doorbell; the stream is the record). */
  eventsChannel(): string {
    return `${this.prefix}:events`;
  }

  /** Which card an e-card user (a WeCom / WeChat identity) has bound: hash {card}. Checked against the account's `eu`. */
  ecardUser(userId: string): string {
    return `${this.prefix}:ecu:${userId}`;
  }

  /** Held while one user's binding or unbinding runs, so two of them never interleave. */
  ecardUserLock(userId: string): string {
    return `${this.prefix}:eclock:${userId}`;
  }

  /**
   * Which card a payment channel's payer (Alipay buyer_user_id, WeChat openid) is bound to: a string,
   * the card number, in the payer's own slot. The card's side is its account field `cp<channel>`
   * (channelPayerField); a binding counts only when both sides name each other (channel-binding.lua).
   */
  channelPayer(channel: string, payerId: string): string {
    return `${this.prefix}:cpayer:${channel}:${payerId}`;
  }

  /** Held while one channel payer's binding or unbinding runs, so two of them never interleave. */
  channelPayerLock(channel: string, payerId: string): string {
    return `${this.prefix}:cplock:${channel}:${payerId}`;
  }

  /** One cardholder session on the e-card page: hash {uid, ...}; gone after logout, unbinding or expiry. */
  session(sessionId: string): string {
    return `${this.prefix}:sess:${sessionId}`;
  }

  /** Set of one user's session ids (unbinding ends them all). */
  userSessions(userId: string): string {
    return `${this.prefix}:usess:${userId}`;
  }

  statement(cardNo: string): string {
    return `${this.tag(this.shardOf(cardNo))}:stmt:${cardNo}`;
  }

  journal(shard: number): string {
    return `${this.tag(shard)}:journal`;
  }

  /** The last id of the shard's journal the archive holds (history/archiver.ts writes it after each commit). */
  journalArchived(shard: number): string {
    return `${this.tag(shard)}:jarch`;
  }

  /**
   * Written (INCR) by the archiver in the durable mode just before its WAIT, so the WAIT covers the journal
   * entries it read: their archiving waits until a replica holds them (history/archiver.ts).
   */
  journalArchiveFence(shard: number): string {
    return `${this.tag(shard)}:jfence`;
  }

  /** The MINID of the shard's last trim: every id below it may be gone from Redis and is in the archive. */
  journalTrimMark(shard: number): string {
    return `${this.tag(shard)}:jtrim`;
  }

  journalOfCard(cardNo: string): string {
    return this.journal(this.shardOf(cardNo));
  }

  /** Pattern matching every account of every shard (one SCAN for the audit). */
  allAccountsPattern(): string {
    return `${this.prefix}:{L:*}:acct:*`;
  }

  /** Pattern matching every account of one shard (for audit and export). */
  accountPattern(shard: number): string {
    return `${this.tag(shard)}:acct:*`;
  }

  // Directory keys: not money, not sharded by card; each holds one small lookup.
  serial(cardSerial: string): string {
    return `${this.prefix}:serial:${cardSerial}`;
  }

  /**
   * Who holds a replacement's claim of a serial's directory entry now, and whether a replacement
   * confirmed it (serial-claim.lua). Its hash tag is the directory key's whole name, so both share a
   * cluster slot (a key without braces hashes by its whole name).
   */
  serialHold(cardSerial: string): string {
    return `${this.prefix}:serialhold:{${this.serial(cardSerial)}}`;
  }

  personNumber(studentOrStaffNo: string): string {
    return `${this.prefix}:person:${studentOrStaffNo}`;
  }

  terminal(terminalId: string): string {
    return `${this.prefix}:term:${terminalId}`;
  }

  merchant(merchantId: string): string {
    return `${this.prefix}:merchant:${merchantId}`;
  }

  /** Set of all terminal ids (for listing). */
  terminalIndex(): string {
    return `${this.prefix}:terminals`;
  }

  /** Stream of operator actions that move no money (freeze, replace card, register terminal). */
  operatorLog(): string {
    return `${this.prefix}:oplog`;
  }

  /** Hash of ledger-wide settings fixed at first start (shard count). */
  meta(): string {
    return `${this.prefix}:meta`;
  }
}
