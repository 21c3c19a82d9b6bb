// yargs' usage errors, tidied for people: with camel-case expansion on, an unknown `--bogus-flag` is
// reported twice ("Unknown arguments: bogus-flag, bogusFlag"); only the spelling that was typed is kept.
// A mistyped command gets only "Did you mean client?" from yargs: the word that was not understood is
// named first ("unknown command "clinet"; did you mean client?").
export function tidyUsageMessage(message: string, args: readonly string[] = []): string {
  const suggestion = /^Did you mean (.+)\?$/.exec(message);
  if (suggestion !== null) {
    const typo = closestWord(args, suggestion[1]!);
    return typo === undefined
      ? `unknown command; did you mean ${suggestion[1]}?`
      : `unknown command ${JSON.stringify(typo)}; did you mean ${suggestion[1]}?`;
  }
  const m = /^(Unknown arguments?): (.*)$/.exec(message);
  if (m === null) return message;
  const names = m[2]!.split(', ');
  const kebab = new Set(names.filter((n) => n.includes('-')));
  const kept = names.filter(
    (n) => !(/[A-Z]/.test(n) && kebab.has(n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))),
  );
  return `${kept.length === 1 ? 'Unknown argument' : 'Unknown arguments'}: ${kept.join(', ')}`;
}

/** The command-line word (not a flag) nearest to `target` by edit distance, other than `target` itself. */
function closestWord(args: readonly string[], target: string): string | undefined {
  let best: { word: string; distance: number } | undefined;
  for (const word of args) {
    if (word.startsWith('-') || word === target) continue;
    const distance = editDistance(word, target);
    if (best === undefined || distance < best.distance) best = { word, distance };
  }
  return best?.word;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
