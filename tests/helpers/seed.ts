/** dstack's example gateway.toml, verbatim: the config every dstack operator starts from. */
export const SEED_TOML = new URL("../fixtures/seed/gateway.toml", import.meta.url).pathname;
