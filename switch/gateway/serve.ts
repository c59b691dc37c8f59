// The gateway of one switch: the holder API, the live-events WebSocket, /healthz, /metrics and the
// OpenAPI document, on uWebSockets.js (GATEWAY_PORT). Started beside the gRPC server by app.ts, or on
// its own (gateway/main.ts). It holds no business rule: handlers call the domain. This file is wiring
// (docs/layers.md): it builds the gateway's services once and hands them to the handlers.
import type { Redis } from 'ioredis';
import type { SwitchContext } from '../context.js';
import { sessionEnded } from '../domain/card-events.js';
import type { StatementReader } from '../domain/reports.js';
import { Sessions } from '../domain/sessions.js';
import { EventsDoorbell } from '../ledger/events-doorbell.js';
import { SessionStore } from '../ledger/sessions.js';
import { IdentityProviders } from '../identity/index.js';
import { channelBindingRoutes } from './channel-binding-api.js';
import { channelNotifyRoutes } from './channel-notify.js';
import { holderRoutes } from './holder-api.js';
import { rechargeRoutes } from './recharge-api.js';
import { startGateway, type Route } from './http.js';
import { EVENTS_PATH, LiveEvents } from './live-events.js';
import { openApiDocument } from './openapi.js';
import { phonePageRoutes } from './phone-page.js';

export interface RunningHolderGateway {
  readonly port: number;
  readonly sessions: Sessions;
  readonly identity: IdentityProviders;
  readonly liveEvents: LiveEvents;
  shutdown(): Promise<void>;
}

const HEALTH_PING_TIMEOUT_MS = 1000;
const EVENTS_CONNECT_TIMEOUT_MS = 5000;

/** What app.ts built once and the gateway shares with the gRPC server. */
export interface GatewayServices {
  /** The ledger connection, for the readiness PING only. */
  readonly redis: Redis;
  readonly statements: StatementReader;
}

/** Ready when the ledger answers a PING in time. */
async function ledgerAnswers(redis: Redis): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), HEALTH_PING_TIMEOUT_MS);
  });
  try {
    return await Promise.race([redis.ping().then((answer) => answer === 'PONG'), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function openApiRoute(): Route {
  const body = JSON.stringify(openApiDocument());
  return {
    method: 'GET',
    path: '/api/v1/openapi.json',
    handler: () =>
      Promise.resolve({
        status: 200,
        body,
        contentType: 'application/json; charset=utf-8',
        headers: { 'cache-control': 'public, max-age=300' },
      }),
  };
}

export async function serveGateway(ctx: SwitchContext, services: GatewayServices): Promise<RunningHolderGateway> {
  const { config, log, metrics } = ctx;
  const sessionStore = new SessionStore(ctx.scripts.client, ctx.keys, (args) => ctx.scripts.command(args));
  const sessions = new Sessions({
    store: sessionStore,
    config: config.sessions,
    now: ctx.now,
    announceEnded: (sessionId) => sessionEnded(ctx, sessionId),
  });
  const identity = new IdentityProviders(config.identity, log, { now: ctx.now });
  const doorbell = new EventsDoorbell({
    redis: config,
    channel: ctx.keys.eventsChannel(),
    log,
    connectTimeoutMs: EVENTS_CONNECT_TIMEOUT_MS,
  });
  const liveEvents = new LiveEvents(ctx, sessions, doorbell);
  try {
    await liveEvents.start();
  } catch (err) {
    liveEvents.stop();
    throw err;
  }
  const routes: Route[] = [
    ...holderRoutes({ ctx, sessions, identity, statements: services.statements }),
    ...rechargeRoutes({ ctx, sessions }),
    ...channelBindingRoutes({ ctx, sessions }),
    ...channelNotifyRoutes(ctx),
    openApiRoute(),
    ...phonePageRoutes({ identity: config.identity, schoolName: config.campusSchoolName, log }),
  ];
  if (config.gateway.benchHello) {
    // The bench's like-for-like baseline: the cheapest route this uWS process can serve.
    routes.push({ method: 'GET', path: '/bench/hello', handler: () => Promise.resolve({ status: 200, body: 'hello' }) });
  }
  try {
    const gateway = await startGateway({
      host: config.gateway.host,
      port: config.gateway.port,
      maxBodyBytes: config.gateway.maxBodyBytes,
      log,
      metrics,
      routes,
      health: () => ledgerAnswers(services.redis),
      metricsToken: config.gateway.metricsToken,
      shutdownGraceMs: config.shutdownGraceMs,
      ws: {
        path: EVENTS_PATH,
        authenticate: (upgrade) => liveEvents.authenticate(upgrade),
        maxBackpressureBytes: config.gateway.wsMaxBackpressureBytes,
        idleTimeoutSec: config.gateway.wsIdleTimeoutSec,
        maxSockets: config.gateway.wsMaxSockets,
        onOpen: (handle, hub) => liveEvents.onOpen(handle, hub),
        onClose: (handle) => liveEvents.onClose(handle),
      },
    });
    log.info(
      { port: gateway.port, identityProviders: identity.enabled() },
      'gateway listening (holder API, live events, /healthz, /metrics)',
    );
    return {
      port: gateway.port,
      sessions,
      identity,
      liveEvents,
      shutdown: async () => {
        await gateway.shutdown();
        liveEvents.stop();
      },
    };
  } catch (err) {
    liveEvents.stop();
    throw err;
  }
}
