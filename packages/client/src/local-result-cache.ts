/**
 * The client's optional in-process result cache, in front of Redis: a
 * repeated input is answered without a round trip. Entries are output JSON
 * text (each hit parses its own copy, so a caller mutating its output cannot
 * change another's), bounded by count, by bytes (UTF-16 length of the text
 * plus the key, a close stand-in for its memory) and by age.
 *
 * It can only be as fresh as its owner makes it: the client drops every
 * entry when the model's cache epoch changes (any client's `clearCache`) or
 * when workers start serving another model version or quantization; both
 * are read by the client's tick, once a second.
 */
interface Entry {
  json: string;
  expiresAt: number;
  size: number;
}

export class LocalResultCache {
  /** Insertion order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly o: { maxEntries: number; maxBytes: number; ttlMs: number }) {}

  get size(): number {
    return this.entries.size;
  }

  /** The output JSON of `key`, or undefined (missing or expired). */
  get(key: string, now = Date.now()): string | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) {
      this.bytes -= e.size;
      return undefined;
    }
    this.entries.set(key, e);
    return e.json;
  }

  put(key: string, json: string, now = Date.now()): void {
    const size = json.length + key.length;
    if (size > this.o.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.size;
    }
    this.entries.set(key, { json, expiresAt: now + this.o.ttlMs, size });
    this.bytes += size;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.o.maxEntries && this.bytes <= this.o.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.size;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
