// The response-time dashboard (/reports): reads GET /api/reports with the
// chosen period and filters, and draws the figures, charts and tables.
// The filters live in the address, so a view can be bookmarked or shared.

import { seriesChart, histogram, heatmap, niceScale, niceTimeScale } from '/charts.js';
import { signOut, CHANGE_PASSWORD_PAGE } from '/js/api.js';

const $ = (id) => document.getElementById(id);
const nf = new Intl.NumberFormat('en-GB');

const URGENCY = { immediate: 'Immediate', urgent: 'Urgent', routine: 'Routine' };
const OUTCOME = {
  managed_locally: 'Managed locally: treated at the MIU',
  transfer_to_ed: 'Sent to A&E',
  referred_elsewhere: 'Referred elsewhere',
  ambulance: 'Ambulance',
  technical_failure: 'Technical failure',
  not_recorded: 'Outcome not recorded',
  other: 'Other',
};
const SHORT_DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const PRESETS = {
  today: 'Today',
  last_7_days: 'Last 7 days',
  last_30_days: 'Last 30 days',
  this_quarter: 'This quarter',
};
const SVG = 'http://www.w3.org/2000/svg';

// ---- formatting --------------------------------------------------------

export function duration(ms) {
  if (ms == null) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) {
    const m = Math.floor(s / 60), r = s % 60;
    return r ? `${m} min ${r} s` : `${m} min`;
  }
  const h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** m:ss, short enough for a heat-map cell. */
