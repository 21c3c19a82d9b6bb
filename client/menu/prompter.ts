// The menu's conversation with the terminal, on node:readline. Lines are queued as they arrive, so a
// script piped into stdin (tests, `printf '1\n5\n0\n0\n' | kds client menu ...`) is read in order even
// while the menu is busy on the network; `ask` takes the next queued line or waits for one.
//
// End of input (Ctrl-D on a terminal, the end of a pipe) and Ctrl-C make `ask` throw EndOfInput, which
// the menu turns into a clean exit. Notices that arrive while a question is open (a key delivered, a
// message) are printed above the prompt, which is then shown again with what was typed so far.
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

/** Thrown by `ask` once the input has ended: `reason` says how. */
export class EndOfInput extends Error {
  constructor(readonly reason: 'eof' | 'interrupt') {
    super(reason === 'eof' ? 'end of input' : 'interrupted');
    this.name = 'EndOfInput';
  }
}

export interface Prompter {
  /** Show `prompt`, return the next line (without its newline). Throws EndOfInput. */
  ask(prompt: string): Promise<string>;
  /** Print lines (the menu's normal output). */
  print(...lines: string[]): void;
  /** Print a line that arrived on its own (a push), keeping an open prompt intact. */
  notice(line: string): void;
  /** Stop reading: a pending or later `ask` throws EndOfInput('interrupt'). */
  interrupt(): void;
  close(): void;
}

export interface PrompterStreams {
  input: Readable & { isTTY?: boolean };
  output: Writable & { isTTY?: boolean };
}

export function createPrompter({ input, output }: PrompterStreams): Prompter {
  const terminal = input.isTTY === true && output.isTTY === true;
  const rl: Interface = createInterface({ input, output, terminal });
  const queue: string[] = [];
  let ended: EndOfInput | undefined;
  let waiting:
    | { prompt: string; resolve: (line: string) => void; reject: (e: EndOfInput) => void }
    | undefined;

  const write = (text: string): void => {
    output.write(text);
  };

  rl.on('line', (line: string) => {
    if (waiting !== undefined) {
      const w = waiting;
      waiting = undefined;
      // A piped answer is not echoed by any terminal: echo it, so the transcript reads like a session.
      if (!terminal) write(`${line}\n`);
      w.resolve(line);
    } else {
      queue.push(line);
    }
  });
  const end = (reason: 'eof' | 'interrupt'): void => {
    ended ??= new EndOfInput(reason);
    if (waiting !== undefined) {
      const w = waiting;
      waiting = undefined;
      write('\n');
      w.reject(ended);
    }
  };
  rl.on('close', () => end('eof'));
  // Ctrl-C on a terminal: readline catches it before the process would see SIGINT.
  rl.on('SIGINT', () => {
    end('interrupt');
    rl.close();
  });

  return {
    ask(prompt) {
      const queued = queue.shift();
      if (queued !== undefined) {
        // Typed (or piped) ahead while the menu was busy: show which question it answers.
        write(`${prompt}${queued}\n`);
        return Promise.resolve(queued);
      }
      if (ended !== undefined) return Promise.reject(ended);
      return new Promise<string>((resolve, reject) => {
        waiting = { prompt, resolve, reject };
        if (terminal) {
          rl.setPrompt(prompt);
          rl.prompt();
        } else {
          write(prompt);
        }
      });
    },
    print(...lines) {
      if (lines.length > 0) write(`${lines.join('\n')}\n`);
    },
    notice(line) {
      if (waiting === undefined) {
        write(`${line}\n`);
        return;
      }
      if (terminal) {
        // Clear the prompt line, print the notice, then redraw the prompt with the partial input.
        write(`\r\u001b[2K${line}\n`);
        rl.prompt(true);
      } else {
        write(`\n${line}\n${waiting.prompt}`);
      }
    },
    interrupt() {
      end('interrupt');
      rl.close();
    },
    close() {
      rl.close();
    },
  };
}
