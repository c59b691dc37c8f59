// A deterministic demo campus: cardholders and terminals of a university with the Xiaoying (小营) and
// Jianxiangqiao (健翔桥) campuses, as CSV text the importers accept. The same seed always gives the same
// files, so a demo, a load test and a bug report can all talk about the same cards.
//
// DEMO ONLY: terminal secrets are derived from the seed, so anyone who knows the seed knows every secret,
// and the cardholders' initial passwords follow from their (made-up) document numbers. Never load a demo
// campus into a ledger that holds real money.
import { createHmac } from 'node:crypto';
import { fnv1a32 } from '../ledger/keys.js';
import { initialPassword } from '../domain/password.js';
import type { NewTerminal, TerminalKind } from '../domain/terminals.js';
import { csvLine } from './csv.js';
import { CARDHOLDER_HEADER, MAX_CARDHOLDER_ROWS, TERMINAL_HEADER, residentIdCheckChar, type Cardholder } from './import.js';

export const DEFAULT_DEMO_SEED = 'cardswitch-demo';
export const DEFAULT_DEMO_CARDHOLDERS = 20_000;
/** The first three rows are fixed kinds (student, staff, passport holder) that demoDoc() names. */
export const MIN_DEMO_CARDHOLDERS = 3;

export interface DemoOptions {
  readonly cardholders: number;
  readonly seed: string | number;
}

export interface DemoTerminalSecret {
  readonly terminalId: string;
  readonly secret: string;
}

export interface DemoCampus {
  readonly seed: string;
  readonly cardholders: readonly Cardholder[];
  readonly terminals: readonly NewTerminal[];
  readonly cardholdersCsv: string;
  readonly terminalsCsv: string;
  readonly terminalSecrets: readonly DemoTerminalSecret[];
}

