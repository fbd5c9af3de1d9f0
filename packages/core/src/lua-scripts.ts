/**
 * The Lua script loader. Scripts live as files in `./lua/` beside this
 * module (copied to `dist/lua/` by `scripts/copy-lua.mjs` on build):
 *
 * - `<name>-<numKeys>.lua` takes a fixed number of KEYS;
 * - `<name>-var.lua` takes a variable number, given at call time;
 * - `includes/<fragment>.lua` holds shared functions, pulled in by a line
 *   `-- @include <fragment>.lua`. Includes are resolved at load time,
 *   recursively, each fragment once per script (so fragments may include
 *   what they use without defining a function twice); a cycle is an error.
 *
 * Every file opens with a comment header listing KEYS[i], ARGV[i] and the
 * return values (fragments: the functions they define); a test checks it.
 *
 * Scripts are registered with ioredis `defineCommand` under a versioned
 * name, `inferq_<name>_v<first 8 hex of sha1(lua)>`, so two releases with
 * different script bodies can share one Redis and one connection. ioredis
 * then sends EVALSHA and falls back to EVAL on NOSCRIPT, also in pipelines.
 *
 * Argument errors inside scripts (caller bugs) are Redis error replies; no
 * script here returns negative status codes yet. A script family that needs
 * them should add one code enum and one decoding function here.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChainableCommander, RedisKey, RedisValue } from 'ioredis';
import type { RedisClient } from './redis-connection.js';

/** A script ready for `defineCommand`. */
export interface LuaScript {
  /** The file name without the `-<numKeys>.lua` suffix, e.g. `lru-get`. */
  readonly name: string;
  /** KEYS count from the file name; `undefined` for `-var` scripts. */
  readonly numberOfKeys: number | undefined;
  /** The script body with every `-- @include` resolved. */
  readonly lua: string;
  /** The versioned command name it is registered under, e.g. `inferq_lru_get_v1a2b3c4d`. */
  readonly commandName: string;
}

/** A connection scripts can be defined on: a single node or a cluster (keys of one hash tag). */
export type ScriptHost = RedisClient;

/** The folder of this package's scripts. */
export const LUA_DIR: URL = new URL('./lua/', import.meta.url);

const SCRIPT_FILE = /^([a-z0-9]+(?:-[a-z0-9]+)*)-(\d+|var)\.lua$/;
const INCLUDE_FILE = /^[a-z0-9]+(?:-[a-z0-9]+)*\.lua$/;
const INCLUDE_LINE = /^\s*--\s*@include\s+(\S+)\s*$/;

/** Reads and resolves the scripts of one folder, caching each resolved script. */
export class LuaScriptLoader {
  readonly dir: URL;
  private files: Map<string, { file: string; numberOfKeys: number | undefined }> | undefined;
  private readonly cache = new Map<string, LuaScript>();

  /** @param dir Folder of the scripts, as a `file:` URL ending in `/`; includes are in its `includes/` subfolder. */
  constructor(dir: URL) {
    this.dir = dir;
  }

  /** Names of every script in the folder (not the includes). */
  names(): string[] {
    return [...this.index().keys()].sort();
  }

  load(name: string): LuaScript {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const entry = this.index().get(name);
    if (!entry) {
      throw new Error(
        `No Lua script '${name}' in ${fileURLToPath(this.dir)}: expected a file ${name}-<numKeys>.lua or ${name}-var.lua ` +
          `(known: ${this.names().join(', ') || 'none'}). When running from dist, the build must copy src/lua (scripts/copy-lua.mjs).`,
      );
    }
    const source = readFileSync(new URL(entry.file, this.dir), 'utf8');
    const lua = this.resolveIncludes(source, entry.file, new Set(), []);
    const sha = createHash('sha1').update(lua).digest('hex');
    const script: LuaScript = Object.freeze({
      name,
      numberOfKeys: entry.numberOfKeys,
      lua,
      commandName: `inferq_${name.replaceAll('-', '_')}_v${sha.slice(0, 8)}`,
    });
    this.cache.set(name, script);
    return script;
  }

  private index(): Map<string, { file: string; numberOfKeys: number | undefined }> {
    if (this.files) return this.files;
    const files = new Map<string, { file: string; numberOfKeys: number | undefined }>();
    for (const file of readdirSync(this.dir)) {
      const m = SCRIPT_FILE.exec(file);
      if (!m) continue;
      const [, name = '', keys = ''] = m;
      const previous = files.get(name);
      if (previous) throw new Error(`Two Lua scripts are named '${name}': ${previous.file} and ${file}.`);
      files.set(name, { file, numberOfKeys: keys === 'var' ? undefined : Number(keys) });
    }
    this.files = files;
    return files;
  }

  /**
   * Replaces each `-- @include` line by the fragment's resolved text, or by a
   * marker comment when the script already holds that fragment. `included`
   * spans the whole script; `stack` is the current include chain (for cycles).
   */
  private resolveIncludes(source: string, file: string, included: Set<string>, stack: string[]): string {
    return source
      .split('\n')
      .map((line) => {
        const m = INCLUDE_LINE.exec(line);
        if (!m) return line;
        const fragment = m[1] ?? '';
        if (!INCLUDE_FILE.test(fragment)) {
          throw new Error(`${file}: bad include '${fragment}': expected a file name like lru-put.lua in includes/.`);
        }
        if (stack.includes(fragment) || fragment === file) {
          throw new Error(`Lua include cycle: ${[...stack, file, fragment].join(' -> ')}`);
        }
        if (included.has(fragment)) return `-- (${fragment} already included)`;
        included.add(fragment);
        let text: string;
        try {
          text = readFileSync(new URL(`includes/${fragment}`, this.dir), 'utf8');
        } catch (cause) {
          throw new Error(`${file}: included fragment includes/${fragment} was not found in ${fileURLToPath(this.dir)}.`, { cause });
        }
        const body = this.resolveIncludes(text, fragment, included, [...stack, file]);
        return `-- begin include ${fragment}\n${body.trimEnd()}\n-- end include ${fragment}`;
      })
      .join('\n');
  }
}

