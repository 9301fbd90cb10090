import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as D from '../lib/decimal.js';

test('parse and format keep the exact wire string', () => {
  for (const s of ['0', '30001.50', '0.2500', '12.3450', '1', '0.0001', '90071992547409931.01']) {
    assert.equal(D.format(D.parse(s)), s);
  }
  assert.deepEqual(D.parse('30001.50'), { u: 3000150n, s: 2 });
});

test('parse refuses malformed decimals as the exchange does', () => {
  for (const s of ['', '-1', '+1', '1e5', '1.', '.5', '1.2.3', ' 1', '1 ', 'abc', '0x10', '1,5']) {
    assert.throws(() => D.parse(s), D.DecimalError, s);
  }
  assert.throws(() => D.parse(1.5), D.DecimalError);
  assert.deepEqual(D.parse('-1.5', { signed: true }), { u: -15n, s: 1 });
});

test('parseInput accepts what a person types, keeps typed digits', () => {
  assert.deepEqual(D.parseInput('5'), { u: 5n, s: 0 });
  assert.deepEqual(D.parseInput('5.'), { u: 5n, s: 0 });
  assert.deepEqual(D.parseInput('.5'), { u: 5n, s: 1 });
  assert.deepEqual(D.parseInput(' 0.250 '), { u: 250n, s: 3 });
  assert.equal(D.parseInput(''), null);
  assert.equal(D.parseInput('.'), null);
  assert.equal(D.parseInput('-1'), null);
  assert.equal(D.parseInput('1e3'), null);
});

test('add, sub and compare align scales exactly', () => {
  assert.equal(D.format(D.add('0.1', '0.2')), '0.3');
  assert.equal(D.format(D.add('30001.50', '0.05')), '30001.55');
  assert.equal(D.format(D.sub('0.2500', '1.1000')), '-0.8500');
  assert.equal(D.cmp('1.0', '1.00'), 0);
  assert.equal(D.cmp('30001.50', '30001.49'), 1);
  assert.equal(D.cmp('0.0001', '0.001'), -1);
  assert.ok(D.eq('2', '2.000'));
  // Beyond 2^53: a float would lose the last digit.
  assert.equal(D.format(D.add('9007199254740993.01', '0.01')), '9007199254740993.02');
  assert.equal(D.format(D.sum(['0.2500', '1.1000', '0.0001'])), '1.3501');
});

test('mul gives the notional at the summed scale', () => {
  assert.equal(D.format(D.mul('30001.50', '0.2500')), '7500.375000');
  assert.equal(D.format(D.rescale(D.mul('30001.50', '0.2500'), 2, 'up')), '7500.38');
  assert.equal(D.format(D.mul('0.1', '0.1')), '0.01');
  assert.equal(D.format(D.mulInt('1.25', 4)), '5.00');
});

test('rescale is exact unless a rounding mode is asked for', () => {
  assert.equal(D.format(D.rescale('1.5', 3)), '1.500');
  assert.equal(D.rescale('1.505', 2), null);
  assert.equal(D.format(D.rescale('1.500', 1)), '1.5');
  assert.equal(D.format(D.rescale('1.505', 2, 'down')), '1.50');
  assert.equal(D.format(D.rescale('1.501', 2, 'up')), '1.51');
  assert.equal(D.format(D.rescale('1.505', 2, 'half')), '1.51');
  assert.equal(D.format(D.rescale('1.504', 2, 'half')), '1.50');
  assert.equal(D.format(D.rescale('-1.505', 2, 'half')), '-1.51');
  assert.throws(() => D.format('1.505', 2), D.DecimalError);
});

test('div rounds as asked', () => {
  assert.equal(D.format(D.div('1', '3', 4)), '0.3333');
  assert.equal(D.format(D.div('2', '3', 4, 'half')), '0.6667');
  assert.equal(D.format(D.div('1', '3', 4, 'up')), '0.3334');
  assert.equal(D.format(D.div('-1', '3', 2, 'half')), '-0.33');
  assert.equal(D.format(D.div('7500.375000', '30001.50', 4)), '0.2500');
  assert.equal(D.div('1', '3', 2, 'exact'), null);
  assert.throws(() => D.div('1', '0', 2));
});

test('fee is rounded up to the asset scale', () => {
  // 7500.375 * 10 bps = 7.500375 -> 7.51 at scale 2
  assert.equal(D.format(D.feeUp(D.mul('30001.50', '0.2500'), 10, 2)), '7.51');
  assert.equal(D.format(D.feeUp('100.00', 10, 2)), '0.10');
  assert.equal(D.format(D.feeUp('100.00', 0, 2)), '0.00');
});

test('grid checks and helpers', () => {
  assert.ok(D.isMultipleOf('30001.50', '0.50'));
  assert.ok(D.isMultipleOf('30001.5', '0.50'));
  assert.ok(!D.isMultipleOf('30001.25', '0.50'));
  assert.ok(D.isMultipleOf('0.0100', '0.0001'));
  assert.ok(!D.isMultipleOf('0.00015', '0.0001'));
  assert.equal(D.format(D.mid('30001.50', '30002.00')), '30001.750');
  assert.equal(D.format(D.mid('1', '2')), '1.5');
  assert.equal(D.sign('-0.01'), -1);
  assert.ok(D.isZero('0.0000'));
  assert.equal(D.format(D.max('1.5', '1.50')), '1.5');
  assert.equal(D.format(D.min('2', '1.99')), '1.99');
  assert.equal(D.format(D.abs('-3.2')), '3.2');
  assert.equal(D.scaleOf('0.2500'), 4);
  assert.equal(D.scaleOf('7'), 0);
  assert.equal(D.toNumber('30001.50'), 30001.5);
});