/** mulberry32: tiny, fast and good enough for made-up data; NOT for anything secret. */
class Prng {
  private state: number;
  constructor(seed: string) {
    this.state = fnv1a32(seed);
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** Favours the front of the list, where the common family names are. */
  pickSkewed<T>(items: readonly T[]): T {
    const r = this.next();
    return items[Math.floor(r * r * items.length)] as T;
  }

  digits(count: number): string {
    let text = '';
    for (let i = 0; i < count; i++) text += String(this.int(0, 9));
    return text;
  }
}

// ---- people --------------------------------------------------------------------------------

const FAMILY_NAMES = [
  ...'王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤',
];
const COMPOUND_FAMILY_NAMES = ['欧阳', '司马', '诸葛', '上官', '皇甫', '东方', '慕容', '令狐'];
const GIVEN_NAME_CHARS = [
  ...'伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚英华玉萍红鹏辉婷雪琳晨宇浩然子轩梓涵欣怡博文思雨嘉佳一诺俊宁昊天泽睿梦瑶晓彤诗晗逸凯航阳铭悦可馨昕翔云飞志斌海波建国立新凡乐',
];
const FOREIGN_GIVEN = ['John', 'Maria', 'Anna', 'Yuki', 'Olivier', 'Ahmed', 'Ivan', 'Sarah', 'David', 'Elena', 'Lucas', 'Minjun'];
const FOREIGN_FAMILY = ['Smith', 'Garcia', 'Mueller', 'Tanaka', 'Martin', 'Hassan', 'Petrov', 'Johnson', 'Brown', 'Rossi', 'Silva', 'Kim'];
const FOREIGN_PHONE_PREFIXES = ['+44', '+1', '+49', '+33', '+81', '+7', '+82'];
const AREA_CODES = [
  '110101',
  '110102',
  '110105',
  '110106',
  '110108',
  '110114',
  '130102',
  '130602',
  '140105',
  '210102',
  '220102',
  '230102',
  '310104',
  '310115',
  '320102',
  '320506',
  '330106',
  '340104',
  '350102',
  '360102',
  '370102',
  '370202',
  '410105',
  '420106',
  '430104',
  '440106',
  '440305',
  '450103',
  '500103',
  '510107',
  '520102',
  '530102',
  '610113',
  '620102',
  '650102',
];
const MOBILE_PREFIXES = [
  '130',
  '131',
  '132',
  '133',
  '135',
  '136',
  '137',
  '138',
  '139',
  '150',
  '151',
  '152',
  '155',
  '156',
  '157',
  '158',
  '159',
  '166',
  '176',
  '177',
  '180',
  '181',
  '182',
  '183',
  '185',
  '186',
  '187',
  '188',
  '189',
  '191',
  '198',
  '199',
];
const STUDENT_YEARS = [2021, 2022, 2023, 2024, 2025];
const COLLEGE_COUNT = 20;

type Profile = 'student' | 'staff' | 'foreign_staff' | 'passport_student';

function chineseName(rng: Prng): string {
  const family = rng.chance(0.012) ? rng.pick(COMPOUND_FAMILY_NAMES) : rng.pickSkewed(FAMILY_NAMES);
  const givenLength = rng.chance(0.3) ? 1 : 2;
  let given = '';
  for (let i = 0; i < givenLength; i++) given += rng.pick(GIVEN_NAME_CHARS);
  return family + given;
}

function residentId(rng: Prng, birthYear: number): string {
  const month = String(rng.int(1, 12)).padStart(2, '0');
  const day = String(rng.int(1, 28)).padStart(2, '0');
  const first17 = `${rng.pick(AREA_CODES)}${birthYear}${month}${day}${String(rng.int(1, 999)).padStart(3, '0')}`;
  return first17 + residentIdCheckChar(first17);
}

function passportNumber(rng: Prng, profile: Profile): string {
  if (profile === 'foreign_staff') return rng.chance(0.5) ? rng.digits(9) : `${rng.pick(['P', 'C', 'X'])}${rng.digits(8)}`;
  // Hong Kong, Macao and Taiwan students: shapes like HK (K + 8), Macao (MA + 7), Taiwan (9 digits) documents.
  return rng.pick([`K${rng.digits(8)}`, `MA${rng.digits(7)}`, rng.digits(9)]);
}

function mobile(rng: Prng): string {
  return rng.pick(MOBILE_PREFIXES) + rng.digits(8);
}

function openingBalanceFen(rng: Prng): number {
  const r = rng.next();
  if (r < 0.15) return 0;
  if (r < 0.95) return rng.chance(0.6) ? rng.int(1, 500) * 100 : rng.int(1, 50_000);
  return rng.int(50_001, 200_000);
}

function profileFor(index: number, rng: Prng): Profile {
  // Fixed kinds first, so demoDoc() can name one of each whatever the campus size.
  const fixed: readonly Profile[] = ['student', 'staff', 'foreign_staff'];
  const first = fixed[index];
  if (first !== undefined) return first;
  if (rng.chance(0.9)) return rng.chance(0.015) ? 'passport_student' : 'student';
  return rng.chance(0.03) ? 'foreign_staff' : 'staff';
}

class PeopleFactory {
  private readonly serials = new Set<string>();
  private readonly counters = new Map<string, number>();
  constructor(private readonly rng: Prng) {}

  cardholder(index: number): Cardholder {
    const rng = this.rng;
    const profile = profileFor(index, rng);
    const isStudent = profile === 'student' || profile === 'passport_student';
    const year = isStudent ? rng.pick(STUDENT_YEARS) : rng.int(1990, 2024);
    const usesPassport = profile === 'foreign_staff' || profile === 'passport_student';
    const birthYear = year - (isStudent ? rng.int(17, 19) : rng.int(24, 34));
    return {
      cardNo: String(30_000_001 + index),
      cardSerial: this.uniqueSerial(),
      name: profile === 'foreign_staff' ? `${rng.pick(FOREIGN_GIVEN)} ${rng.pick(FOREIGN_FAMILY)}` : chineseName(rng),
      personNumber: isStudent ? this.studentNumber(year) : this.staffNumber(year),
      holderType: isStudent ? 'student' : 'staff',
      documentType: usesPassport ? 'passport' : 'resident_id',
      documentNumber: usesPassport ? passportNumber(rng, profile) : residentId(rng, birthYear),
      phone: profile === 'foreign_staff' && rng.chance(0.5) ? rng.pick(FOREIGN_PHONE_PREFIXES) + rng.digits(10) : mobile(rng),
      openingBalanceFen: openingBalanceFen(rng),
    };
  }

