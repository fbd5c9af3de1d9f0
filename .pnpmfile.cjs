// pnpm hooks of the inferq workspace.
//
// beforePacking: `pnpm pack` and `pnpm publish` write the package's manifest
// as consumers get it. Dev-only fields are dropped there: devDependencies
// name private workspace packages (@inferq/testkit) that do not exist on any
// registry, and `scripts.build` runs ../../scripts/build.mjs, which is not in
// the tarball. The published packages need no install script.
// (pnpm records this file's checksum in pnpm-lock.yaml: after editing it, run
// `npx -y pnpm@12.4.2 install --lockfile-only` and commit the lockfile.)
module.exports = {
  hooks: {
    beforePacking(manifest) {
      delete manifest.devDependencies;
      delete manifest.scripts;
      return manifest;
    },
  },
};
