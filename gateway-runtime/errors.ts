/**
 * Errors the gateway raises carry a stable machine-readable code. Codes become metric labels
 * and log fields, so they never change meaning once released.
 */
export class GatewayError<C extends string = string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GatewayError";
    this.code = code;
  }
}

/**
 * An 'error' listener for a socket whose errors are handled another way (its 'close'), so the
 * emitter does not throw; one shared function, so it costs no closure per socket.
 */
export function ignoreError(): void {}
