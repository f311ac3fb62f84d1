import { inspect } from "node:util";

const REDACTED = "[redacted]";

/**
 * A config value that must never be printed: JSON, string conversion and util.inspect all
 * show "[redacted]". `reveal()` is the one way to the value, so every use is greppable.
 * A secret read from a Pulumi stack file without its passphrase is `encrypted`: present,
 * validated for presence only, and impossible to reveal.
 */
export class Secret {
  readonly #value: string | undefined;
  readonly encrypted: boolean;

  private constructor(value: string | undefined) {
    this.#value = value;
    this.encrypted = value === undefined;
  }

  static of(value: string): Secret {
    return new Secret(value);
  }

  /** A value Pulumi stores as `{ secure: "v1:..." }`, which cannot be decrypted offline. */
  static encryptedValue(): Secret {
    return new Secret(undefined);
  }

  reveal(): string {
    if (this.#value === undefined) {
      throw new Error("this secret is still encrypted by Pulumi and cannot be revealed here");
    }
    return this.#value;
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

export function isSecret(value: unknown): value is Secret {
  return value instanceof Secret;
}
