// Where the `crier` command writes: data on stdout, one line at a time; status and errors on
// stderr, prefixed `crier: `. A closed stdout (`crier listen | head -1`) is not an error.

let stdoutClosed = false;
const closedListeners: (() => void)[] = [];

/**
 * Treats a closed stdout (EPIPE) as the reader going away, not as an error. The command's `main`
 * calls it once at start; importing this module registers nothing (the package has no side
 * effects at load).
 */
export function watchStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    // The reader went away: nothing more to write, quietly.
    stdoutClosed = true;
    for (const listener of closedListeners.splice(0)) listener();
  });
}

/** Calls `listener` once when the reader of stdout goes away (EPIPE). */
export function onStdoutClosed(listener: () => void): void {
  if (stdoutClosed) listener();
  else closedListeners.push(listener);
}

export function writeLine(line: string): void {
  if (!stdoutClosed) process.stdout.write(`${line}\n`);
}

/** A status or error line on stderr. */
export function say(message: string): void {
  process.stderr.write(`crier: ${message}\n`);
}
