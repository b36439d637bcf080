// Light and dark: the system's choice (prefers-color-scheme) unless the
// toggle chose one, remembered in the browser. The stylesheet gives each
// colour in both schemes with light-dark(); the charts, drawn on a canvas,
// ask for the colours resolved.

const choices = ['auto', 'light', 'dark'];
const stored = 'collector-theme';
const listeners = [];

// initTheme applies the remembered choice and makes button cycle through
// auto, light and dark.
export function initTheme(button) {
  apply(localStorage.getItem(stored) || 'auto', button);
  button.addEventListener('click', () => {
    const next = choices[(choices.indexOf(button.dataset.theme) + 1) % choices.length];
    localStorage.setItem(stored, next);
    apply(next, button);
    changed();
  });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', changed);
}

function apply(choice, button) {
  if (!choices.includes(choice)) {
    choice = 'auto';
  }
  if (choice === 'auto') {
    delete document.documentElement.dataset.theme;
  } else {
    document.documentElement.dataset.theme = choice;
  }
  button.dataset.theme = choice;
  button.textContent = 'Theme: ' + choice;
}

function changed() {
  for (const f of listeners) {
    f();
  }
}

// onThemeChange calls f whenever the colours in use change.
export function onThemeChange(f) {
  listeners.push(f);
}

// color returns the colour the custom property --name stands for in the
// scheme in use, as the canvas takes it.
export function color(name) {
  const probe = document.createElement('span');
  probe.hidden = true;
  probe.style.color = `var(--${name})`;
  document.body.append(probe);
  const c = getComputedStyle(probe).color;
  probe.remove();
  return c;
}
