// Campus QR codes on the switch side: opening a code a POS scanned (for Authorize) and the codec the
// e-card domain issues codes with (SwitchContext.campusQr, built once by app.ts from CAMPUS_QR_SECRET).
// Format and guarantees: switch/qr/format.ts and docs/campus-qr.md.
import type { SwitchContext } from '../context.js';
import type { PresentedCampusQr } from '../ledger/ledger.js';
import { campusQrFresh } from '../qr/codec.js';

export interface OpenedCampusQr {
  readonly cardNo: string;
  readonly qr: PresentedCampusQr;
}

/**
 * The card a scanned code names, or undefined when the code is not genuine (malformed, altered,
 * forged, sealed under another key). An expired code still names its card: the ledger declines it,
 * unless the same request was decided before while the code was fresh (then the retry replays that).
 */
export function openCampusQr(ctx: SwitchContext, payload: string): OpenedCampusQr | undefined {
  const contents = ctx.campusQr.open(payload);
  if (contents === undefined) return undefined;
  const { validSec, clockSkewMs } = ctx.config.campusQr;
  return {
    cardNo: contents.cardNo,
    qr: { codeId: contents.codeId, epoch: contents.epoch, expired: !campusQrFresh(contents.issuedAtMs, ctx.now(), validSec, clockSkewMs) },
  };
}
