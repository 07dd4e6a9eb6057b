// Property tests of the lossless JSON parser (parseJSON, exactNumber) against
// JSON.parse, on random JSON from a seeded generator. Run: node --test web/client/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseJSON, exactNumber } from '../shopstream.js';

// mulberry32: a seeded generator, so a failure can be replayed (SEED=...).
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.SEED || Date.now() % 1e9);
const rand = rng(SEED);
const int = (n) => Math.floor(rand() * n);
const pick = (a) => a[int(a.length)];
const digits = (n) => Array.from({ length: n }, () => int(10)).join('');

const CHARS = ['a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', 'é', '€', '😀', '\ud800', '__proto__', 'constructor', '1e400'];
function randomString() {
  let s = '';
  for (let n = int(6); n > 0; n--) s += pick(CHARS);
  return s;
}
// Numbers a JS number holds exactly (at most 15 significant digits).
function safeNumberText() {
  const sign = rand() < 0.3 ? '-' : '';
  switch (int(5)) {
    case 0: return sign + String(int(1000));
    case 1: return sign + String(Math.floor(rand() * Number.MAX_SAFE_INTEGER));
    case 2: return sign + digits(1 + int(7)).replace(/^0+(?=\d)/, '') + '.' + digits(1 + int(7));
    case 3: return sign + String(1 + int(9)) + '.' + digits(int(6)) + pick(['e', 'E']) + pick(['', '+', '-']) + String(int(99));
    default: return sign + '0.' + digits(1 + int(10));
  }
}
function randomValue(depth) {
  const r = int(depth > 4 ? 5 : 8);
  switch (r) {
    case 0: return 'null';
    case 1: return pick(['true', 'false']);
    case 2: case 3: return safeNumberText();
    case 4: return JSON.stringify(randomString());
    case 5: case 6: {
      const items = Array.from({ length: int(5) }, () => randomValue(depth + 1));
      return '[' + items.join(ws() + ',' + ws()) + ']';
    }
    default: {
      const items = Array.from({ length: int(5) }, () => ws() + JSON.stringify(randomString()) + ws() + ':' + ws() + randomValue(depth + 1));
      return '{' + items.join(',') + ws() + '}';
    }
  }
}
const ws = () => (rand() < 0.8 ? '' : pick([' ', '\n', '\t', '\r', '  \n ', '\u00a0', '\f']));

/** parse(text) as { value } or { error: 'SyntaxError' }. */
function outcome(parse, text) {
  try {
    return { value: parse(text) };
  } catch (err) {
    return { error: err.constructor.name };
  }
}

test(`parseJSON with Number for numbers is JSON.parse (random JSON and mutations of it; SEED=${SEED})`, () => {
  const asNumber = (t) => parseJSON(t, Number);
  let valid = 0;
  for (let n = 0; n < 3000; n++) {
    const text = ws() + randomValue(0) + ws();
    const want = outcome(JSON.parse, text);
    if (!want.error) valid++;
    assert.deepStrictEqual(outcome(asNumber, text), want, text);
    // Mutations: drop, duplicate or insert a character; mostly invalid JSON,
    // which must fail the same way.
    for (let m = 0; m < 3; m++) {
      const i = int(text.length + 1);
      const mutated = pick([
        () => text.slice(0, i) + text.slice(i + 1),
        () => text.slice(0, i) + text[i] + text.slice(i),
        () => text.slice(0, i) + pick(['{', '}', '[', ']', ',', ':', '"', '\\', '-', '.', 'e', '0', '9', 't', 'n', ' ', '\u0000']) + text.slice(i),
      ])();
      assert.deepStrictEqual(outcome(asNumber, mutated), outcome(JSON.parse, mutated), JSON.stringify(mutated));
    }
  }
  assert.ok(valid > 2000, `${valid} of 3000 generated texts were valid JSON`);
});

test(`parseJSON keeps safe values as JSON.parse gives them (SEED=${SEED})`, () => {
  for (let n = 0; n < 3000; n++) {
    const text = randomValue(0);
    let want;
    try {
      want = JSON.parse(text);
    } catch {
      continue; // the generator's \f or \u00a0 whitespace: not JSON
    }
    assert.deepStrictEqual(parseJSON(text, 'string'), want, text);
    assert.deepStrictEqual(parseJSON(text, 'bigint'), want, text);
  }
});

test(`big integers and long numerics stay exact (SEED=${SEED})`, () => {
  for (let n = 0; n < 3000; n++) {
    const sign = rand() < 0.5 ? '-' : '';
    const big = sign + String(1 + int(9)) + digits(16 + int(25)); // 17 to 41 digits
    const numeric = sign + String(1 + int(9)) + digits(int(20)) + '.' + digits(int(10)) + String(1 + int(9)); // often 16+ digits
    const text = `{"id":${big},"total":${numeric},"list":[${big},${numeric}],"qty":7}`;
    const s = parseJSON(text, 'string');
    const b = parseJSON(text, 'bigint');
    assert.equal(s.id, big);
    assert.equal(b.id, BigInt(big));
    assert.equal(String(b.id), big);
    assert.deepEqual(s.list, [big, s.total]);
    // The numeric is a number only when that number prints as the same value.
    const wantTotal = String(Number(numeric)) === numeric ? Number(numeric) : numeric;
    assert.equal(s.total, wantTotal, numeric);
    assert.equal(b.total, wantTotal, numeric);
    assert.equal(s.qty, 7);
  }
});

test('exactNumber: the edges', () => {
  const cases = [
    ['0', 0], ['-0', -0], ['9007199254740991', 9007199254740991], ['-9007199254740991', -9007199254740991],
    ['9007199254740992', '9007199254740992'], ['12345678901234567890', '12345678901234567890'],
    ['12345678901234567.89', '12345678901234567.89'], ['0.1', 0.1], ['99.99', 99.99], ['1.50', 1.5],
    ['0.10000000000000000555', '0.10000000000000000555'], ['1e21', 1e21], ['1.5E-7', 1.5e-7],
    ['1e400', '1e400'], ['-1e400', '-1e400'], ['1e-400', '1e-400'], ['0.0', 0], ['0e10', 0],
    ['123456789012345.6', 123456789012345.6], ['1234567890123456.7', '1234567890123456.7'],
  ];
  for (const [text, want] of cases) assert.deepStrictEqual(exactNumber(text), want, text);
  assert.equal(exactNumber('9007199254740993', 'bigint'), 9007199254740993n);
  assert.equal(exactNumber('1e400', 'bigint'), '1e400', 'not an integer text: a string');
});

test('parseJSON: objects as JSON.parse makes them (__proto__, duplicate keys), any depth', () => {
  const o = parseJSON('{"__proto__":{"polluted":1},"a":1,"a":2}');
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.deepStrictEqual(o, JSON.parse('{"__proto__":{"polluted":1},"a":1,"a":2}'));
  assert.equal({}.polluted, undefined);
  const deep = '['.repeat(100000) + '12345678901234567890' + ']'.repeat(100000);
  let v = parseJSON(deep);
  for (let i = 0; i < 100000; i++) v = v[0];
  assert.equal(v, '12345678901234567890');
  for (const bad of ['', ' ', '[', ']', '{"a"}', '{"a":}', '[1,]', '01', '1.', '.5', '+1', '-', 'nul', 'truex', '"\\x"', '"a', '[1 2]', '{} {}', '1e', 'NaN', 'Infinity']) {
    assert.throws(() => parseJSON(bad), SyntaxError, JSON.stringify(bad));
  }
});
