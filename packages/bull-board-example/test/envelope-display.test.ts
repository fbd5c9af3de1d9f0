/** The board's `data` formatter: inputs shown as the JSON values they stand for, whichever form they travelled in. */
import { describe, expect, it } from 'vitest';
import { encodeF64 } from '@inferq/core/protocol';
import { envelopeForDisplay } from '../src/inferq-board.js';

describe('envelopeForDisplay', () => {
  it('shows JSON text as its value and a compact input as its numbers; anything else as it is', () => {
    const data = {
      v: 2,
      client: 'c-1',
      items: [
        { id: 'c-1.0', input: '{"a":[1,2]}', deadline: 1 },
        { id: 'c-1.1', f64: encodeF64(new Float64Array([0.5, -3, 1e-300])), deadline: 1 },
        { id: 'c-1.2', f64: 'AAAA', deadline: 1 },
        { id: 'c-1.3', input: '{"a":', deadline: 1 },
      ],
    };
    expect((envelopeForDisplay(data) as typeof data).items).toEqual([
      { id: 'c-1.0', input: { a: [1, 2] }, deadline: 1 },
      { id: 'c-1.1', f64: '(compact, 3 numbers)', input: [0.5, -3, 1e-300], deadline: 1 },
      { id: 'c-1.2', f64: 'AAAA', deadline: 1 },
      { id: 'c-1.3', input: '{"a":', deadline: 1 },
    ]);
  });
});
