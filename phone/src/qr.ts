// Drawing QR codes (uqr's encoder, one <path> of SVG: sharp at any brightness and size) and reading what
// the page may read of a campus code, through the shared format module the switch itself uses.
import { encode } from 'uqr';
import { base32Decode, CAMPUS_QR_PREFIX, HEADER_BYTES, NONCE_BYTES, parseCampusQr } from '../../switch/qr/format.js';

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG of `text` as a QR code; `label` names it for screen readers. */
export function qrSvg(text: string, label: string, ecc: 'L' | 'M' = 'M'): SVGSVGElement {
  const { data, size } = encode(text, { ecc, border: 2 });
  // One rectangle per run of dark modules in a row: a fifth of the path of one square per module.
  let d = '';
  data.forEach((row, y) => {
    for (let x = 0; x < row.length; x++) {
      if (!row[x]) continue;
      let end = x;
      while (row[end + 1] === true) end++;
      d += `M${x} ${y}h${end - x + 1}v1H${x}z`;
      x = end;
    }
  });
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.setAttribute('shape-rendering', 'crispEdges');
  const background = document.createElementNS(SVG, 'rect');
  background.setAttribute('width', String(size));
  background.setAttribute('height', String(size));
  background.setAttribute('fill', '#fff');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(background, path);
  return svg;
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  bytes.forEach((b) => (binary += String.fromCharCode(b)));
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The code's single-use id as payment events carry it (qrCodeId: base64url of the payload's nonce), or ''
 * when the text is not a well-formed campus code.
 */
export function campusQrId(code: string): string {
  if (parseCampusQr(code) === undefined) return '';
  const payload = base32Decode(code, CAMPUS_QR_PREFIX.length);
  return payload === undefined ? '' : base64url(payload.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES));
}
