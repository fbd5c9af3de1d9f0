import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, describeRedis, redactSecrets, redactUrlsIn, redisUrlProblem } from '../src/index.js';

describe('secret redaction', () => {
  it('masks the whole password of a URL, up to its last @, whatever the scheme', () => {
    const cases: Array<[string, string]> = [
      ['redis://u:p@h:1/0', 'redis://u:***@h:1/0'],
      ['redis://atuser:cd@XYZ#%/:?s3cr3t@127.0.0.1:6379', 'redis://atuser:***@127.0.0.1:6379'],
      ["got 'Redis://u:p@ss@h:1'.", "got 'Redis://u:***@h:1'."],
      ['rediss://:only@h', 'rediss://:***@h'],
      ['redis:/u:pw@h', 'redis:/u:***@h'],
      ['redis://user@h', 'redis://user@h'],
      ['a redis://u:p@h and redis://v:q@@g', 'a redis://u:***@h and redis://v:***@g'],
      ['redis://u:p@h1:1,redis://u:p@h2:2', 'redis://u:***@h1:1,redis://u:***@h2:2'],
      // Stack frames of pnpm paths are not URLs with a password.
      ['at file:///w/.pnpm/ioredis@5.11.1/node_modules/x.js:10:5', 'at file:///w/.pnpm/ioredis@5.11.1/node_modules/x.js:10:5'],
    ];
    for (const [input, masked] of cases) expect(redactUrlsIn(input), input).toBe(masked);
    expect(describeRedis('redis://u:a@b@h:1')).toBe('redis://u:***@h:1');
    expect(describeRedis({ cluster: ['u:a@b@h:1', 'redis://u:a@b@g:2'] })).toBe('cluster u:***@h:1,redis://u:***@g:2');
  });

  it('says what is wrong with a URL without quoting it', () => {
    expect(redisUrlProblem('Redis://u:p@h')).toBe('must be a redis:// or rediss:// URL');
    expect(redisUrlProblem('redis://u:a/b@h')).toMatch(/percent-encode/);
    expect(redisUrlProblem('redis://u:a@b@h:1/0')).toBeUndefined();
    expect(redisUrlProblem('redis://h:1/0?x=1')).toBeUndefined();
  });

  it('copies errors with AUTH/HELLO arguments, nested causes and option secrets masked, leaving the original alone', () => {
    const auth = Object.assign(new Error('WRONGPASS'), { command: { name: 'auth', args: ['user', 'pw1'] } });
    const hello = Object.assign(new Error('NOAUTH'), { command: { name: 'HELLO', args: ['3', 'AUTH', 'user', 'pw2', 'SETNAME', 'n'] } });
    const outer = new TypeError('wrapped redis://u:pw3@h', { cause: Object.assign(new Error('mid', { cause: auth }), { other: hello }) });
    const copy = redactSecrets({ err: outer, redis: { host: 'h', username: 'user', password: 'pw4', tls: { key: 'pw5', passphrase: 'pw6', cert: 'C' } }, key: 'cache-key' });
    const text = JSON.stringify(copy, (_k, v: unknown) => (v instanceof Error ? { ...v, message: v.message, stack: v.stack, cause: v.cause } : v));
    for (const pw of ['pw1', 'pw2', 'pw3', 'pw4', 'pw5', 'pw6']) expect(text).not.toContain(pw);
    expect(copy.err).toBeInstanceOf(TypeError);
    expect(copy.redis).toEqual({ host: 'h', username: 'user', password: '***', tls: { key: '***', passphrase: '***', cert: 'C' } });
    expect(copy.key).toBe('cache-key');
    expect(auth.command.args).toEqual(['user', 'pw1']);
    const agg = redactSecrets(new AggregateError([Object.assign(new Error('node down'), { command: { name: 'auth', args: ['pw7'] } })], 'all nodes failed'));
    expect(inspect(agg, { depth: 10 })).toContain('node down');
    expect(inspect(agg, { depth: 10 })).not.toContain('pw7');
  });

  it("redacts through a user's own pino logger, keeping the user's own log formatter", () => {
    const lines: string[] = [];
    const stream = new Writable({ write: (c: Buffer, _e, done) => (lines.push(c.toString()), done()) });
    const user = pino({ level: 'debug', formatters: { log: (o) => ({ ...o, mine: true }) } }, stream);
    const log = createLogger('test', user).child({ model: 'm' });
    const err = Object.assign(new Error('WRONGPASS at redis://u:pw1@h'), { command: { name: 'auth', args: ['u', 'pw2'] } });
    log.error({ err, target: 'redis://u:pw3@h' }, 'failed');
    log.error(err);
    expect(lines).toHaveLength(2);
    for (const pw of ['pw1', 'pw2', 'pw3']) expect(lines.join('')).not.toContain(pw);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ mine: true, component: 'test', model: 'm', err: { type: 'Error', command: { args: ['u', '***'] } } });
  });
});
