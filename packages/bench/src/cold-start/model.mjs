// The cold-start section's model: a plain JavaScript module, no TypeScript,
// no ONNX, so the time to READY is inferq's own (Node, imports, Redis).
export default async (inputs) => inputs.map((x) => x * 2);
