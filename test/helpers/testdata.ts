import path from "node:path";

/** The shared conformance vectors, read in place (never copied into the repository). */
export const TESTDATA = path.resolve(import.meta.dirname, "../../../shared/testdata");
/** The shared benchmark workload generator. */
export const SHARED_BENCH = path.resolve(import.meta.dirname, "../../../shared/bench");