const packageLoader = new LuaScriptLoader(LUA_DIR);

/** One of this package's scripts, resolved and cached. */
export function loadLuaScript(name: string): LuaScript {
  return packageLoader.load(name);
}

/** Per connection: script name -> the script defined on it. A WeakMap so closed connections are not kept. */
const definedScripts = new WeakMap<ScriptHost, Map<string, LuaScript>>();

type ScriptCommand = (...args: Array<RedisKey | RedisValue>) => unknown;

function define(redis: ScriptHost, script: LuaScript): LuaScript {
  let scripts = definedScripts.get(redis);
  if (!scripts) {
    scripts = new Map();
    definedScripts.set(redis, scripts);
  }
  if (scripts.get(script.name)?.commandName !== script.commandName) {
    redis.defineCommand(
      script.commandName,
      script.numberOfKeys === undefined ? { lua: script.lua } : { lua: script.lua, numberOfKeys: script.numberOfKeys },
    );
    scripts.set(script.name, script);
  }
  return script;
}

/** The script `name` on this connection: the one defined on it, else this package's (defined now). */
function scriptOn(redis: ScriptHost, name: string): LuaScript {
  return definedScripts.get(redis)?.get(name) ?? define(redis, loadLuaScript(name));
}

function commandOf(target: object, script: LuaScript): ScriptCommand | undefined {
  const fn: unknown = (target as Record<string, unknown>)[script.commandName];
  return typeof fn === 'function' ? (fn as ScriptCommand) : undefined;
}

/**
 * The argument list ioredis expects: `keys..., args...` when the command was
 * defined with `numberOfKeys` (ioredis prepends the count itself), and
 * `numKeys, keys..., args...` for a `-var` script defined without it.
 */
function commandArgs(script: LuaScript, keys: readonly RedisKey[], args: readonly RedisValue[]): Array<RedisKey | RedisValue> {
  if (script.numberOfKeys === undefined) return [keys.length, ...keys, ...args];
  if (keys.length !== script.numberOfKeys) {
    throw new TypeError(`Lua script '${script.name}' takes ${script.numberOfKeys} KEYS, got ${keys.length}.`);
  }
  return [...keys, ...args];
}

/** Calls and pipelines restricted to the scripts defined by one `defineLuaCommands` call. */
export interface LuaCommands<N extends string> {
  /** Runs script `name`; resolves to its reply, rejects with the Redis error. */
  call(name: N, keys: readonly RedisKey[], args: readonly RedisValue[]): Promise<unknown>;
  /** Queues script `name` on a pipeline or `multi()` of the same connection; returns the pipeline. */
  pipeline(pipeline: ChainableCommander, name: N, keys: readonly RedisKey[], args: readonly RedisValue[]): ChainableCommander;
}

/**
 * Defines each named script on `redis` (once per connection and script
 * version) and returns typed accessors. Call it before creating pipelines:
 * ioredis copies script commands into a pipeline when it is created
 * (`pipelineScript` copes with older pipelines all the same).
 *
 * @param loader Where the scripts come from. Default: this package's `lua/` folder.
 */
export function defineLuaCommands<const N extends string>(
  redis: ScriptHost,
  names: readonly N[],
  loader: LuaScriptLoader = packageLoader,
): LuaCommands<N> {
  for (const name of names) define(redis, loader.load(name));
  return {
    call: (name, keys, args) => callScript(redis, name, keys, args),
    pipeline: (pipeline, name, keys, args) => pipelineScript(pipeline, name, keys, args),
  };
}

/**
 * Runs script `name` on `redis`. A script not yet defined on this connection
 * is taken from this package's folder and defined first.
 */
export function callScript(
  redis: ScriptHost,
  name: string,
  keys: readonly RedisKey[],
  args: readonly RedisValue[],
): Promise<unknown> {
  try {
    const script = scriptOn(redis, name);
    const command = commandOf(redis, script);
    if (!command) throw new Error(`Lua command ${script.commandName} is not defined on this connection.`);
    return command.apply(redis, commandArgs(script, keys, args)) as Promise<unknown>;
  } catch (err) {
    // Caller bugs (unknown script, wrong key count) reject like Redis errors do, never throw.
    return Promise.reject(err);
  }
}

/**
 * Queues script `name` on `pipeline` (from `redis.pipeline()` or
 * `redis.multi()`); its reply arrives in `exec()`'s results like any command.
 * Inside `multi()` the script must not need a NOSCRIPT retry (ioredis sends
 * the full script the first time per socket, so this only matters after a
 * `SCRIPT FLUSH` on a live connection).
 */
export function pipelineScript(
  pipeline: ChainableCommander,
  name: string,
  keys: readonly RedisKey[],
  args: readonly RedisValue[],
): ChainableCommander {
  // ioredis' Pipeline keeps its connection in `redis`; the public type hides it.
  const redis = (pipeline as unknown as { redis?: ScriptHost }).redis;
  if (!redis) throw new TypeError('pipelineScript expects a pipeline from redis.pipeline() or redis.multi().');
  const script = scriptOn(redis, name);
  // A pipeline created before the command was defined lacks it; the
  // connection's command function works on the pipeline as its receiver.
  const command = commandOf(pipeline, script) ?? commandOf(redis, script);
  if (!command) throw new Error(`Lua command ${script.commandName} is not defined on this connection.`);
  command.apply(pipeline, commandArgs(script, keys, args));
  return pipeline;
}
