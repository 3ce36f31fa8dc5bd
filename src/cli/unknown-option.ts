/**
 * How a usage error names an option the command does not know. A value typed without its space or `=`
 * (`--tokenSECRET`) makes one unknown option of the name and the value, and printing it whole would print
 * the value: an option that starts with a known one's name is shown as that name, and any other only when it
 * is a short run of letters and dashes.
 */
export function unknownOptionText(arg: string, known: Iterable<string>): string {
  const longestFirst = [...known].sort((a, b) => b.length - a.length);
  for (const name of longestFirst) {
    if (name.startsWith('--') && arg.length > name.length && arg.startsWith(name)) return `${name}… (its value goes after a space or =)`;
  }
  return /^--?[A-Za-z-]{1,24}$/.test(arg) ? arg : '(not shown: it may hold a value)';
}
