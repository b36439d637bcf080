// Numbers as a person reads them, the way collector report's tables write
// them, so that a figure reads the same on the page and in the terminal.

const binaryUnits = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

// formatBytes writes an amount of bytes, or bytes a second, in binary
// units with two decimals: "748 B", "1.46 KiB", "3.00 GiB".
export function formatBytes(v) {
  if (v < 1023.995) {
    return v.toFixed(0) + ' B';
  }
  v /= 1024;
  let unit = 0;
  // Compared with what two decimals round to, so that just under a MiB
  // reads "1.00 MiB" rather than "1024.00 KiB".
  while (v >= 1023.995 && unit < binaryUnits.length - 1) {
    v /= 1024;
    unit++;
  }
  return v.toFixed(2) + ' ' + binaryUnits[unit];
}

// formatRate writes bytes over a number of seconds as an average rate.
export function formatRate(bytes, seconds) {
  return seconds > 0 ? formatBytes(bytes / seconds) + '/s' : '–';
}

// formatTick writes an axis label: as formatBytes, without the zeros of a
// round value ("512 MiB", "1 GiB", "1.5 GiB").
export function formatTick(v) {
  return formatBytes(v).replace(/(\.\d*?)0+ /, '$1 ').replace('. ', ' ');
}

// binaryTicks are the steps an axis of bytes may take: powers of two of
// each unit, so that ticks fall on values that read round in binary units.
export const binaryTicks = [0, 1, 2, 3, 4, 5, 6].flatMap((p) =>
  [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * 1024 ** p));

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

// formatTime writes an RFC 3339 time as a local date and time.
export function formatTime(rfc3339) {
  return dateTime.format(new Date(rfc3339));
}

// formatClock writes an RFC 3339 time as a local time of day.
export function formatClock(rfc3339) {
  return timeOnly.format(new Date(rfc3339));
}

// formatMoney writes an amount of money with two decimals, as collector
// report does: a loss that rounds to nothing is 0.00, not -0.00.
export function formatMoney(v) {
  const s = v.toFixed(2);
  return s === '-0.00' ? '0.00' : s;
}

const bitUnits = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];

// formatBits writes bits a second in decimal units, as providers bill
// them and collector report writes them: "950 bit/s", "12.35 Mbit/s".
export function formatBits(v) {
  let unit = 0;
  while (v >= 999.995 && unit < bitUnits.length - 1) {
    v /= 1000;
    unit++;
  }
  return (unit === 0 ? v.toFixed(0) : v.toFixed(2)) + ' ' + bitUnits[unit];
}
