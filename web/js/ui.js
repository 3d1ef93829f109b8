// Small DOM helpers shared by every page. Text always goes in through
// textContent (never innerHTML), so nothing a user typed can become markup.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Builds an element: el('p', {class: 'x', text: 'hello'}, child, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = tag === 'svg' || tag === 'use'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.setAttribute('class', value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children, skipping null/undefined/false ones. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** An icon from the sprite, hidden from screen readers (the label says it). */
export function icon(name, extraClass = '') {
  const svg = el('svg', { class: `icon ${extraClass}`.trim(), 'aria-hidden': 'true', focusable: 'false' });
  svg.append(el('use', { href: `/icons.svg#${name}` }));
  return svg;
}

/** Points an existing <svg><use></svg> at another icon. */
export function setIcon(svg, name) {
  const use = svg.querySelector('use');
  if (use) use.setAttribute('href', `/icons.svg#${name}`);
}

/** 75000 -> "1:15"; 3725000 -> "1:02:05". */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** 75000 -> "1 minute 15 seconds", for screen readers. */
export function spokenDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  const parts = [];
  if (m > 0) parts.push(`${m} minute${m === 1 ? '' : 's'}`);
  if (s > 0 || m === 0) parts.push(`${s} second${s === 1 ? '' : 's'}`);
  return parts.join(' ');
}

