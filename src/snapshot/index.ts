export * from "./snapshotter.js";
