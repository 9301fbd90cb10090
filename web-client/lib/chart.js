// Candlestick chart of the selected instrument and interval.
//
// Wraps TradingView Lightweight Charts (loaded as its standalone ES module
// through the page's import map, attribution logo kept). The library is
// loaded lazily: if it cannot be loaded the rest of the page still trades,
// and the chart panel says why. Prices become numbers here for plotting only.

import { chartBar, volumeBar } from './market.js';

const UP = '#1fbf75';
const DOWN = '#f0465a';

export class CandleChart {
  constructor(container) {
    this.container = container;
    this.chart = null;
    this.candles = null;
    this.volume = null;
    this.bars = 0;
    this.failed = null;
    this.ready = this.load();
  }

  async load() {
    let lib;
    try {
      lib = await import('lightweight-charts');
    } catch (e) {
      this.failed = e;
      this.message(`chart library not loaded: ${e.message}`);
      return false;
    }
    const { createChart, CandlestickSeries, HistogramSeries, ColorType, CrosshairMode } = lib;
    this.chart = createChart(this.container, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: '#0e1217' },
        textColor: '#7d8a99',
        fontSize: 11,
        attributionLogo: true,
      },
      grid: { vertLines: { color: '#161c23' }, horzLines: { color: '#161c23' } },
      crosshair: { mode: CrosshairMode.Normal },
      rightPriceScale: { borderColor: '#1d242d' },
      timeScale: { borderColor: '#1d242d', timeVisible: true, secondsVisible: false },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP,
      downColor: DOWN,
      borderUpColor: UP,
      borderDownColor: DOWN,
      wickUpColor: UP,
      wickDownColor: DOWN,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: 'volume' },
      priceScaleId: 'vol',
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale('vol').applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
    return true;
  }

  message(text) {
    let el = this.container.querySelector('.chart-msg');
    if (!el) {
      el = document.createElement('div');
      el.className = 'chart-msg';
      this.container.appendChild(el);
    }
    el.textContent = text;
    el.hidden = !text;
  }

  /** Price display for the instrument: its decimals and tick. */
  setPrecision(priceScale, tick) {
    if (!this.candles) return;
    this.candles.applyOptions({
      priceFormat: { type: 'price', precision: priceScale, minMove: Number(tick) || 10 ** -priceScale },
    });
  }

  /** Replaces all candles (list sorted by start). */
  setAll(list) {
    if (!this.candles) return;
    this.candles.setData(list.map(chartBar));
    this.volume.setData(list.map((c) => volumeBar(c, 'rgba(31,191,117,0.35)', 'rgba(240,70,90,0.35)')));
    this.bars = list.length;
    this.container.dataset.bars = String(this.bars);
    this.message(list.length ? '' : 'no candles yet');
  }

  /** Updates or appends the candles of one event (each newest or equal to the last). */
  update(list, total) {
    if (!this.candles) return;
    for (const c of list) {
      try {
        this.candles.update(chartBar(c));
        this.volume.update(volumeBar(c, 'rgba(31,191,117,0.35)', 'rgba(240,70,90,0.35)'));
      } catch {
        // An update older than the last bar: the caller redraws everything.
        return false;
      }
    }
    this.bars = total;
    this.container.dataset.bars = String(total);
    if (total) this.message('');
    return true;
  }
}
