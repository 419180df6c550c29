#!/usr/bin/env node
// Measures what a first visit downloads: index.html plus the scripts and styles it references
// (the initial files), raw and gzipped. Level 6 is a common nginx `gzip_comp_level` in
// practice; nginx's own default is 1, so that figure is shown too.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const dir = resolve(fileURLToPath(new URL('.', import.meta.url)), '../dist/dashboard/browser');
const html = readFileSync(join(dir, 'index.html'), 'utf8');
const refs = [...html.matchAll(/(?:src|href)="([^"]+\.(?:js|css))"/g)].map((m) => m[1]);
const files = ['index.html', ...new Set(refs)];

let raw = 0;
let gz6 = 0;
let gz1 = 0;
for (const f of files) {
  const data = readFileSync(join(dir, f));
  const a = gzipSync(data, { level: 6 }).length;
  const b = gzipSync(data, { level: 1 }).length;
  raw += data.length;
  gz6 += a;
  gz1 += b;
  console.log(`${f.padEnd(28)} ${String(data.length).padStart(8)} B raw ${String(a).padStart(7)} B gzip-6 ${String(b).padStart(7)} B gzip-1`);
}
const kb = (n) => (n / 1000).toFixed(1) + ' kB';
console.log(`initial total: ${kb(raw)} raw, ${kb(gz6)} gzip-6, ${kb(gz1)} gzip-1`);