function clock(ms) {
  const s = Math.round(ms / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}`;
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function minutesLabel(ms) {
  const m = ms / 60000;
  return Number.isInteger(m) ? `${m} min` : duration(ms);
}

function axisTime(ms) {
  if (ms === 0) return '0';
  if (ms < 60000) return `${ms / 1000} s`;
  if (ms < 3600000) return `${ms / 60000} min`;
  return `${ms / 3600000} h`;
}

function pct(share) {
  if (share == null) return '–';
  return `${(share * 100).toFixed(1)}%`;
}

/** The trust's aim as a percentage, without needless decimals: "90%". */
function aimPct(share) {
  return `${+(share * 100).toFixed(1)}%`;
}

/** A count with its noun, singular or plural: "1 request", "2 requests". */
function count(n, one, many = `${one}s`) {
  return `${nf.format(n)} ${n === 1 ? one : many}`;
}

/** "was" or "were", to agree with a count. */
function were(n) {
  return n === 1 ? 'was' : 'were';
}

function hoursAndMinutes(minutes) {
  const h = Math.floor(minutes / 60), m = minutes % 60;
  if (h === 0) return `${m} min`;
  if (h >= 10) return `${nf.format(Math.round(minutes / 60))} hours`;
  return m ? `${h} h ${m} min` : `${h} h`;
}

/** "2026-11-23" -> "Mon 23 Nov 2026" (the date is already local). */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const WEEKDAYS_SUN_FIRST = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
function dayName(date, { year = true, weekday = true } = {}) {
  const [y, m, d] = date.split('-').map(Number);
  const wd = new Date(Date.UTC(y, m - 1, d)).getUTCDay();
  return [weekday ? WEEKDAYS_SUN_FIRST[wd] : '', d, MONTHS[m - 1], year ? y : ''].filter((x) => x !== '').join(' ');
}

// ---- state in the address ---------------------------------------------

function readParams() {
  const p = new URLSearchParams(location.search);
  return {
    period: p.get('period') || (p.get('from') || p.get('to') ? 'custom' : 'last_30_days'),
    from: p.get('from') || '',
    to: p.get('to') || '',
    site: p.get('site') || '',
    station: p.get('station') || '',
  };
}

function writeParams(s) {
  const p = new URLSearchParams();
  if (s.period === 'custom') {
    if (s.from) p.set('from', s.from);
    if (s.to) p.set('to', s.to);
  } else {
    p.set('period', s.period);
  }
  if (s.site) p.set('site', s.site);
  if (s.station) p.set('station', s.station);
  return p;
}

let state = readParams();
let lastReport = null;

// ---- talking to the server --------------------------------------------

async function getJson(url) {
  const res = await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  if (res.status === 401) {
    location.assign('/');
    throw new Error('not logged in');
  }
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  if (res.status === 403 && body?.error === 'password_change_required') {
    // The account must choose a new password before anything else.
    location.replace(CHANGE_PASSWORD_PAGE);
    throw new Error('password change required');
  }
  if (!res.ok) {
    const err = new Error(body?.message || `The server answered ${res.status}.`);
    err.status = res.status;
    throw err;
  }
  return body;
}

/** The page is for managers and admins: say so, and where to go instead. */
function notForYou(why) {
  $('filters-panel').hidden = true;
  $('report').hidden = true;
  const box = $('error');
  box.replaceChildren();
  const p = document.createElement('p');
  p.textContent = `Response-time reports are for managers and administrators. ${why.charAt(0).toUpperCase()}${why.slice(1)}`;
  const a = document.createElement('a');
  a.href = '/';
  a.textContent = 'Go to the MIU Link start page';
  box.append(p, a);
  box.hidden = false;
  $('status').textContent = '';
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
  $('status').textContent = '';
}

async function load() {
  const main = $('main');
  main.setAttribute('aria-busy', 'true');
  $('status').textContent = 'Loading the figures…';
  $('status').classList.remove('visually-hidden');
  $('error').hidden = true;
  const query = writeParams(state);
  history.replaceState(null, '', `${location.pathname}?${query}`);
  try {
    const report = await getJson(`/api/reports?${query}`);
    lastReport = report;
    render(report);
    $('report').hidden = false;
    $('status').textContent = `Figures updated: ${describePeriod(report)}. ${verdictWords(report).title}.`;
    $('status').classList.add('visually-hidden');
  } catch (e) {
    if (e.status === 403) {
      notForYou(e.message);
    } else if (e.status === 400) {
      showError(`Those dates cannot be shown: ${e.message}.`);
    } else if (e.message !== 'not logged in') {
      showError(`The figures could not be loaded: ${e.message} Try again in a moment.`);
    }
  } finally {
    main.setAttribute('aria-busy', 'false');
  }
}

// ---- controls ----------------------------------------------------------

function syncControls() {
  for (const r of document.querySelectorAll('input[name=period]')) r.checked = r.value === state.period;
  $('custom').hidden = state.period !== 'custom';
  $('from').value = state.from;
  $('to').value = state.to;
}

function fillChoices(report) {
  const site = $('site'), station = $('station');
  const keep = (select, values, current, allLabel) => {
    const options = [['', allLabel], ...values];
    if (current && !values.some(([v]) => v === current)) options.push([current, `${current} (none in this period)`]);
    select.replaceChildren(...options.map(([v, text]) => {
      const o = document.createElement('option');
      o.value = v;
      o.textContent = text;
      o.selected = v === current;
      return o;
    }));
  };
  keep(site, report.choices.sites.map((s) => [s, s]), state.site, 'All sites');
  const stations = report.choices.stations
    .filter((s) => !state.site || s.site === state.site)
    .map((s) => [s.name, s.site ? `${s.name} (${s.site})` : s.name]);
  keep(station, stations, state.station, 'All stations');
}

function wireControls() {
  for (const r of document.querySelectorAll('input[name=period]')) {
    r.addEventListener('change', () => {
      if (!r.checked) return;
      state.period = r.value;
      if (r.value === 'custom') {
        // Start the custom range from the period on screen.
        state.from = state.from || lastReport?.period.first_day || '';
        state.to = state.to || lastReport?.period.last_day || '';
        syncControls();
        $('from').focus();
        return;
      }
      syncControls();
      load();
    });
  }
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.from = $('from').value;
    state.to = $('to').value;
    if (state.from && state.to && state.from > state.to) {
      showError('The “From” date is after the “To” date: swap them.');
      return;
    }
    load();
  });
  $('site').addEventListener('change', () => {
    state.site = $('site').value;
    state.station = '';
    load();
  });
  $('station').addEventListener('change', () => {
    state.station = $('station').value;
    load();
  });
  $('clinicians-more').addEventListener('click', () => {
    showAllClinicians = !showAllClinicians;
    if (lastReport) renderClinicians(lastReport);
  });
  $('sign-out').addEventListener('click', () => signOut());
  // On a phone the filters fold away under one line, so that the answers
  // come first; on a wider screen they are always open.
  const narrow = matchMedia('(max-width: 700px)');
  const fitFilters = () => { $('filters-panel').open = !narrow.matches; };
  narrow.addEventListener('change', fitFilters);
  fitFilters();
}

// ---- rendering ---------------------------------------------------------

function describePeriod(r) {
  const p = r.period;
  let when;
  if (!p.first_day) when = 'no days';
  else if (p.first_day === p.last_day) when = dayName(p.first_day);
  else when = `${dayName(p.first_day)} to ${dayName(p.last_day)} (${nf.format(p.days)} days)`;
  const where = [r.filters.site ? `site ${r.filters.site}` : 'all sites', r.filters.station ? `station ${r.filters.station}` : 'all stations'];
  return `${when}, ${where.join(', ')}`;
}

/** The filters in a few words, for the line they fold under on a phone. */
function describeChoice(r) {
  const p = r.period;
  let when = PRESETS[p.preset];
  if (!when) {
    if (!p.first_day) when = 'No days';
    else if (p.first_day === p.last_day) when = dayName(p.first_day);
    else when = `${dayName(p.first_day, { weekday: false })} to ${dayName(p.last_day, { weekday: false })}`;
  }
  const where = r.filters.station ? `station ${r.filters.station}` : r.filters.site ? `site ${r.filters.site}` : 'all sites';
  return `${when}, ${where}`;
}

function csvLink(r) {
  const p = new URLSearchParams();
  if (r.period.from != null) p.set('from', String(r.period.from));
  if (r.period.to != null) p.set('to', String(r.period.to));
  if (r.filters.site) p.set('site', r.filters.site);
  if (r.filters.station) p.set('station', r.filters.station);
  $('csv').href = `/api/consults.csv?${p}`;
}

/** An icon from /icons.svg, for decoration next to words that say the same. */
function icon(name, cls = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `/icons.svg#${name}`);
  svg.append(use);
  return svg;
}

