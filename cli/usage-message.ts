// yargs' usage errors, tidied for people: with camel-case expansion on, an unknown `--bogus-flag` is
// reported twice ("Unknown arguments: bogus-flag, bogusFlag"); only the spelling that was typed is kept.
export function tidyUsageMessage(message: string): string {
  const m = /^(Unknown arguments?): (.*)$/.exec(message);
  if (m === null) return message;
  const names = m[2]!.split(', ');
  const kebab = new Set(names.filter((n) => n.includes('-')));
  const kept = names.filter(
    (n) => !(/[A-Z]/.test(n) && kebab.has(n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))),
  );
  return `${kept.length === 1 ? 'Unknown argument' : 'Unknown arguments'}: ${kept.join(', ')}`;
}
