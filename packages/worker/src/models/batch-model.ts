/**
 * The model contract types live in `@inferq/core` (`model-module.ts`), so
 * that model adapters such as `@inferq/onnx` need not depend on the worker.
 * Re-exported here for the worker's own modules.
 */
export type { BatchModel, ModelExport, ModelModule } from '@inferq/core';
