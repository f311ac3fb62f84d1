// Entry point of the Pulumi program (Pulumi.yaml `main` points at its compiled form, bin/index.js).
import { gatewayProgram } from "./program.js";

const outputs = gatewayProgram();

export const baseDomain = outputs.baseDomain;
export const rpcDomain = outputs.rpcDomain;
export const acmeAccountUrl = outputs.acmeAccountUrl;
export const adminToken = outputs.adminToken;
export const hosts = outputs.hosts;
export const frontDoor = outputs.frontDoor;
