export * from "./container-runtime.js";
export * from "./runner.js";
export * from "./spec.js";
export {
  type PortBinding,
  processStartTime,
  restartDelay,
  STOP_REQUESTED,
  SUPERVISOR_STATE,
  type SupervisorConfig,
  type SupervisorState,
} from "./supervisor.js";
export * from "./user.js";
