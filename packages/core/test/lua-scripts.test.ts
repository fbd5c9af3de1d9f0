import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis, type TestRedis } from '../../testkit/src/index.js';
import { LUA_DIR, LuaScriptLoader, callScript, defineLuaCommands, loadLuaScript, pipelineScript } from '../src/lua-scripts.js';
import { RedisLruCache } from '../src/redis-lru-cache.js';

/** The opening comment of a Lua file: a `--[[ ... ]]` block or consecutive `--` lines. */
function header(text: string): string {
  const block = /^--\[\[([\s\S]*?)\]\]/.exec(text);
  if (block) return block[1] ?? '';
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('--') || /^--\s*@include/.test(line)) break;
    lines.push(line);
  }
  return lines.join('\n');
}

const scriptFiles = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));
const includeFiles = readdirSync(new URL('includes/', LUA_DIR)).filter((f) => f.endsWith('.lua'));

describe('Lua script files', () => {
  it.each(scriptFiles)('%s is named <name>-<numKeys|var>.lua and its header lists KEYS, ARGV and returns', (file) => {
    expect(file).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*-(\d+|var)\.lua$/);
    const h = header(readFileSync(new URL(file, LUA_DIR), 'utf8'));
    expect(h).toMatch(/KEYS\[\d/);
    expect(h).toMatch(/ARGV/);
    expect(h).toMatch(/Returns/i);
    const keys = /-(\d+)\.lua$/.exec(file)?.[1];
    // A fixed-key script documents each of its KEYS.
    for (let i = 1; keys !== undefined && i <= Number(keys); i++) expect(h).toContain(`KEYS[${i}]`);
  });

  it.each(includeFiles)('includes/%s opens with a header naming every function it defines', (file) => {
    const text = readFileSync(new URL(`includes/${file}`, LUA_DIR), 'utf8');
    const h = header(text);
    expect(h.trim().length).toBeGreaterThan(0);
    const functions = [...text.matchAll(/^local function (\w+)/gm)].map((m) => m[1]!);
    expect(functions.length).toBeGreaterThan(0);
    for (const fn of functions) expect(h).toContain(fn);
  });

  it.each(scriptFiles)('%s resolves every include, each function defined once', (file) => {
    const name = file.replace(/-(\d+|var)\.lua$/, '');
    const script = loadLuaScript(name);
    expect(script.lua).not.toMatch(/^\s*--\s*@include/m);
    const defined = [...script.lua.matchAll(/^local function (\w+)/gm)].map((m) => m[1]!);
    expect(defined.length).toBe(new Set(defined).size);
    expect(script.commandName).toMatch(/^inferq_[a-z0-9_]+_v[0-9a-f]{8}$/);
  });
});

