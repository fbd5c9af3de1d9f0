/** The bad-model scenario's clean run: `bad-model.mjs` with no input that hangs or throws. */
import { badModel } from './bad-model.mjs';

export default badModel({ hangRate: 0, throwRate: 0, hangMs: 0, costMs: 2 });