  /** A 4-byte card UID, as Mifare cards have, re-drawn on the rare collision. */
  private uniqueSerial(): string {
    for (;;) {
      const serial = this.rng.int(0, 0xffffffff).toString(16).toUpperCase().padStart(8, '0');
      if (!this.serials.has(serial)) {
        this.serials.add(serial);
        return serial;
      }
    }
  }

  private nextInSeries(series: string): number {
    const n = (this.counters.get(series) ?? 0) + 1;
    this.counters.set(series, n);
    return n;
  }

  /** Enrolment year, college, sequence: 2023 07 0042 -> '2023070042'. */
  private studentNumber(year: number): string {
    const college = String(this.rng.int(1, COLLEGE_COUNT)).padStart(2, '0');
    return `${year}${college}${String(this.nextInSeries(`${year}${college}`)).padStart(4, '0')}`;
  }

  /** Hiring year and sequence: '20080017'; eight digits, so never equal to a ten-digit student number. */
  private staffNumber(year: number): string {
    return `${year}${String(this.nextInSeries(`T${year}`)).padStart(4, '0')}`;
  }
}

// ---- terminals -----------------------------------------------------------------------------

interface Site {
  readonly merchantId: string;
  readonly kind: TerminalKind;
  readonly location: string;
  /** Terminal ids: `${merchantId}-${idPart}${nn}`. */
  readonly idPart: string;
  readonly count: number | readonly [number, number];
}

const CN_DIGITS = ['一', '二', '三', '四', '五', '六'];

/** The settlement POS sites exactly as the user guide lists them. */
export const SETTLEMENT_SITES: readonly Site[] = [
  { merchantId: 'XY-BATH', kind: 'settlement', location: '小营浴室', idPart: 'SETTLE-', count: 1 },
  { merchantId: 'JXQ-BATH', kind: 'settlement', location: '健翔桥浴室', idPart: 'SETTLE-', count: 1 },
  { merchantId: 'JXQ-BOIL', kind: 'settlement', location: '健翔桥开水房', idPart: 'SETTLE-', count: 1 },
  { merchantId: 'JXQ-T3', kind: 'settlement', location: '健翔桥教三楼二层', idPart: 'SETTLE-F2-', count: 1 },
  { merchantId: 'JXQ-T3', kind: 'settlement', location: '健翔桥教三楼五层', idPart: 'SETTLE-F5-', count: 1 },
  { merchantId: 'JXQ-D4', kind: 'settlement', location: '健翔桥学四公寓一层', idPart: 'SETTLE-F1-', count: 1 },
];

const SITES: readonly Site[] = [
  { merchantId: 'XY-CANTEEN1', kind: 'canteen', location: '小营校区第一食堂', idPart: '', count: [20, 40] },
  { merchantId: 'XY-CANTEEN2', kind: 'canteen', location: '小营校区第二食堂', idPart: '', count: [20, 40] },
  { merchantId: 'XY-CANTEEN3', kind: 'canteen', location: '小营校区清真食堂', idPart: '', count: [20, 40] },
  { merchantId: 'JXQ-CANTEEN1', kind: 'canteen', location: '健翔桥校区第一食堂', idPart: '', count: [20, 40] },
  { merchantId: 'JXQ-CANTEEN2', kind: 'canteen', location: '健翔桥校区第二食堂', idPart: '', count: [20, 40] },
  { merchantId: 'XY-SHOP1', kind: 'shop', location: '小营校区教育超市', idPart: '', count: 4 },
  { merchantId: 'XY-SHOP2', kind: 'shop', location: '小营校区水果店', idPart: '', count: 2 },
  { merchantId: 'XY-CAFE', kind: 'shop', location: '小营校区图书馆咖啡厅', idPart: '', count: 2 },
  { merchantId: 'JXQ-SHOP1', kind: 'shop', location: '健翔桥校区教育超市', idPart: '', count: 4 },
  { merchantId: 'JXQ-PRINT', kind: 'shop', location: '健翔桥校区文印中心', idPart: '', count: 2 },
  ...SETTLEMENT_SITES,
  { merchantId: 'XY-BATH', kind: 'water', location: '小营浴室 淋浴水控', idPart: 'W', count: 40 },
  { merchantId: 'JXQ-BATH', kind: 'water', location: '健翔桥浴室 淋浴水控', idPart: 'W', count: 40 },
  { merchantId: 'JXQ-BOIL', kind: 'water', location: '健翔桥开水房 开水机', idPart: 'W', count: 8 },
  { merchantId: 'JXQ-T3', kind: 'water', location: '健翔桥教三楼二层 热水机', idPart: 'W-F2-', count: 4 },
  { merchantId: 'JXQ-T3', kind: 'water', location: '健翔桥教三楼五层 热水机', idPart: 'W-F5-', count: 4 },
  { merchantId: 'JXQ-D4', kind: 'water', location: '健翔桥学四公寓一层 热水机', idPart: 'W-F1-', count: 6 },
  ...CN_DIGITS.map((n, i): Site => ({
    merchantId: 'XY-CARDCENTER',
    kind: 'kiosk',
    location: `小营校区学${n}公寓大厅 自助机`,
    idPart: `D${i + 1}-`,
    count: 1,
  })),
  ...CN_DIGITS.slice(0, 5).map((n, i): Site => ({
    merchantId: 'JXQ-CARDCENTER',
    kind: 'kiosk',
    location: `健翔桥校区学${n}公寓大厅 自助机`,
    idPart: `D${i + 1}-`,
    count: 1,
  })),
];

/** Demo only: anyone who knows the seed can recompute every secret. */
export function demoTerminalSecret(seed: string, terminalId: string): string {
  return createHmac('sha256', `cardswitch-demo-secret:${seed}`).update(terminalId).digest('base64url').slice(0, 32);
}

function siteTerminals(site: Site, rng: Prng, seed: string): NewTerminal[] {
  const count = typeof site.count === 'number' ? site.count : rng.int(site.count[0], site.count[1]);
  return Array.from({ length: count }, (_, i) => {
    const n = String(i + 1).padStart(2, '0');
    const id = `${site.merchantId}-${site.idPart}${n}`;
    const location = site.kind === 'canteen' || site.kind === 'shop' ? `${site.location} ${n}号收银台` : site.location;
    return { id, kind: site.kind, merchantId: site.merchantId, location, secret: demoTerminalSecret(seed, id) };
  });
}

function demoTerminals(seed: string): NewTerminal[] {
  const rng = new Prng(`${seed}:terminals`);
  return SITES.flatMap((site) => siteTerminals(site, rng, seed));
}

// ---- the campus ----------------------------------------------------------------------------

function cardholderCsv(rows: readonly Cardholder[]): string {
  const lines = rows.map((r) =>
    csvLine([
      r.cardNo,
      r.cardSerial,
      r.name,
      r.personNumber,
      r.holderType,
      r.documentType,
      r.documentNumber,
      r.phone,
      String(r.openingBalanceFen),
    ]),
  );
  return `${CARDHOLDER_HEADER.join(',')}\n${lines.join('\n')}\n`;
}

function terminalCsv(terminals: readonly NewTerminal[]): string {
  const lines = terminals.map((t) => csvLine([t.id, t.kind, t.merchantId, t.location, t.secret]));
  return `${TERMINAL_HEADER.join(',')}\n${lines.join('\n')}\n`;
}

export function generateDemoCampus(options: DemoOptions): DemoCampus {
  const count = options.cardholders;
  if (!Number.isInteger(count) || count < MIN_DEMO_CARDHOLDERS || count > MAX_CARDHOLDER_ROWS) {
    throw new RangeError(`a demo campus has ${MIN_DEMO_CARDHOLDERS}-${MAX_CARDHOLDER_ROWS} cardholders, got ${count}`);
  }
  const seed = String(options.seed);
  // Cardholders come from their own stream, so card i is the same whatever the campus size.
  const people = new PeopleFactory(new Prng(`${seed}:cardholders`));
  const cardholders = Array.from({ length: count }, (_, i) => people.cardholder(i));
  const terminals = demoTerminals(seed);
  return {
    seed,
    cardholders,
    terminals,
    cardholdersCsv: cardholderCsv(cardholders),
    terminalsCsv: terminalCsv(terminals),
    terminalSecrets: terminals.map((t) => ({ terminalId: t.id, secret: t.secret })),
  };
}

// ---- well-known demo cards and terminals ---------------------------------------------------

export interface DemoCard {
  readonly label: string;
  readonly cardNo: string;
  readonly cardSerial: string;
  readonly personNumber: string;
  readonly name: string;
  readonly initialPassword: string;
  /** What the e-card binding form asks for (guide figure 3). */
  readonly holderType: 'student' | 'staff';
  readonly documentType: 'resident_id' | 'passport';
  readonly documentNumber: string;
  readonly phone: string;
}

export interface DemoTerminal {
  readonly terminalId: string;
  readonly secret: string;
  readonly location: string;
}

export interface DemoDoc {
  readonly seed: string;
  /** A student, a staff member, and a foreign staff member with a passport: the first three rows. */
  readonly cards: readonly DemoCard[];
  readonly canteenPos: DemoTerminal;
  readonly settlementPos: DemoTerminal;
  readonly waterController: DemoTerminal;
  readonly kiosk: DemoTerminal;
}

function demoTerminal(terminals: readonly NewTerminal[], id: string): DemoTerminal {
  const t = terminals.find((candidate) => candidate.id === id);
  if (t === undefined) throw new Error(`demo terminal ${id} is missing from the generated campus`);
  return { terminalId: t.id, secret: t.secret, location: t.location };
}

/** The cards and terminals a demo or an example call can name; they exist in every campus of the same seed. */
export function demoDoc(seed: string | number = DEFAULT_DEMO_SEED): DemoDoc {
  const campus = generateDemoCampus({ cardholders: MIN_DEMO_CARDHOLDERS, seed });
  const labels = ['student', 'staff', 'foreign staff (passport)'];
  return {
    seed: campus.seed,
    cards: campus.cardholders.map((c, i) => ({
      label: labels[i] ?? '',
      cardNo: c.cardNo,
      cardSerial: c.cardSerial,
      personNumber: c.personNumber,
      name: c.name,
      initialPassword: initialPassword(c.documentNumber),
      holderType: c.holderType,
      documentType: c.documentType,
      documentNumber: c.documentNumber,
      phone: c.phone,
    })),
    canteenPos: demoTerminal(campus.terminals, 'XY-CANTEEN1-01'),
    settlementPos: demoTerminal(campus.terminals, 'XY-BATH-SETTLE-01'),
    waterController: demoTerminal(campus.terminals, 'XY-BATH-W01'),
    kiosk: demoTerminal(campus.terminals, 'XY-CARDCENTER-D1-01'),
  };
}

/** demoDoc() for the default seed, for scripts that print an example call. */
export const DEMO_DOC: DemoDoc = demoDoc();