function node(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

/** The answer to "are we meeting our answer targets?", in words. */
function verdictWords(r) {
  const v = r.verdict;
  const aim = aimPct(v.target_share);
  if (v.share == null) {
    if (!r.headline.requests) {
      return { tone: 'none', icon: 'info', title: 'No requests in this period', figure: null, rest: `Nothing to judge against the answer target (aim ${aim} within target).` };
    }
    return {
      tone: 'none', icon: 'info', title: 'Too early to judge the answer target', figure: null,
      rest: `None of the ${count(r.headline.requests, 'request')} in this period can be judged yet: each was cancelled, or is still waiting, within its target (aim ${aim} within target).`,
    };
  }
  return {
    tone: v.meeting_target ? 'met' : 'missed',
    icon: v.meeting_target ? 'check' : 'alert',
    title: v.meeting_target ? 'Meeting the answer target' : 'Not meeting the answer target',
    figure: pct(v.share),
    rest: `of requests answered within target (aim ${aim})`,
  };
}

function renderVerdict(r) {
  const w = verdictWords(r);
  const wt = r.headline.within_target;
  const box = $('verdict');
  box.className = `verdict verdict--${w.tone}`;
  const body = node('div', 'verdict__body');
  body.append(node('h3', 'verdict__title', w.title));
  const line = node('p', 'verdict__figure');
  if (w.figure) line.append(node('strong', 'verdict__share', w.figure), ' ');
  line.append(w.rest);
  body.append(line);
  if (w.figure) {
    const short = r.verdict.target_share - r.verdict.share;
    const detail = `${count(wt.met, 'request')} met the target, ${nf.format(wt.missed)} missed it${r.verdict.meeting_target ? '' : `: ${(short * 100).toFixed(1)} percentage points short of the aim`}.`;
    body.append(node('p', 'verdict__detail', detail));
  }
  body.append(node('p', 'verdict__detail', `${targetsText(r)}.`));
  box.replaceChildren(icon(w.icon, 'verdict__icon'), body);
}

/** The answer to "how many journeys to A&E did this save?". */
function renderSaved(r) {
  const o = r.outcomes;
  const box = $('saved');
  const figure = (value, label) => {
    const p = node('p', 'saved__figure');
    p.append(node('span', 'saved__value', value), node('span', 'saved__label', label));
    return p;
  };
  const siteName = (s) => (s.site ? `at ${s.site}` : 'at stations with no site');
  const timed = o.by_site.filter((s) => s.minutes_each_way != null);
  const untimed = o.by_site.filter((s) => s.minutes_each_way == null);
  const figures = node('div', 'saved__figures');
  figures.append(figure(nf.format(o.journeys_avoided), o.journeys_avoided
    ? `${o.journeys_avoided === 1 ? 'patient' : 'patients'} treated at the MIU, not sent to A&E`
    : 'no patient recorded as treated at the MIU'));
  if (timed.length) {
    const where = untimed.length ? `, ${timed.map((s) => s.site).join(' and ')} only` : ', there and back';
    figures.append(figure(hoursAndMinutes(o.travel_minutes_saved), `patient travel saved${where}`));
  } else if (untimed.length) {
    figures.append(figure('Not known', 'travel time saved'));
  }
  const parts = [node('h3', 'saved__title', 'Journeys to A&E avoided'), figures];
  if (untimed.length) {
    // Next to the figure, not left out quietly: journeys the time saved does not count.
    const flag = node('p', 'saved__flag');
    const words = node('span', null, 'Travel time to A&E not set, so not counted in the time saved: ');
    untimed.forEach((s, i) => {
      if (i) words.append(', ');
      words.append(node('strong', null, `${timed.length ? '+ ' : ''}${count(s.journeys_avoided, 'journey')} ${siteName(s)}`));
    });
    words.append('.');
    flag.append(icon('alert'), words);
    parts.push(flag);
  }
  const more = node('p', 'saved__more');
  const a = node('a', null, 'Journeys and travel time by site');
  a.href = '#h-outcomes';
  more.append(a);
  parts.push(more);
  box.replaceChildren(...parts);
}

function card(title, value, detail, opts = {}) {
  const div = document.createElement('div');
  div.className = `card${opts.tone ? ` card--${opts.tone}` : ''}`;
  const h = document.createElement('h3');
  h.className = 'card__title';
  h.textContent = title;
  const v = document.createElement('p');
  v.className = 'card__value';
  v.textContent = value;
  div.append(h, v);
  for (const line of [].concat(detail || [])) {
    const d = document.createElement('p');
    d.className = 'card__detail';
    d.textContent = line;
    div.append(d);
  }
  return div;
}

function renderCards(r) {
  const h = r.headline;
  const t = h.time_to_answer;
  const noAnswers = 'No answered requests in this period';
  $('cards').replaceChildren(
    card('Requests', nf.format(h.requests), [
      h.still_waiting ? `${nf.format(h.still_waiting)} waiting now` : 'from MIU stations',
    ]),
    card('Answered', nf.format(h.answered), [`Answer rate ${pct(h.answer_rate)}`]),
    card('Not answered', nf.format(h.cancelled + h.abandoned), [
      `${nf.format(h.cancelled)} cancelled by the nurse`,
      `${nf.format(h.abandoned)} abandoned (station went offline)`,
    ]),
    card('Median time to answer', duration(t.median_ms), t.count ? [
      `9 in 10 within ${duration(t.p90_ms)}`,
      `95th percentile ${duration(t.p95_ms)}`,
      `Longest ${duration(t.longest_ms)}`,
    ] : [noAnswers]),
    card('Answer to video connected', duration(h.answer_to_connected.median_ms),
      [h.answer_to_connected.count ? 'median' : 'No connected calls']),
    card('Call length', duration(h.call_duration.median_ms), [h.call_duration.count ? 'median' : 'No finished calls']),
    card('Escalated to the nurse in charge', nf.format(h.escalations.escalated), [
      `${pct(h.escalations.escalated_share)} of requests`,
      `${nf.format(h.escalations.realerted)} re-alerted to every clinician`,
    ]),
    card('Poor video links', h.link_quality.measured_calls ? pct(h.link_quality.poor_share) : '–',
      h.link_quality.measured_calls ? [
        `${nf.format(h.link_quality.poor_calls)} of ${count(h.link_quality.measured_calls, 'measured call')}`,
        `Median round trip ${h.link_quality.median_rtt_ms == null ? '–' : `${nf.format(h.link_quality.median_rtt_ms)} ms`}`,
      ] : ['No call quality reported in this period'],
      { tone: h.link_quality.measured_calls ? '' : 'muted' }),
  );
}

function targetsText(r) {
  return `Targets: ${r.targets.map((t) => `${URGENCY[t.urgency].toLowerCase()} ${minutesLabel(t.target_ms)}`).join(', ')}`;
}

function table(el, headers, rows, { caption, numeric = [] } = {}) {
  const t = $(el);
  t.replaceChildren();
  if (caption) {
    const c = document.createElement('caption');
    c.textContent = caption;
    t.append(c);
  }
  const thead = document.createElement('thead');
  const tr = document.createElement('tr');
  headers.forEach((h, i) => {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    if (numeric.includes(i)) th.className = 'num';
    tr.append(th);
  });
  thead.append(tr);
  const tbody = document.createElement('tbody');
  for (const row of rows) {
    const r = document.createElement('tr');
    row.forEach((cell, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      if (cell instanceof Node) td.append(cell);
      else td.textContent = cell;
      if (numeric.includes(i)) td.classList.add('num');
      r.append(td);
    });
    tbody.append(r);
  }
  if (!rows.length) {
    const r = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = headers.length;
    td.className = 'empty';
    td.textContent = 'Nothing in this period.';
    r.append(td);
    tbody.append(r);
  }
  t.append(thead, tbody);
}

/** A share as words plus a small bar (the number is always written). */
function shareCell(wt) {
  const span = document.createElement('span');
  span.className = 'share';
  const text = document.createElement('span');
  text.className = 'share__pct';
  text.textContent = pct(wt.share);
  span.append(text);
  if (wt.share != null) {
    const bar = document.createElement('span');
    bar.className = 'share__bar';
    bar.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.className = 'share__fill';
    fill.style.width = `${(wt.share * 100).toFixed(1)}%`;
    bar.append(fill);
    const of = document.createElement('span');
    of.className = 'share__of';
    of.textContent = `${nf.format(wt.met)} of ${nf.format(wt.met + wt.missed)} met`;
    span.append(bar, of);
  }
  return span;
}

function renderUrgency(r) {
  table('urgency-table', ['Urgency', 'Target', 'Requests', 'Answered', 'Median wait', '9 in 10 within', 'Longest', 'Answered within target'],
    r.by_urgency.map((u) => [
      URGENCY[u.urgency], minutesLabel(u.target_ms), nf.format(u.requests), nf.format(u.answered),
      duration(u.time_to_answer.median_ms), duration(u.time_to_answer.p90_ms), duration(u.time_to_answer.longest_ms),
      shareCell(u.within_target),
    ]), { caption: 'Waits and targets for each urgency', numeric: [2, 3, 4, 5, 6] });
}

function renderOutcomes(r) {
  const o = r.outcomes;
  const big = $('journeys');
  big.replaceChildren();
  const add = (cls, text) => {
    const p = document.createElement('p');
    p.className = cls;
    p.textContent = text;
    big.append(p);
  };
  add('big__label', 'Journeys to A&E avoided');
  add('big__value', nf.format(o.journeys_avoided));
  add('big__label', 'Patient travel time saved');
  add('big__value', hoursAndMinutes(o.travel_minutes_saved));
  for (const s of o.by_site) {
    const site = s.site || '(no site)';
    if (s.minutes_each_way != null) {
      add('big__detail', `${site}: ${count(s.journeys_avoided, 'journey')} × 2 × ${s.minutes_each_way} min = ${hoursAndMinutes(s.minutes_saved)}`);
    } else {
      add('big__detail', `${site}: ${count(s.journeys_avoided, 'journey')} avoided; travel time to A&E not set, so not counted in the time saved`);
    }
  }
  const answered = o.counts.reduce((a, c) => a + c.count, 0);
  table('outcome-table', ['Outcome of answered consults', 'Consults', 'Share'],
    o.counts.map((c) => [OUTCOME[c.outcome] || c.outcome, nf.format(c.count), answered ? pct(c.count / answered) : '–']),
    { numeric: [1, 2] });
}

function renderDaily(r) {
  const days = r.daily;
  const labels = days.map((d) => d.date);
  const tick = (d) => dayName(d, { year: false, weekday: days.length <= 14 });
  const peak = days.reduce((best, d) => (d.requests > (best?.requests ?? -1) ? d : best), null);
  seriesChart($('daily-requests'), {
    title: 'Requests per day',
    summary: peak && peak.requests ? `Busiest day: ${dayName(peak.date)} with ${count(peak.requests, 'request')}.` : 'No requests in this period.',
    labels, values: days.map((d) => d.requests), kind: 'bar', scale: niceScale(Math.max(...days.map((d) => d.requests), 1)),
    format: (v) => nf.format(v), unit: 'requests', tickLabel: tick, rightMargin: 100,
    describe: (i, v) => `${dayName(labels[i])}: ${count(v, 'request')}, ${nf.format(days[i].answered)} answered`,
  });
  const waits = days.map((d) => d.median_wait_ms);
  const known = waits.filter((v) => v != null);
  const worst = days.filter((d) => d.median_wait_ms != null).sort((a, b) => b.median_wait_ms - a.median_wait_ms)[0];
  const waitScale = niceTimeScale(Math.max(...known, 60000));
  seriesChart($('daily-wait'), {
    title: 'Median time to answer, per day',
    summary: worst ? `All urgencies together. Slowest day: ${dayName(worst.date)}, median ${duration(worst.median_wait_ms)}.` : 'No answered requests in this period.',
    labels, values: waits, kind: 'line', scale: waitScale, format: axisTime, unit: 'wait', tickLabel: tick, rightMargin: 100,
    describe: (i, v) => `${dayName(labels[i])}: median wait ${duration(v)} over ${nf.format(days[i].answered)} answered`,
  });
  const shares = days.map((d) => (d.within_target.share == null ? null : d.within_target.share * 100));
  // The guide line is the trust's aim, as in the verdict at the top.
  const aim = r.verdict.target_share;
  const aimLine = +(aim * 100).toFixed(1);
  const missedDays = days.filter((d) => d.within_target.share != null && d.within_target.share + 1e-9 < aim).length;
  const lowest = Math.min(100, aimLine, ...shares.filter((v) => v != null));
  // A line need not start at zero: show from a round 10% below the lowest day.
  const floor = Math.max(0, Math.floor((lowest - 5) / 10) * 10);
  seriesChart($('daily-target'), {
    title: 'Share answered within target, per day',
    summary: days.some((d) => d.within_target.share != null)
      ? `${nf.format(missedDays)} of ${count(days.length, 'day')} had fewer than the aim of ${aimPct(aim)} of requests answered within target (dashed line). The scale starts at ${floor}%.`
      : 'No request could be judged against the target in this period.',
    labels, values: shares, kind: 'line', scale: { min: floor, max: 100, step: (100 - floor) / 4 > 10 ? 25 : (100 - floor) / 2 > 5 ? 10 : 5 },
    format: (v) => `${+v.toFixed(1)}%`, unit: 'share', tickLabel: tick,
    refLines: [{ value: aimLine, label: `${aimPct(aim)} aim` }],
    describe: (i) => `${dayName(labels[i])}: ${pct(days[i].within_target.share)} within target (${nf.format(days[i].within_target.met)} met, ${nf.format(days[i].within_target.missed)} missed)`,
  });
  table('daily-table', ['Day', 'Requests', 'Answered', 'Median wait', 'Within target', 'Met', 'Missed'],
    days.map((d) => [dayName(d.date), nf.format(d.requests), nf.format(d.answered), duration(d.median_wait_ms),
      pct(d.within_target.share), nf.format(d.within_target.met), nf.format(d.within_target.missed)]),
    { numeric: [1, 2, 3, 4, 5, 6] });
}

function bucketLabel(b) {
  const f = (ms) => (ms < 60000 ? `${ms / 1000} s` : `${+(ms / 60000).toFixed(1)} min`);
  if (b.to_ms == null) return `over\n${f(b.from_ms)}`;
  if (b.from_ms === 0) return `up to\n${f(b.to_ms)}`;
  return `${f(b.from_ms).replace(/ (s|min)$/, (b.from_ms < 60000) === (b.to_ms < 60000) ? '' : ' $1')}–\n${f(b.to_ms)}`;
}

function renderDistribution(r) {
  const wrap = $('dist');
  wrap.replaceChildren();
  // Leave out the longest buckets when no request fell in them.
  const used = Math.max(...r.wait_distribution.by_urgency.map((d) => {
    const last = d.answered.findLastIndex((v) => v > 0);
    const overFrom = r.wait_distribution.buckets.findIndex((b) => b.from_ms >= d.target_ms);
    return Math.max(last, overFrom) + 1;
  }));
  const buckets = r.wait_distribution.buckets.slice(0, Math.min(used, r.wait_distribution.buckets.length));
  const labels = buckets.map(bucketLabel);
  const rows = [];
  for (const d of r.wait_distribution.by_urgency) {
    const fig = document.createElement('figure');
    fig.className = 'chart';
    wrap.append(fig);
    const overFrom = buckets.findIndex((b) => b.from_ms >= d.target_ms);
    const within = d.answered.slice(0, overFrom).reduce((a, b) => a + b, 0);
    const answered = d.answered.reduce((a, b) => a + b, 0);
    const u = r.by_urgency.find((x) => x.urgency === d.urgency);
    histogram(fig, {
      title: `${URGENCY[d.urgency]} requests (target ${minutesLabel(d.target_ms)})`,
      summary: answered
        ? `${nf.format(within)} of ${count(answered, 'answered request')} ${were(within)} answered within ${minutesLabel(d.target_ms)}; ${nf.format(d.unanswered_over_target)} ${were(d.unanswered_over_target)} never answered after waiting longer. Overall ${pct(u.within_target.share)} within target.`
        : `No ${URGENCY[d.urgency].toLowerCase()} requests were answered in this period.`,
      bucketLabels: labels, counts: d.answered.slice(0, buckets.length), overFrom, unanswered: d.unanswered_over_target,
      targetLabel: `Target ${minutesLabel(d.target_ms)}`,
      describe: (i, v) => (i === buckets.length
        ? `${nf.format(v)} not answered, after waiting longer than the target`
        : `${nf.format(v)} answered ${labels[i].replace('\n', ' ')} (${i >= overFrom ? 'over' : 'within'} target)`),
    });
    rows.push([URGENCY[d.urgency], ...d.answered.slice(0, buckets.length).map((v) => nf.format(v)), nf.format(d.unanswered_over_target)]);
  }
  table('dist-table', ['Urgency', ...labels.map((l) => l.replace('\n', ' ')), 'Not answered, over target'], rows,
    { numeric: labels.map((_, i) => i + 1).concat(labels.length + 1) });
}

function renderHeatmaps(r) {
  const hm = r.heatmap;
  const rows = hm.weekdays.map((d) => d.slice(0, 3));
  let busiest = null;
  hm.requests.forEach((row, d) => row.forEach((v, h) => { if (v > (busiest?.v ?? 0)) busiest = { d, h, v }; }));
  const hour = (h) => `${String(h).padStart(2, '0')}:00–${String(h).padStart(2, '0')}:59`;
  heatmap($('heat-requests'), {
    title: 'Requests by day of week and hour',
    summary: busiest ? `Busiest: ${hm.weekdays[busiest.d]}s ${hour(busiest.h)}, ${count(busiest.v, 'request')} over the period.` : 'No requests in this period.',
    rows, values: hm.requests, format: (v) => nf.format(v), legend: 'requests',
    describe: (d, h, v) => `${hm.weekdays[d]} ${hour(h)}: ${count(v, 'request')}`,
  });
  let slowest = null;
  hm.median_wait_ms.forEach((row, d) => row.forEach((v, h) => {
    if (v != null && hm.answered[d][h] >= 3 && v > (slowest?.v ?? -1)) slowest = { d, h, v };
  }));
  heatmap($('heat-wait'), {
    title: 'Median time to answer by day of week and hour (minutes:seconds)',
    summary: slowest ? `Longest median wait (hours with at least 3 answered): ${hm.weekdays[slowest.d]}s ${hour(slowest.h)}, ${duration(slowest.v)}.` : 'No answered requests in this period.',
    rows, values: hm.median_wait_ms, format: clock, legend: 'median wait',
    describe: (d, h, v) => `${hm.weekdays[d]} ${hour(h)}: ${v == null ? 'no answered requests' : `median wait ${duration(v)} over ${nf.format(hm.answered[d][h])} answered`}`,
  });
  const hours = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0'));
  const numeric = hours.map((_, i) => i + 1);
  table('heat-requests-table', ['Day', ...hours], hm.requests.map((row, d) => [SHORT_DAYS[d], ...row.map((v) => nf.format(v))]),
    { caption: 'Requests by hour of the day (UK time)', numeric });
  table('heat-wait-table', ['Day', ...hours], hm.median_wait_ms.map((row, d) => [SHORT_DAYS[d], ...row.map((v) => (v == null ? '–' : clock(v)))]),
    { caption: 'Median time to answer (minutes:seconds) by hour of the day (UK time)', numeric });
}

const CLINICIANS_SHOWN = 12;
let showAllClinicians = false;

function renderClinicians(r) {
  const all = r.clinicians;
  const shown = showAllClinicians ? all : all.slice(0, CLINICIANS_SHOWN);
  table('clinician-table', ['Clinician', 'Answered', 'Median time to answer', '9 in 10 within', 'Median call length'],
    shown.map((c) => [c.name, nf.format(c.answered), duration(c.median_wait_ms), duration(c.p90_wait_ms), duration(c.median_call_ms)]),
    { caption: `Clinicians who answered requests in the period, most answers first${shown.length < all.length ? ` (the first ${shown.length} of ${all.length})` : ''}`, numeric: [1, 2, 3, 4] });
  const more = $('clinicians-more');
  more.hidden = all.length <= CLINICIANS_SHOWN;
  more.textContent = showAllClinicians ? `Show the first ${CLINICIANS_SHOWN} only` : `Show all ${all.length} clinicians`;
  more.setAttribute('aria-expanded', String(showAllClinicians));
}

function linkCells(l) {
  if (!l.measured_calls) return ['–', '–', '–', '–'];
  return [
    `${nf.format(l.poor_calls)} of ${nf.format(l.measured_calls)} (${pct(l.poor_share)})`,
    l.median_rtt_ms == null ? '–' : `${nf.format(l.median_rtt_ms)} ms`,
    l.median_loss_pct == null ? '–' : `${l.median_loss_pct.toFixed(1)} %`,
    nf.format(l.relayed_calls),
  ];
}

function renderPeople(r) {
  renderClinicians(r);
  table('station-table', ['Station', 'Site', 'Requests', 'Answered', 'Cancelled', 'Abandoned', 'Median wait', 'Within target', 'Escalated', 'Poor links', 'Journeys avoided'],
    r.stations.map((s) => [s.name, s.site || '–', nf.format(s.requests), nf.format(s.answered), nf.format(s.cancelled),
      nf.format(s.abandoned), duration(s.median_wait_ms), shareCell(s.within_target), nf.format(s.escalated),
      s.link.measured_calls ? `${nf.format(s.link.poor_calls)} of ${nf.format(s.link.measured_calls)}` : '–',
      nf.format(s.journeys_avoided)]),
    { numeric: [2, 3, 4, 5, 6, 8, 9, 10] });
  const links = r.link_by_site;
  table('link-table', ['Site', 'Poor links', 'Median round trip', 'Median loss', 'Relayed (TURN)', 'Audio only'],
    links.map((l) => [l.site || '(no site)', ...linkCells(l), nf.format(l.audio_only_calls)]),
    { caption: links.length ? 'Calls with a quality report, by site, most poor links first' : 'No call quality was reported in this period', numeric: [1, 2, 3, 4, 5] });
}

function render(r) {
  fillChoices(r);
  csvLink(r);
  $('showing').textContent = `${describePeriod(r)}. Times are ${r.timezone === 'Europe/London' ? 'UK time' : r.timezone} (${r.timezone}).`;
  const syn = $('synthetic');
  syn.hidden = !r.headline.synthetic_requests;
  syn.textContent = r.headline.synthetic_requests
    ? `These figures include ${count(r.headline.synthetic_requests, 'synthetic consult')}: generated demonstration history, not real patients.`
    : '';
  $('def-targets').textContent = `Targets depend on urgency: ${r.targets.map((t) => `${URGENCY[t.urgency].toLowerCase()} ${minutesLabel(t.target_ms)}`).join(', ')}. Met: answered within the target. Missed: answered later, or cancelled, abandoned or still waiting after the target passed. Requests cancelled or abandoned before the target passed count neither way. Share = met ÷ (met + missed).`;
  $('filters-summary').textContent = describeChoice(r);
  renderVerdict(r);
  renderSaved(r);
  renderCards(r);
  renderUrgency(r);
  renderOutcomes(r);
  renderDaily(r);
  renderDistribution(r);
  renderHeatmaps(r);
  renderPeople(r);
  for (const wrap of document.querySelectorAll('.table-wrap')) markScrollable(wrap);
}

/**
 * A table wider than its box scrolls sideways: the box is then a named
 * region that takes the keyboard focus, so it can be scrolled with the
 * arrow keys. Checked again whenever a box changes size (a narrower window,
 * or a folded table opened).
 */
function markScrollable(wrap) {
  const scrolls = wrap.scrollWidth > wrap.clientWidth || wrap.scrollHeight > wrap.clientHeight;
  if (scrolls) {
    // Named after its table (the section is already a region named by its
    // heading, and two landmarks must not share a name).
    const caption = wrap.querySelector('caption')?.textContent;
    const heading = wrap.closest('section')?.querySelector('h2')?.textContent;
    wrap.tabIndex = 0;
    wrap.setAttribute('role', 'region');
    wrap.setAttribute('aria-label', `${caption || heading}: table, scrolls sideways`);
  } else {
    wrap.removeAttribute('tabindex');
    wrap.removeAttribute('role');
    wrap.removeAttribute('aria-label');
  }
}

const wrapSizes = new ResizeObserver((entries) => {
  for (const e of entries) markScrollable(e.target);
});
for (const wrap of document.querySelectorAll('.table-wrap')) wrapSizes.observe(wrap);
// A folded table is laid out only once it is unfolded.
for (const d of document.querySelectorAll('details')) {
  d.addEventListener('toggle', () => {
    for (const wrap of d.querySelectorAll('.table-wrap')) markScrollable(wrap);
  });
}

async function init() {
  syncControls();
  wireControls();
  try {
    const me = await getJson('/api/me');
    $('account-name').textContent = me.site && me.display_name && !me.display_name.includes(me.site)
      ? `${me.display_name}, ${me.site}`
      : me.display_name || me.username;
    if (!['manager', 'admin'].includes(me.role)) {
      notForYou(`You are logged in as a ${me.role}.`);
      $('main').setAttribute('aria-busy', 'false');
      return;
    }
  } catch (e) {
    if (e.message === 'not logged in') return;
  }
  await load();
}

init();
