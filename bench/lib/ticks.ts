/**
 * Reads a `node --prof` tick log and names where each sample landed, down to the C++ and
 * OpenSSL function inside the node binary. `node --prof-process` leaves most native ticks
 * "unaccounted" here (it maps only the first of the binary's three text mappings), so we
 * resolve program counters ourselves against `nm` of the binary. Samples taken while the main
 * thread waited in epoll (or V8 said IDLE) are idle, not work.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

interface Symbol {
  readonly start: number;
  readonly end: number;
  readonly name: string;
}

interface Library {
  readonly path: string;
  readonly start: number;
  readonly end: number;
}

export interface TickSummary {
  readonly ticks: number;
  readonly idleTicks: number;
  /** Busy ticks per function, largest first. */
  readonly top: readonly { name: string; area: string; share: number }[];
  readonly byArea: readonly { area: string; share: number }[];
}

/** Text symbols of an ELF file (`dynamic`: the exported ones, for stripped shared libraries). */
function symbolsOf(binary: string, dynamic = false, base = 0): Symbol[] {
  const args = ["-C", "-n", "-S", "--defined-only", ...(dynamic ? ["-D"] : []), binary];
  const r = spawnSync("nm", args, {
    encoding: "utf8",
    maxBuffer: 512 * 1024 * 1024,
    timeout: 120_000,
  });
  const out: Symbol[] = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) [tTwW] (.+)$/.exec(line);
    if (!m?.[1] || !m[2] || !m[3]) continue;
    const start = base + Number.parseInt(m[1], 16);
    out.push({ start, end: start + Number.parseInt(m[2], 16), name: m[3] });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The symbol holding `pc`; with `near`, else the closest one below it, as `?near name`. */
function lookup(symbols: readonly Symbol[], pc: number, near = false): string | undefined {
  let lo = 0;
  let hi = symbols.length - 1;
  let below: Symbol | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = symbols[mid] as Symbol;
    if (pc < s.start) hi = mid - 1;
    else if (pc >= s.end) {
      below = s;
      lo = mid + 1;
    } else return s.name;
  }
  return near && below ? `?near ${below.name}` : undefined;
}

const OPENSSL_MATH =
  /^(fe_|fe51_|fe64_|ge_|cmov|x25519_|ecp_nistz256|__ecp_nistz256|ossl_ec_GFp|ossl_x25519|x25519|X25519|ossl_ecdsa|ECDSA|EC_POINT|ec_|bn_|BN_|ossl_bn|sha256_|sha512_|SHA256|SHA512|aesni|aes_|ossl_aes|gcm_|ossl_gcm|CRYPTO_gcm|ChaCha|Poly1305|poly1305|chacha|fe51_|fe64_|x86_64_|mul_mont|RSA_)/;
const OPENSSL_OTHER =
  /^(do_ssl3_write|do_name|SSL_|ssl_|ssl3_|tls_|tls13_|tls1_|dtls|statem|ossl_|OSSL_|EVP_|evp_|CRYPTO_|OPENSSL_|ERR_|HMAC|hmac|kdf_|drbg|RAND_|rand_|OBJ_|ASN1_|asn1_|X509|x509|PROV|WPACKET|PACKET_|BIO_|bio_|ec_key|EC_KEY|EC_GROUP|ecx_|pkey_|PKEY|construct_|decoder|encoder|OSSL_PARAM|lh_|OPENSSL_LH|sk_|OPENSSL_sk|CONF|ENGINE|md_|cipher_|generic_|ssl)/;

const SYSCALLS =
  /^(__)?(read|write|readv|writev|connect|accept4?|socket|shutdown|close|epoll_ctl|setsockopt|getsockopt|getsockname|getpeername|sendmsg|recvmsg|syscall|getpid|ioctl|fcntl|futex|pthread_cond_signal|sched_yield|lll_lock_wake_private)(@|$)/;

