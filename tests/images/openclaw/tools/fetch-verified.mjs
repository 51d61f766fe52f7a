// fetch-verified.mjs URL INTEGRITY DEST
// Downloads URL with Node's own fetch and keeps it only if it matches an npm-style SRI string
// ("sha512-<base64>"). Used to bring a pinned npm into the build stage: Debian's `npm` package would pull
// ~80 node-* packages and a different npm than the one the lockfile was written with.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const [url, integrity, dest] = process.argv.slice(2);
if (!url || !integrity || !dest) {
  console.error('usage: fetch-verified.mjs URL INTEGRITY DEST');
  process.exit(2);
}
const dash = integrity.indexOf('-');
const algorithm = integrity.slice(0, dash);
const expected = integrity.slice(dash + 1);

const response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
if (!response.ok) {
  console.error(`fetch-verified: GET ${url} -> HTTP ${response.status}`);
  process.exit(1);
}
const body = Buffer.from(await response.arrayBuffer());
const actual = createHash(algorithm).update(body).digest('base64');
if (actual !== expected) {
  console.error(`fetch-verified: ${url} integrity mismatch: expected ${integrity}, got ${algorithm}-${actual}`);
  process.exit(1);
}
writeFileSync(dest, body);
console.log(`fetch-verified: ${url} (${body.length} bytes) ok`);
