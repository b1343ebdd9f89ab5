// Bounded cache of RPC replies keyed by request (key string + revision + τ ...), shared by every
// view of one model (lives in initialize). Current requests go first; prefetches run one at a time.
import type { Reply, Rpc } from "./rpc";

interface Entry {
  reply: Reply;
  bytes: number;
}

function sizeOf(reply: Reply): number {
  let n = 0;
  for (const a of Object.values(reply.arrays)) n += a.data.byteLength;
  return n + 256;
}

export class Cache {
  private entries = new Map<string, Entry>();
  private inflight = new Map<string, Promise<Reply>>();
  private queue: {
    id: string;
    name: string;
    msg: Record<string, unknown>;
    waiters?: [(r: Reply) => void, (e: unknown) => void][];
  }[] = [];
  private prefetching = false;
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    private rpc: Rpc,
    private maxBytes = 512 * 1024 * 1024,
  ) {}

  static id(name: string, msg: Record<string, unknown>): string {
    return `${name}:${JSON.stringify(msg)}`;
  }

  peek(name: string, msg: Record<string, unknown>): Reply | undefined {
    const id = Cache.id(name, msg);
    const e = this.entries.get(id);
    if (e) {
      this.entries.delete(id); // LRU: move to the end
      this.entries.set(id, e);
    }
    return e?.reply;
  }

  get(name: string, msg: Record<string, unknown>): Promise<Reply> {
    const id = Cache.id(name, msg);
    const hit = this.peek(name, msg);
    if (hit) {
      this.hits++;
      return Promise.resolve(hit);
    }
    const running = this.inflight.get(id);
    if (running) return running;
    this.misses++;
    const p = this.rpc.request(name, msg).then((reply) => {
      this.store(id, reply);
      return reply;
    });
    this.inflight.set(id, p);
    const done = () => this.inflight.delete(id);
    p.then(done, done);
    return p;
  }

  /** Fetch in the background, one request at a time, after whatever is current. */
  prefetch(name: string, msg: Record<string, unknown>): void {
    const id = Cache.id(name, msg);
    if (this.entries.has(id) || this.inflight.has(id) || this.queue.some((q) => q.id === id)) return;
    this.queue.push({ id, name, msg });
    this.pump();
  }

  /** Keep a reply that came another way (the first view, with the widget's state). */
  put(name: string, msg: Record<string, unknown>, reply: Reply): void {
    const id = Cache.id(name, msg);
    if (!this.entries.has(id)) this.store(id, reply);
  }

  /** The reply once it is here (cached, in flight, or after a prefetch), without asking first. */
  whenReady(name: string, msg: Record<string, unknown>): Promise<Reply> | undefined {
    const hit = this.peek(name, msg);
    if (hit) return Promise.resolve(hit);
    const id = Cache.id(name, msg);
    const running = this.inflight.get(id);
    if (running) return running;
    const queued = this.queue.find((q) => q.id === id);
    if (!queued) return undefined;
    queued.waiters ??= [];
    return new Promise((res, rej) => queued.waiters!.push([res, rej]));
  }

  clearQueue(): void {
    this.queue.length = 0;
  }

  private pump(): void {
    if (this.prefetching) return;
    const next = this.queue.shift();
    if (!next) return;
    this.prefetching = true;
    const done = () => {
      this.prefetching = false;
      this.pump();
    };
    const p = this.get(next.name, next.msg);
    p.then(done, done);
    for (const [res, rej] of next.waiters ?? []) p.then(res, rej);
  }

  private store(id: string, reply: Reply): void {
    const bytes = sizeOf(reply);
    this.entries.set(id, { reply, bytes });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes || this.entries.size <= 2) break;
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  destroy(): void {
    this.queue.length = 0;
    this.entries.clear();
    this.bytes = 0;
  }
}