export function clockTime(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

/** Says something to screen readers through the page's live regions. */
export function announce(text, { assertive = false } = {}) {
  const region = document.getElementById(assertive ? 'live-assertive' : 'live-polite');
  if (!region) return;
  // Clearing first makes a repeated message be read again.
  region.textContent = '';
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/**
 * Shows one view (a <section data-view>) and hides the others. Keyboard
 * and screen-reader users are taken to the new view (its first
 * `[data-focus]`, else its heading) when their focus was in the old one.
 */
export function showView(name) {
  let shown = null;
  for (const section of $$('main [data-view]')) {
    section.hidden = section.dataset.view !== name;
    if (!section.hidden) shown = section;
  }
  const changed = document.body.dataset.screen !== name;
  if (changed) window.scrollTo(0, 0);
  document.body.dataset.screen = name;
  const active = document.activeElement;
  const lost = !active || active === document.body || !!active.closest('[hidden]');
  if (changed && shown && lost) {
    const target = shown.querySelector('[data-focus]') || shown.querySelector('h1');
    if (target) {
      if (!target.hasAttribute('tabindex') && !target.matches('button, input, a[href]')) target.setAttribute('tabindex', '-1');
      target.focus({ preventScroll: true });
    }
  }
}

export const URGENCY = {
  immediate: { label: 'Immediate', hint: 'Needs a clinician now', icon: 'alert' },
  urgent: { label: 'Urgent', hint: 'Within minutes', icon: 'clock' },
  routine: { label: 'Routine', hint: 'Advice when someone is free', icon: 'info' },
};

export const OUTCOMES = {
  managed_locally: { label: 'Managed locally in the MIU', hint: 'Treated at the MIU: no journey to A&E' },
  transfer_to_ed: { label: 'Transfer to A&E', hint: 'The patient travels to A&E' },
  referred_elsewhere: { label: 'Referred elsewhere', hint: 'GP, fracture clinic, another specialty' },
  ambulance: { label: 'Ambulance', hint: 'Emergency ambulance requested' },
  technical_failure: { label: 'Technical failure', hint: 'The call could not be held properly' },
};

export const END_REASONS = {
  hung_up_by_station: (peer, mine) => (mine ? 'You ended the call.' : `${peer} ended the call.`),
  hung_up_by_clinician: (peer, mine) => (mine ? 'You ended the call.' : `${peer} ended the call.`),
  station_disconnected: () => 'The call ended: the MIU station lost its connection for too long.',
  clinician_disconnected: () => 'The call ended: the clinician lost their connection for too long.',
};

/**
 * What the server accepts in the forms, until it says (`welcome.limits`).
 * The protocol's own figures (`MAX_REASON_CHARS` and the rest).
 */
const FORM_LIMITS_FALLBACK = { reasonMaxChars: 200, noteMaxChars: 500, patientRefMaxChars: 24 };

/**
 * The server's limits on what the forms send, from `welcome.limits`: each
 * figure it did not send (an older server) is the fallback. The local
 * reference's pattern and hint are null where it sent none (or an empty
 * one): `/api/me` has them too.
 */
export function formLimits(limits) {
  const l = limits && typeof limits === 'object' ? limits : {};
  const count = (v, fallback) => (Number.isInteger(v) && v > 0 ? v : fallback);
  const words = (v) => (typeof v === 'string' && v.trim() ? v : null);
  return {
    reasonMaxChars: count(l.reason_max_chars, FORM_LIMITS_FALLBACK.reasonMaxChars),
    noteMaxChars: count(l.note_max_chars, FORM_LIMITS_FALLBACK.noteMaxChars),
    patientRefMaxChars: count(l.patient_ref_max_chars, FORM_LIMITS_FALLBACK.patientRefMaxChars),
    patientRefPattern: words(l.patient_ref_pattern),
    patientRefHint: words(l.patient_ref_hint),
  };
}

/** The protocol's own rule (`validate_patient_ref`): letters, digits, space, - and /, with a digit. */
export function patientRefProblem(value, maxChars = FORM_LIMITS_FALLBACK.patientRefMaxChars) {
  const ref = value.trim();
  if (ref === '') return null;
  if (ref.length > maxChars) return `Use at most ${maxChars} characters.`;
  if (!/^[A-Za-z0-9 \-/]+$/.test(ref)) return 'Use only letters, digits, spaces, "-" and "/".';
  if (!/[0-9]/.test(ref)) return 'A reference must contain a digit, e.g. MIU-0412. Never enter the patient\u2019s name.';
  return null;
}

/** Compiles a pattern as the server matches it (the whole reference), or null. */
function wholeMatch(pattern, flags) {
  try {
    return new RegExp(`^(?:${pattern})$`, flags);
  } catch {
    return null;
  }
}

/**
 * The trust's local-reference rule (`patient_ref_pattern`,
 * `patient_ref_hint`, `patient_ref_max_chars`: from `welcome.limits`, else
 * `/api/me`): the server refuses any reference it does not match.
 * `problem(value)` says what is wrong (null: fine, or empty); `htmlPattern`
 * is the pattern for the input's `pattern` attribute when the browser can
 * use it there (it compiles that with the `v` flag), else null.
 */
export function patientRefRule(pattern, hint, maxChars = FORM_LIMITS_FALLBACK.patientRefMaxChars) {
  const source = typeof pattern === 'string' && pattern ? pattern : null;
  const regex = source ? wholeMatch(source, 'u') || wholeMatch(source, '') : null;
  let htmlPattern = null;
  if (source) {
    try {
      htmlPattern = wholeMatch(source, 'v') ? source : null;
    } catch {
      htmlPattern = null; // no `v` flag in this browser
    }
  }
  const words = typeof hint === 'string' && hint.trim() ? hint.trim().replace(/[.\s]+$/, '') : null;
  return {
    hint: words,
    htmlPattern,
    problem(value) {
      const basic = patientRefProblem(value, maxChars);
      if (basic) return basic;
      const ref = value.trim();
      if (ref === '' || !regex || regex.test(ref)) return null;
      return words
        ? `A local reference is ${words}.`
        : 'This is not how a local reference looks here. Check the MIU attendance number; never enter the patient\u2019s name.';
    },
  };
}

/**
 * A two-step button for actions that are hard to undo (ending a call).
 * The first press arms it for a few seconds; the second press acts.
 * Optional: `needed()` (false: act on the first press, nothing to lose),
 * `spoken()` (what a screen reader hears when armed), and `onArm` /
 * `onDisarm` (to show and hide a visible explanation).
 */
export function confirmButton(button, { armedLabel, action, timeoutMs = 4000, needed = null, spoken = null, onArm = null, onDisarm = null }) {
  const label = button.querySelector('.label');
  let original = label ? label.textContent : button.textContent;
  let timer = null;
  const disarm = () => {
    const wasArmed = timer !== null;
    window.clearTimeout(timer);
    timer = null;
    button.classList.remove('armed');
    if (!wasArmed) return;
    if (label) label.textContent = original; else button.textContent = original;
    if (onDisarm) onDisarm();
  };
  button.addEventListener('click', () => {
    if (timer === null) {
      if (needed && !needed()) {
        action();
        return;
      }
      // The label as it is now (the page may have changed it since).
      original = label ? label.textContent : button.textContent;
      button.classList.add('armed');
      if (label) label.textContent = armedLabel; else button.textContent = armedLabel;
      announce(spoken ? spoken() : `${armedLabel}: press again to confirm.`, { assertive: true });
      timer = window.setTimeout(disarm, timeoutMs);
      if (onArm) onArm();
      return;
    }
    disarm();
    action();
  });
  return disarm;
}
