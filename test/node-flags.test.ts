// The switch's V8 flags (switch/app.ts SWITCH_NODE_FLAGS) are command-line flags: every command that
// starts a switch must give them all, and this Node must take them (a misspelt V8 flag stops node).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SWITCH_NODE_FLAGS } from '../switch/app.js';

const ROOT = new URL('..', import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** The node command line in `text` that runs `entry`, flags included. */
function commandRunning(text: string, entry: string): string {
  const line = text.split('\n').find((l) => l.includes(entry) && /\bnode\s/.test(l));
  if (line === undefined) throw new Error(`no node command running ${entry}`);
  return line;
}

describe('the switch is started with its V8 flags', () => {
  const manifest = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  const commands: Record<string, string> = {
    'npm start (package.json)': commandRunning(manifest.scripts['start'] ?? '', 'switch/start.ts'),
    'the systemd unit (deploy/systemd/cardswitch@.service)': commandRunning(
      read('deploy/systemd/cardswitch@.service'),
      'dist/switch/main.js',
    ),
    "the README's production command": commandRunning(read('README.md'), 'dist/switch/main.js'),
  };

  it.each(Object.entries(commands))('%s gives every flag', (_where, command) => {
    for (const flag of SWITCH_NODE_FLAGS) expect(command.split(/\s+/), `${flag} missing from: ${command}`).toContain(flag);
  });

  it('this Node takes them', () => {
    const run = spawnSync(process.execPath, [...SWITCH_NODE_FLAGS, '-e', 'process.stdout.write("started")'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('started');
  });
});
