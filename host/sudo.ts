/**
 * The host's scripts need root; SSH may log in as root or as a user with sudo. Every remote
 * step's script goes through `asRoot`, the one place that decides how it runs.
 */
import { HOST_PATHS } from "./layout.js";

export const ROOT_USER = "root";

/** A login name as `useradd` accepts it: it appears in script text, so nothing else passes. */
export const USER_NAME = /^[a-z_][a-z0-9_-]*\$?$/i;

/** `text` as one single-quoted shell word. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * `script` as the SSH user `user` runs it. For root it is the script itself, byte for byte (so
 * a root stack's steps never change). Otherwise it runs through `sudo -n sh -c`, with the
 * step's stdin passed on to it; `-n` makes sudo fail instead of waiting for a password no one
 * can type, and the error says which user needs passwordless sudo. The SSH server hands the
 * text to the user's login shell, so the wrapper itself is plain POSIX sh.
 */
export function asRoot(script: string, user: string): string {
  if (user === ROOT_USER) return script;
  if (!USER_NAME.test(user)) throw new Error(`sshUser ${JSON.stringify(user)} is not a user name`);
  const refused = `SSH user ${user} cannot run the gateway's steps as root`;
  return `command -v sudo >/dev/null 2>&1 || { echo "${refused}: sudo is not installed on this host (apt-get install sudo), or SSH as root" >&2; exit 1; }
if ! why=$(sudo -n true 2>&1); then
  echo "${refused} with sudo -n (\${why:-refused}): give ${user} passwordless sudo (NOPASSWD, a file in /etc/sudoers.d), or SSH as root" >&2
  exit 1
fi
exec sudo -n sh -c ${shellQuote(script)}
`;
}

/**
 * What the setup adds for a user other than root: the bundle's file owned by that user. The
 * bundle is copied over SFTP as the SSH user, without sudo, into a directory only root may
 * write; a file the user owns there can be written over. That user has passwordless root
 * anyway, so owning the file grants it nothing new.
 */
export function bundleOwnedBy(user: string, path: string = HOST_PATHS.bundle): string {
  if (user === ROOT_USER) return "";
  return `[ -e ${path} ] || install -m 0644 /dev/null ${path}
chown ${user} ${path}
`;
}
