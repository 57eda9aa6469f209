/**
 * Docker image references, as distribution/reference and docker/cli read and print
 * them. Pure: no I/O. See README.md.
 */
export { grammar } from "./grammar.js";
