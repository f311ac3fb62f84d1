import { describe, expect, it } from "vitest";
import {
  LARGE_READ,
  pooledReadBuffers,
  pooledSmallBuffers,
  ReusedReads,
  SMALL_READ,
} from "../../../gateway-runtime/proxy/read-buffers.js";

/** Node's side of `onread`: fill the buffer, call back, then ask for the next buffer. */
function read(reads: ReusedReads, buffer: Buffer, bytes: number, fill = 0x61): Buffer {
  buffer.fill(fill, 0, bytes);
  reads.onread.callback(bytes, buffer);
  return reads.onread.buffer();
}

describe("ReusedReads", () => {
  it("reads into the same small buffer while reads are small", () => {
    const reads = new ReusedReads();
    const first = reads.onread.buffer();
    expect(first.length).toBe(SMALL_READ);
    let buffer = first;
    for (const n of [1, 100, SMALL_READ - 1]) buffer = read(reads, buffer, n);
    expect(buffer).toBe(first);
  });

  it("moves to a pooled 64 KiB buffer after a full read, and back to small after a short one", () => {
    const reads = new ReusedReads();
    const small = reads.onread.buffer();
    const large = read(reads, small, SMALL_READ);
    expect(large.length).toBe(LARGE_READ);
    expect(read(reads, large, LARGE_READ)).toBe(large); // a download keeps its buffer
    const pooled = pooledReadBuffers();
    const back = read(reads, large, 5000); // short: the next read may be the last for a while
    expect(back).toBe(small); // its own small buffer again, not a new one
    expect(pooledReadBuffers()).toBe(pooled + 1);
    const again = read(reads, back, SMALL_READ);
    expect(again).toBe(large); // the same buffer, borrowed from the pool again
    expect(pooledReadBuffers()).toBe(pooled);
  });

  it("gives a new small buffer when the small one is retained", () => {
    const reads = new ReusedReads();
    const small = reads.onread.buffer();
    reads.onread.callback(10, small);
    reads.retain();
    const next = reads.onread.buffer();
    expect(next).not.toBe(small);
    expect(next.length).toBe(SMALL_READ);
    const large = read(reads, next, SMALL_READ);
    expect(read(reads, large, 1)).toBe(next); // and keeps the new one as its own
  });

  it("gives a new buffer after retain(), and never pools the retained one", () => {
    const reads = new ReusedReads();
    const large = read(reads, reads.onread.buffer(), SMALL_READ);
    const pooled = pooledReadBuffers();
    large.fill(0x62, 0, 10);
    reads.onread.callback(10, large);
    reads.retain();
    const next = reads.onread.buffer();
    expect(next).not.toBe(large);
    expect(next.length).toBe(SMALL_READ);
    expect(pooledReadBuffers()).toBe(pooled);
    expect(read(reads, next, 10)).toBe(next); // retained once, not for ever
  });

  it("gives its large buffer back once when the socket closes", () => {
    const reads = new ReusedReads();
    read(reads, reads.onread.buffer(), SMALL_READ);
    const pooled = pooledReadBuffers();
    reads.release();
    reads.release();
    expect(pooledReadBuffers()).toBe(pooled + 1);
  });

  it("gives its small buffer back when the socket closes, and the next socket reads into it", () => {
    const reads = new ReusedReads();
    const own = reads.onread.buffer();
    read(reads, own, 10);
    const pooled = pooledSmallBuffers();
    reads.release();
    expect(pooledSmallBuffers()).toBe(pooled + 1);
    expect(new ReusedReads().onread.buffer()).toBe(own);
    expect(pooledSmallBuffers()).toBe(pooled);
  });

  it("never pools a buffer a queued write still holds when the socket closes", () => {
    const reads = new ReusedReads();
    const own = reads.onread.buffer();
    reads.onread.callback(10, own);
    reads.retain(); // the write of those 10 bytes queued; no read since
    const pooled = pooledSmallBuffers();
    reads.release();
    expect(pooledSmallBuffers()).toBe(pooled);

    const big = new ReusedReads();
    const large = read(big, big.onread.buffer(), SMALL_READ);
    big.onread.callback(LARGE_READ, large);
    big.retain();
    const [pooledLarge, pooledSmall] = [pooledReadBuffers(), pooledSmallBuffers()];
    big.release();
    expect(pooledReadBuffers()).toBe(pooledLarge); // the held large one is dropped
    expect(pooledSmallBuffers()).toBe(pooledSmall + 1); // its own small one is free
  });

  it("keeps copies of what arrives before a consumer, and hands them over first", () => {
    const reads = new ReusedReads();
    let buffer = reads.onread.buffer();
    buffer = read(reads, buffer, 3, 0x61);
    buffer = read(reads, buffer, 2, 0x62); // same buffer: the first read's bytes are overwritten
    const seen: string[] = [];
    reads.consume((chunk) => seen.push(chunk.toString()));
    expect(seen).toEqual(["aaa", "bb"]);
    read(reads, buffer, 1, 0x63);
    expect(seen).toEqual(["aaa", "bb", "c"]);
  });
});
