// Where this build of the package lives (a file URL; a path in the CommonJS build), for resolving
// optional addons (bufferutil) from the package rather than only from the working directory. The
// CommonJS build has no import.meta: scripts/build-ts.mjs replaces its copy of this file with one
// that answers with __filename.
// @ts-ignore TS1343 in the CommonJS build (replaced there, see above)
export const MODULE_LOCATION: string = import.meta.url;
