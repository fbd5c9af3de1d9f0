/**
 * What a load client sends: float vectors from a seeded PRNG, so every system
 * of a run sees the same inputs (same sizes, same JSON bytes), and a rerun
 * with the same `--seed` sends the same requests again.
 *
 * - Vectors are rounded to 4 decimals: the JSON of a float64 from a PRNG is
 *   ~19 characters per number, which would make the benchmark mostly measure
 *   JSON and network bytes; 4 decimals is what a real client would send for a
 *   normalised feature vector. (The ONNX model casts to float32 anyway.)
 * - With `repeatFraction` > 0, that share of the requests repeats an input this
 *   client sent before (picked uniformly from its last `repeatWindow` new
 *   inputs): the recent window keeps repeats within the result cache's reach,
 *   as in a real hot set, instead of asking for inputs evicted long ago.
 */
import { mulberry32 } from '@inferq/testkit/random';

export interface WorkloadConfig {
  /** Numbers per input vector. */
  inputSize: number;
  /** Run seed; each client derives its own stream from it. */
  seed: number;
  /** 0..1: share of requests that repeat an earlier input. */
  repeatFraction: number;
  /** How many recent new inputs a repeat is drawn from. */
  repeatWindow: number;
}

export { mulberry32 };

export class Workload {
  private readonly random: () => number;
  private readonly recent: number[][] = [];
  private next = 0;
  /** Inputs handed out that repeat an earlier one. */
  repeats = 0;

  constructor(
    private readonly cfg: WorkloadConfig,
    clientIndex: number,
  ) {
    // Distinct stream per client: two clients must not send each other's inputs by accident.
    this.random = mulberry32((cfg.seed ^ Math.imul(clientIndex + 1, 0x9e3779b1)) >>> 0);
  }

  input(): number[] {
    const { repeatFraction, repeatWindow } = this.cfg;
    if (repeatFraction > 0 && this.recent.length > 0 && this.random() < repeatFraction) {
      this.repeats++;
      return this.recent[Math.floor(this.random() * this.recent.length)] as number[];
    }
    const v = new Array<number>(this.cfg.inputSize);
    for (let i = 0; i < v.length; i++) v[i] = Math.round((this.random() * 2 - 1) * 1e4) / 1e4;
    if (repeatFraction > 0) {
      if (this.recent.length < repeatWindow) this.recent.push(v);
      else this.recent[this.next++ % repeatWindow] = v;
    }
    return v;
  }
}
