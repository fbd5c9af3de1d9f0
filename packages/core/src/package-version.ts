/**
 * The version a CLI prints for `--version`: its own package's, read from the
 * package.json at or above the running file. Read at run time rather than
 * compiled in, so the sources (tsx, tests) and the bundled dist/ (where the
 * code may sit in dist/ or dist/chunks/) answer the same, and a version bump
 * needs no rebuild to show.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `version` of the nearest package.json named `name`, looking from the
 * directory of `fromUrl` (pass `import.meta.url`) up to the filesystem root.
 * Throws when there is none: a CLI separated from its package.json is broken.
 */
export function packageVersion(fromUrl: string, name: string): string {
  let dir = dirname(fileURLToPath(fromUrl));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === name && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // No (readable) package.json here: look further up.
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json of ${name} at or above ${fileURLToPath(fromUrl)}`);
    dir = parent;
  }
}