describe('LuaScriptLoader', () => {
  let dir: string;
  const write = (path: string, text: string) => writeFileSync(join(dir, path), text);
  const loader = () => new LuaScriptLoader(pathToFileURL(`${dir}/`));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'inferq-lua-'));
    mkdirSync(join(dir, 'includes'));
    write('includes/base.lua', '-- base\nlocal function base() return 1 end\n');
    write('includes/mid.lua', '-- mid\n-- @include base.lua\nlocal function mid() return base() + 1 end\n');
    write('includes/loop-a.lua', '-- a\n-- @include loop-b.lua\n');
    write('includes/loop-b.lua', '-- b\n-- @include loop-a.lua\n');
    write('main-2.lua', '-- main\n-- @include mid.lua\n-- @include base.lua\nreturn mid()\n');
    write('echo-var.lua', '-- echo: KEYS[1..n], ARGV[1..m]; returns {#KEYS, keys..., args...}\nlocal out = {#KEYS}\n' +
      'for _, k in ipairs(KEYS) do out[#out + 1] = k end\nfor _, a in ipairs(ARGV) do out[#out + 1] = a end\nreturn out\n');
    write('cycle-0.lua', '-- @include loop-a.lua\nreturn 1\n');
    write('missing-0.lua', '-- @include nope.lua\nreturn 1\n');
    write('escape-0.lua', '-- @include ../main-2.lua\nreturn 1\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('resolves includes recursively, each fragment once, dependencies first', () => {
    const script = loader().load('main');
    expect(script.numberOfKeys).toBe(2);
    expect(script.lua.match(/local function base/g)).toHaveLength(1);
    expect(script.lua.indexOf('local function base')).toBeLessThan(script.lua.indexOf('local function mid'));
    expect(script.lua).toContain('-- (base.lua already included)');
    expect(script.lua.trimEnd().endsWith('return mid()')).toBe(true);
  });

  it('reads the key count from the file name (var = given at call time)', () => {
    expect(loader().load('echo').numberOfKeys).toBeUndefined();
    expect(loader().names()).toEqual(['cycle', 'echo', 'escape', 'main', 'missing']);
  });

  it('versions the command name by the resolved text, includes included', () => {
    const before = loader().load('main').commandName;
    write('includes/base.lua', '-- base\nlocal function base() return 2 end\n');
    const after = loader().load('main').commandName;
    expect(after).toMatch(/^inferq_main_v[0-9a-f]{8}$/);
    expect(after).not.toBe(before);
  });

  it('caches each loaded script', () => {
    const l = loader();
    expect(l.load('main')).toBe(l.load('main'));
  });

  it('reports cycles, missing fragments, bad include names and unknown scripts', () => {
    expect(() => loader().load('cycle')).toThrow(/include cycle: cycle-0.lua -> loop-a.lua -> loop-b.lua -> loop-a.lua/);
    expect(() => loader().load('missing')).toThrow(/includes\/nope.lua was not found/);
    expect(() => loader().load('escape')).toThrow(/bad include '..\/main-2.lua'/);
    expect(() => loader().load('absent')).toThrow(/No Lua script 'absent'.*absent-<numKeys>.lua/);
  });

  it('refuses two files for one script name', () => {
    const other = mkdtempSync(join(tmpdir(), 'inferq-lua-'));
    try {
      writeFileSync(join(other, 'x-1.lua'), 'return 1');
      writeFileSync(join(other, 'x-var.lua'), 'return 1');
      expect(() => new LuaScriptLoader(pathToFileURL(`${other}/`)).load('x')).toThrow(/Two Lua scripts are named 'x'/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  describe('on Redis', () => {
    let t: TestRedis;
    let redis: Redis;
    beforeAll(async () => {
      t = await startTestRedis();
      redis = t.connect();
    });
    afterAll(() => t.cleanup());

    it('every script of the package compiles in Redis', async () => {
      for (const name of new LuaScriptLoader(LUA_DIR).names()) {
        const { lua } = loadLuaScript(name);
        await expect(redis.script('LOAD', lua), name).resolves.toMatch(/^[0-9a-f]{40}$/);
      }
    });

    it('passes the key count of a var-key script, also in pipelines and multi', async () => {
      const cmds = defineLuaCommands(redis, ['echo'], loader());
      const k = (s: string) => `${t.prefix}:{tag}:${s}`;
      expect(await cmds.call('echo', [k('a'), k('b')], ['x'])).toEqual([2, k('a'), k('b'), 'x']);
      expect(await callScript(redis, 'echo', [], ['x', 'y'])).toEqual([0, 'x', 'y']);
      const piped = await pipelineScript(redis.pipeline(), 'echo', [k('a')], ['p']).exec();
      expect(piped).toEqual([[null, [1, k('a'), 'p']]]);
      const multi = await cmds.pipeline(redis.multi().ping(), 'echo', [k('a')], ['m']).exec();
      expect(multi).toEqual([[null, 'PONG'], [null, [1, k('a'), 'm']]]);
    });

    it('rejects a wrong key count for a fixed-key script, and an unknown script', async () => {
      await expect(callScript(redis, 'lru-size', ['only-one'], [])).rejects.toThrow(/'lru-size' takes 4 KEYS, got 1/);
      await expect(callScript(redis, 'no-such-script', [], [])).rejects.toThrow(/No Lua script 'no-such-script'/);
      expect(() => pipelineScript(redis.pipeline(), 'lru-size', [], [])).toThrow(/takes 4 KEYS, got 0/);
    });

    it('defines each script once per connection and works in a pipeline made before it was defined', async () => {
      const fresh = t.connect();
      const early = fresh.pipeline();
      const cache = new RedisLruCache<number>({ redis: fresh, model: 'piped', prefix: t.prefix, maxSize: 5 });
      await cache.putMany([['a', 1], ['b', 2]]);
      const { lru, val, exp, bytes } = cache.redisKeys;
      const replies = await pipelineScript(early, 'lru-size', [lru, val, exp, bytes], []).exec();
      expect(replies).toEqual([[null, 2]]);
      const inMulti = await pipelineScript(fresh.multi(), 'lru-get', [lru, val, exp, bytes], ['a', 'zz']).exec();
      expect(inMulti).toEqual([[null, ['1', null]]]);
      const defined = Object.keys(fresh).length;
      new RedisLruCache<number>({ redis: fresh, model: 'piped2', prefix: t.prefix, maxSize: 5 });
      expect(Object.keys(fresh).length).toBe(defined); // nothing redefined
    });

    it('recovers after SCRIPT FLUSH (EVALSHA falls back to EVAL)', async () => {
      const cache = new RedisLruCache<number>({ redis, model: 'flush', prefix: t.prefix, maxSize: 5 });
      await cache.put('a', 1);
      await redis.script('FLUSH');
      expect(await cache.get('a')).toBe(1);
      const { lru, val, exp, bytes } = cache.redisKeys;
      expect(await pipelineScript(redis.pipeline(), 'lru-size', [lru, val, exp, bytes], []).exec()).toEqual([[null, 1]]);
    });
  });
});
