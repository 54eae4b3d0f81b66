#!/usr/bin/env node
// Summarises V8 CPU profiles (node --cpu-prof: *.cpuprofile) as markdown tables: self time
// by function and by module, top N, and the idle, GC and "program" (native, outside
// JavaScript) shares. Several files are summed (e.g. every profile of one sidecar).
// Used by bench/sync-replication.sh with BENCH_CPU_PROF=DIR; also on its own, to compare
// the sync path's profile before and after a change.
// Usage: node bench/cpu-profile-summary.mjs [--top N] [--title TEXT] [--between FROM TO] FILE|DIR...
//   a DIR stands for the *.cpuprofile files in it; --between keeps the samples taken from
//   FROM to TO, in µs of the monotonic clock (process.hrtime.bigint() / 1000n), which is
//   the clock of V8's profiles: a phase cut out of a whole-life profile
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
let top = 15;
let title = '';
let between = null;
const inputs = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--top') top = Number(argv[++i]);
  else if (argv[i] === '--title') title = argv[++i] ?? '';
  else if (argv[i] === '--between') between = [Number(argv[++i]), Number(argv[++i])];
  else inputs.push(argv[i]);
}
if (inputs.length === 0 || !(top > 0) || (between !== null && !(between[0] < between[1]))) {
  console.error('usage: cpu-profile-summary.mjs [--top N] [--title TEXT] [--between FROM_US TO_US] FILE|DIR...');
  process.exit(2);
}

const files = inputs.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(p, f))
    : [p],
);
if (files.length === 0) {
  console.error(`cpu-profile-summary.mjs: no .cpuprofile in ${inputs.join(' ')}`);
  process.exit(1);
}

// The module a script URL belongs to: a package for node_modules, the path under the
// project for its own files, node:internal/... for Node's.
function moduleOf(url) {
  if (url === '') return '(native)';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (path.startsWith('/')) path = relative(ROOT, path);
  return path;
}

const SPECIAL = new Set(['(idle)', '(garbage collector)', '(program)', '(root)']);
const byFunction = new Map();
const byModule = new Map();
let total = 0;
const special = { '(idle)': 0, '(garbage collector)': 0, '(program)': 0 };
const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  // timeDeltas[i] is the time since the previous sample: it belongs to sample i, taken at
  // startTime plus the deltas so far.
  let at = prof.startTime;
  prof.samples.forEach((id, i) => {
    at += prof.timeDeltas[i] ?? 0;
    if (between === null || (at >= between[0] && at <= between[1])) add(self, id, prof.timeDeltas[i] ?? 0);
  });
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    total += us;
    if (SPECIAL.has(functionName)) {
      if (functionName in special) special[functionName] += us;
      continue;
    }
    const mod = moduleOf(url);
    add(byFunction, `${functionName || '(anonymous)'} ${mod}:${lineNumber + 1}`, us);
    add(byModule, mod, us);
  }
}

if (total === 0 && between !== null) {
  // An instance killed with -9 writes no profile: its window finds no samples.
  console.log([...(title ? [`#### ${title}`, ''] : []), `no samples between ${between[0]} and ${between[1]} µs in ${files.length} profile(s) (a process killed with -9 writes none)`].join('\n'));
  process.exit(0);
}
const busy = total - special['(idle)'];
const pct = (us, of) => (of > 0 ? ((100 * us) / of).toFixed(1) : '0.0');
const ms = (us) => (us / 1000).toFixed(0);
const table = (head, map) => {
  const rows = [`| ${head} | self ms | % of busy |`, '| --- | ---: | ---: |'];
  for (const [k, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) rows.push(`| \`${k}\` | ${ms(us)} | ${pct(us, busy)} |`);
  return rows.join('\n');
};

const out = [];
if (title) out.push(`#### ${title}`, '');
out.push(
  `${files.length} profile(s), ${(total / 1e6).toFixed(1)} s sampled: idle ${pct(special['(idle)'], total)}%, ` +
    `busy ${(busy / 1e6).toFixed(1)} s, of which garbage collector ${pct(special['(garbage collector)'], busy)}% and ` +
    `"(program)" (native code outside JavaScript) ${pct(special['(program)'], busy)}%.`,
  '',
  table(`module (top ${top})`, byModule),
  '',
  table(`function (top ${top})`, byFunction),
);
console.log(out.join('\n'));
