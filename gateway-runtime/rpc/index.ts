export { type RpcErrorCode, statusFor } from "./http.js";
export { type RegistrationHandler, RpcServer, type RpcServerOptions } from "./server.js";
