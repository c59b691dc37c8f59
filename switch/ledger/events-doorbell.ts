// The doorbell of the live events: a Redis pub/sub connection on the events channel, on which the
// scripts announce each event of a watched card (ledger/lua/includes/event.lua). Its own connection
// (a subscribed connection runs no other command), built by the wiring (gateway/serve.ts) and handed
// to the gateway's LiveEvents, which so never names the Redis client.
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { ledgerClient, type LedgerRedisSettings } from '../redis/cluster.js';

export interface DoorbellListener {
  /** One announcement as published (ledger/events.ts parseAnnouncement reads it). */
  onMessage(message: string): void;
  /** The connection is back after a drop: announcements made meanwhile were lost. */
  onReconnected(): void;
}

export interface EventsDoorbellOptions {
  /** The ledger's Redis (one, a cluster: ioredis subscribes on one node, PUBLISH reaches all; or Sentinel's master). */
  readonly redis: LedgerRedisSettings;
  readonly channel: string;
  readonly log: Logger;
  /** How long the first connection may take before start-up fails. */
  readonly connectTimeoutMs: number;
}

export class EventsDoorbell {
  private subscriber: Redis | undefined;

  constructor(private readonly options: EventsDoorbellOptions) {}

  /** Subscribes; resolves once subscribed. Reconnects and resubscribes by itself after a drop. */
  async listen(listener: DoorbellListener): Promise<void> {
    const { redis, channel, log, connectTimeoutMs } = this.options;
    // Offline queue on and no retry limit: the SUBSCRIBE is replayed on every reconnection.
    const subscriber = ledgerClient(redis, {
      lazyConnect: true,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
      autoResubscribe: true,
      connectTimeout: connectTimeoutMs,
    });
    subscriber.on('error', (err: Error) => log.warn({ err: err.message }, 'events subscriber: redis connection problem'));
    subscriber.on('message', (_channel: string, message: string) => listener.onMessage(message));
    let connectedBefore = false;
    subscriber.on('ready', () => {
      if (connectedBefore) listener.onReconnected();
      connectedBefore = true;
    });
    this.subscriber = subscriber;
    await subscriber.connect();
    await subscriber.subscribe(channel);
  }

  stop(): void {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}