export function areaOfSymbol(name: string): string {
  if (name === "(JS or V8 code objects)") return "JS (JIT-compiled code)";
  if (name.startsWith("Builtins_")) return "V8 builtins (JS runtime)";
  if (OPENSSL_MATH.test(name)) return "OpenSSL: crypto math (EC, X25519, SHA, AES-GCM)";
  if (OPENSSL_OTHER.test(name)) return "OpenSSL: TLS state machine, providers, EVP, alloc";
  if (/^node::crypto::/.test(name)) return "node C++: crypto/TLSWrap";
  if (/^node::/.test(name)) return "node C++: streams, handles, bindings";
  if (/^uv_|^uv__/.test(name)) return "libuv";
  if (
    /^v8::internal::(Heap|Scavenger|MarkCompact|Sweeper|Concurrent|GC|.*Marking|.*Evacuat)/.test(
      name,
    )
  ) {
    return "V8 GC";
  }
  if (/^v8::|^Builtins|^cppgc::/.test(name)) return "V8 runtime (C++)";
  if (/fwrite|_IO_|LogFile|v8::internal::Log|Profiler|Ticker/.test(name))
    return "profiler's own logging";
  if (name.startsWith("lib:")) {
    const fn = name
      .split(":")
      .slice(2)
      .join(":")
      .replace(/^\?near /, "");
    if (SYSCALLS.test(fn)) return "kernel, via syscalls (read/write/connect/close/epoll_ctl...)";
    if (/malloc|free|calloc|realloc|memcpy|memmove|memset/.test(fn)) return "libc: malloc, memcpy";
    return "libc/libstdc++: locks, other";
  }
  return "other native";
}

export function summarizeTicks(logFile: string, binary = process.execPath, topN = 25): TickSummary {
  const text = readFileSync(logFile, "utf8");
  const libs: Library[] = [];
  const counts = new Map<string, number>();
  let ticks = 0;
  let idle = 0;
  const symbols = symbolsOf(binary);
  const binStart = Math.min(...symbols.slice(0, 1).map((s) => s.start));
  const binEnd = symbols.length > 0 ? (symbols[symbols.length - 1] as Symbol).end : 0;
  const libSymbols = new Map<string, Symbol[]>();
  for (const line of text.split("\n")) {
    if (line.startsWith("shared-library,")) {
      const [, path, start, end] = line.split(",");
      if (path && start && end && path !== binary) {
        libs.push({ path, start: Number(start), end: Number(end) });
        if (!libSymbols.has(path)) {
          // V8 logs the mapping minus its file offset: the load base
          libSymbols.set(path, symbolsOf(path, true, Number(start)));
        }
      }
      continue;
    }
    if (!line.startsWith("tick,")) continue;
    const f = line.split(",");
    const pc = Number(f[1]);
    const vmState = Number(f[5]);
    ticks++;
    let name: string;
    if (pc >= binStart && pc < binEnd) name = lookup(symbols, pc) ?? "node binary (no symbol)";
    else {
      const lib = libs.find((l) => pc >= l.start && pc < l.end);
      const short = lib?.path.split("/").pop();
      name = lib
        ? `lib:${short}:${(lookup(libSymbols.get(lib.path) ?? [], pc, true) ?? "?").replace(/@.*$/, "")}`
        : "(JS or V8 code objects)";
    }
    // V8 state 8 is IDLE; the main thread parked in epoll is idle too
    if (vmState === 8 || /epoll_wait|epoll_pwait/.test(name)) {
      idle++;
      continue;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const busy = ticks - idle || 1;
  const top = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([name, n]) => ({ name, area: areaOfSymbol(name), share: n / busy }));
  const areas = new Map<string, number>();
  for (const [name, n] of counts) {
    const area = areaOfSymbol(name);
    areas.set(area, (areas.get(area) ?? 0) + n);
  }
  const byArea = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([area, n]) => ({ area, share: n / busy }));
  return { ticks, idleTicks: idle, top, byArea };
}
