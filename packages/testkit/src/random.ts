/**
 * The seeded PRNG of the default model's weights, for reproducible inputs in
 * tests, the demo and the bench (`@inferq/testkit/random`: light to import,
 * unlike the main entry). Not part of any package's public API, so
 * it is reached here by path.
 */
export { mulberry32 } from '../../onnx/src/mulberry32.js';
